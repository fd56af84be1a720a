"""Envelope encryption throughput against openssl and Python `cryptography`, in one run.

Usage:  python benches/compare_envelope.py [--file-gib 1] [--dir DIR] [--skip-files] [--skip-rss]

  * 1 MiB in-memory buffers: amlguard encrypt_bytes / decrypt_bytes vs `cryptography` AESGCM
    (one call on the whole buffer, as a user would; AESGCM allocates its output);
  * `openssl speed -evp aes-256-gcm -bytes 1048576` (single core) as the hardware reference;
  * files: encrypt_file / decrypt_file of a --file-gib GiB file with 1 and 2 threads;
  * peak RSS of encrypt_file + decrypt_file on 1x and 4x --file-gib (separate processes), to show
    memory is bounded by segment size x threads, not file size.
Buffers: best of 7 runs of 100 calls, openssl measured before and after (the better figure
kept), so that a busy machine penalises neither side alone. Files: one run each, including the
fsync of the atomic commit; --dir /dev/shm takes the disk out of the figure (CPU-bound).
Throughput is plaintext bytes per second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import amlguard as ag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MIB = 1024 * 1024


def best_of(fn: Callable[[], Any], repeat: int = 7) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) over ``repeat`` runs."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu)


def openssl_gbps() -> float | None:
    if not shutil.which("openssl"):
        return None
    out = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", str(MIB), "-seconds", "3"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    match = re.search(r"^AES-256-GCM\s+([\d.]+)k", out, re.M | re.I)
    return float(match.group(1)) * 1000 / 1e9 if match else None


def write_zeros(path: Path, size: int) -> None:
    block = bytes(8 * MIB)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)


RSS_CHILD = """
import json, sys, amlguard as ag
kek = ag.LocalKeyring(sys.argv[3]).kek("bench")
ag.encrypt_file(sys.argv[1], sys.argv[2], kek=kek)
ag.decrypt_file(sys.argv[2], sys.argv[1] + ".out", keks=[kek])
# VmHWM, not ru_maxrss: ru_maxrss survives exec on Linux and would report the parent's peak.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file-gib", type=float, default=1.0)
    parser.add_argument("--skip-files", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--dir", default=None, help="scratch directory for the files")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="amlguard-bench-", dir=args.dir))
    try:
        keyring = ag.LocalKeyring(scratch / "ring")
        keyring.ensure_key("bench")
        kek = keyring.kek("bench")
        buffer = os.urandom(MIB)
        print(f"amlguard {ag.__version__}, {os.cpu_count()} CPUs")
        print("\n1 MiB buffers, single call (GB/s of plaintext)")
        reference = openssl_gbps()
        loops = 100
        sealed = ag.encrypt_bytes(buffer, kek=kek)
        results = {
            "amlguard encrypt_bytes": lambda: ag.encrypt_bytes(buffer, kek=kek),
            "amlguard decrypt_bytes": lambda: ag.decrypt_bytes(sealed, keks=[kek]),
        }
        aesgcm, nonce = AESGCM(AESGCM.generate_key(256)), os.urandom(12)
        sealed_peer = aesgcm.encrypt(nonce, buffer, None)
        results["cryptography AESGCM.encrypt"] = lambda: aesgcm.encrypt(nonce, buffer, None)
        results["cryptography AESGCM.decrypt"] = lambda: aesgcm.decrypt(nonce, sealed_peer, None)
        timings = {}
        for name, fn in results.items():
            timings[name] = best_of(lambda fn=fn: [fn() for _ in range(loops)])
        again = openssl_gbps()
        reference = max(reference or 0.0, again or 0.0) or None
        # openssl speed divides by CPU time, so the comparison uses this process's CPU time too
        # (wall-clock figures shown beside it suffer from whatever else the machine runs).
        print(f"  {'':<42} {'per CPU s':>9} {'wall':>6}")
        if reference:
            print(f"  openssl speed -evp aes-256-gcm, 1 core       {reference:9.2f}")
        for name, (wall, cpu) in timings.items():
            per_cpu = MIB * loops / max(cpu, 1e-9) / 1e9
            ratio = f"  ({per_cpu / reference:4.0%} of openssl)" if reference else ""
            print(f"  {name:<42} {per_cpu:9.2f} {MIB * loops / wall / 1e9:6.2f}{ratio}")

        if not args.skip_files:
            size = int(args.file_gib * 1024) * MIB
            plain = scratch / "plain.bin"
            write_zeros(plain, size)
            print(f"\nfiles of {size / 2**30:.1f} GiB (GB/s of plaintext, one run each)")
            for threads in (1, 2):
                enc = ag.encrypt_file(plain, scratch / "f.amlg", kek=kek, threads=threads)
                dec = ag.decrypt_file(
                    scratch / "f.amlg", scratch / "back.bin", keks=[kek], threads=threads
                )
                print(
                    f"  threads={threads}: encrypt_file {size / enc.elapsed_seconds / 1e9:6.2f}   "
                    f"decrypt_file {size / dec.elapsed_seconds / 1e9:6.2f}"
                )
            for path in (scratch / "f.amlg", scratch / "back.bin"):
                path.unlink()

            if not args.skip_rss:
                print("\npeak RSS of encrypt_file + decrypt_file (1 MiB segments, all CPUs)")
                for factor in (1, 4):
                    if factor > 1:
                        write_zeros(plain, factor * size)
                    out = subprocess.run(
                        [sys.executable, "-c", RSS_CHILD, str(plain), str(scratch / "r.amlg"),
                         str(scratch / "ring")],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    rss = json.loads(out.stdout)["peak_rss_mb"]
                    print(f"  {factor * size / 2**30:4.1f} GiB file: peak RSS {rss:6.0f} MB")
                    for path in (scratch / "r.amlg", Path(str(plain) + ".out")):
                        path.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
