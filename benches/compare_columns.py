"""Column encryption throughput against Python `cryptography`, per value, in one run.

Usage:  python benches/compare_columns.py [--rows 1000000]

Short strings (e-mail addresses, 15-30 bytes) in one Arrow column:

  * amlguard encrypt_columns / decrypt_columns, randomized (AES-256-GCM) and deterministic
    (AES-SIV), with threads=1 (values per second per core) and with every core;
  * `cryptography` AESGCM (random 96-bit nonce from os.urandom) and AESSIV (512-bit key) called
    once per value from a Python loop over the same strings, with the same associated data, as
    a user without amlguard would write it (single core: the loop holds the GIL).

Figures are best of three; values per second count non-null values.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any, Callable

import amlguard as ag
import pyarrow as pa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    timings = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = args.rows
    emails = [f"user{i}.name{i % 97}@example{i % 13}.com" for i in range(rows)]
    table = pa.table({"email": emails})
    mean_bytes = sum(len(e) for e in emails) / rows
    keyring = ag.LocalKeyring(tempfile.mkdtemp())
    keyring.ensure_key("bench")
    kek = keyring.kek("bench")
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {
        "rows": rows,
        "mean_value_bytes": round(mean_bytes, 1),
        "cores": cores,
    }

    def amlguard_round(mode: str, threads: int | None) -> tuple[float, float]:
        enc_s, enc = best_of(
            lambda: ag.encrypt_columns(table, ["email"], kek=kek, mode=mode, threads=threads)
        )
        dec_s, plain = best_of(lambda: ag.decrypt_columns(enc, keks=[kek], threads=threads))
        assert plain.equals(table)
        return rows / enc_s, rows / dec_s

    for mode in ("randomized", "deterministic"):
        for threads, label in ((1, "1 thread"), (None, f"{cores} threads")):
            encrypt_rate, decrypt_rate = amlguard_round(mode, threads)
            results[f"amlguard {mode} encrypt ({label})"] = encrypt_rate
            results[f"amlguard {mode} decrypt ({label})"] = decrypt_rate

    aad = b"amlguard/bench/email"
    values = [e.encode() for e in emails]
    gcm = AESGCM(AESGCM.generate_key(bit_length=256))

    def gcm_encrypt() -> list[bytes]:
        out = []
        for v in values:
            nonce = os.urandom(12)
            out.append(nonce + gcm.encrypt(nonce, v, aad))
        return out

    enc_s, sealed = best_of(gcm_encrypt)
    dec_s, _ = best_of(lambda: [gcm.decrypt(s[:12], s[12:], aad) for s in sealed])
    results["cryptography AESGCM encrypt (1 thread)"] = rows / enc_s
    results["cryptography AESGCM decrypt (1 thread)"] = rows / dec_s

    siv = AESSIV(AESSIV.generate_key(bit_length=512))
    enc_s, sealed = best_of(lambda: [siv.encrypt(v, [aad]) for v in values])
    dec_s, _ = best_of(lambda: [siv.decrypt(s, [aad]) for s in sealed])
    results["cryptography AESSIV encrypt (1 thread)"] = rows / enc_s
    results["cryptography AESSIV decrypt (1 thread)"] = rows / dec_s

    width = max(len(k) for k in results)
    for key, value in results.items():
        rate = isinstance(value, float) and key.startswith(("amlguard", "cryptography"))
        shown = f"{value / 1e6:8.2f} M values/s" if rate else str(value)
        print(f"{key:<{width}}  {shown}")
    for mode, peer in (("randomized", "AESGCM"), ("deterministic", "AESSIV")):
        for op in ("encrypt", "decrypt"):
            ours = results[f"amlguard {mode} {op} (1 thread)"]
            theirs = results[f"cryptography {peer} {op} (1 thread)"]
            print(f"per core, {mode} {op}: amlguard / cryptography {peer} = {ours / theirs:.1f}x")
    print(json.dumps({k: round(v) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
