"""Encryption-side DEK reuse: one wrapped DEK for a bounded run of containers.

The wrapped DEK is read straight from each container's key section (docs/format.md §2.3), so
the tests see what a third party would. Key Vault figures come from the protocol server's call
counters, not from our own client.
"""

from __future__ import annotations

import concurrent.futures
import struct
from collections import Counter
from pathlib import Path

import amlguard as ag
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from support.azure_fixtures import ServerCredential
from support.keyvault_server import KeyVaultServer


@pytest.fixture
def kek(keyring: ag.LocalKeyring) -> ag.Kek:
    keyring.ensure_key("batch")
    return keyring.kek("batch")


def key_section(blob: bytes) -> bytes:
    (context_len,) = struct.unpack(">I", blob[81:85])
    at = 85 + context_len
    (length,) = struct.unpack(">I", blob[at : at + 4])
    return blob[at + 4 : at + 4 + length]


def local_dek(blob: bytes, keyring: ag.LocalKeyring) -> bytes:
    """The DEK of a single-KEK local container, unwrapped from the keyring file (format §5)."""
    section = key_section(blob)
    offset = 2 + section[1]
    (id_len,) = struct.unpack(">H", section[offset : offset + 2])
    key_id = section[offset + 2 : offset + 2 + id_len].decode()
    offset += 2 + id_len
    offset += 1 + section[offset]
    (wrapped_len,) = struct.unpack(">H", section[offset : offset + 2])
    wrapped = section[offset + 2 : offset + 2 + wrapped_len]
    name, version = key_id.removeprefix("local:").split("@")
    material = (Path(keyring.path) / name / f"v{int(version):06d}.key").read_bytes()
    wrap_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"amlguard/v1", info=b"kek-wrap"
    ).derive(material)
    return aes_key_unwrap_with_padding(wrap_key, wrapped)


def test_off_by_default_every_container_has_its_own_dek(kek: ag.Kek) -> None:
    blobs = [ag.encrypt_bytes(b"part %d" % i, kek=kek) for i in range(4)]
    assert len({key_section(b) for b in blobs}) == 4


def test_containers_share_a_wrapped_dek_up_to_max_files_and_not_beyond(
    kek: ag.Kek, keyring: ag.LocalKeyring
) -> None:
    reuse = ag.DekReuse(max_files=3, max_bytes=1 << 20)
    blobs = [
        ag.encrypt_bytes(b"part %d" % i, kek=kek, context={"part": str(i)}, dek_reuse=reuse)
        for i in range(7)
    ]
    sections = [key_section(b) for b in blobs]
    for i in range(7):
        for j in range(7):
            assert (sections[i] == sections[j]) == (i // 3 == j // 3), (i, j)
    assert (reuse.deks_minted, reuse.files) == (3, 7)
    # Shared DEK, yet each container has its own salt and nonce prefix (own segment key).
    assert len({b[10:49] for b in blobs}) == 7
    assert local_dek(blobs[0], keyring) == local_dek(blobs[2], keyring)
    assert local_dek(blobs[2], keyring) != local_dek(blobs[3], keyring)
    for i, blob in enumerate(blobs):
        assert ag.decrypt_bytes(blob, kek=kek, context={"part": str(i)}) == b"part %d" % i


def test_max_bytes_bounds_files_under_one_dek(tmp_path: Path, kek: ag.Kek) -> None:
    reuse = ag.DekReuse(max_files=100, max_bytes=100_000)
    sizes = [40_000, 40_000, 40_000, 15_000, 250_000, 5_000]
    sections = []
    for i, size in enumerate(sizes):
        plain, sealed = tmp_path / f"{i}.bin", tmp_path / f"{i}.amlg"
        plain.write_bytes(bytes([i]) * size)
        report = ag.encrypt_file(plain, sealed, kek=kek, dek_reuse=reuse, segment_size_bytes=8192)
        assert report.plaintext_bytes == size
        sections.append(key_section(sealed.read_bytes()))
        ag.decrypt_file(sealed, tmp_path / f"{i}.out", kek=kek)
        assert (tmp_path / f"{i}.out").read_bytes() == plain.read_bytes()
    # 40k + 40k fit in 100k; a third 40k does not: a fresh DEK, which 15k and 5k join. A file
    # larger than max_bytes gets a DEK of its own.
    assert sections[0] == sections[1] != sections[2] == sections[3] == sections[5]
    assert sections[4] not in (sections[0], sections[2])
    assert reuse.deks_minted == 3


def test_threads_share_a_dek_within_the_bound(kek: ag.Kek) -> None:
    reuse = ag.DekReuse(max_files=5, max_bytes=1 << 30)
    data = [bytes([i]) * 50_000 for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        blobs = list(pool.map(lambda d: ag.encrypt_bytes(d, kek=kek, dek_reuse=reuse), data))
    groups = Counter(key_section(b) for b in blobs)
    assert sorted(groups.values()) == [5, 5, 5, 5]
    assert reuse.deks_minted == 4 and not reuse.holds_dek
    for blob, plain in zip(blobs, data):
        assert ag.decrypt_bytes(blob, kek=kek) == plain


def test_retire_and_bad_bounds(kek: ag.Kek) -> None:
    reuse = ag.DekReuse(max_files=10)
    first = ag.encrypt_bytes(b"a", kek=kek, dek_reuse=reuse)
    assert reuse.holds_dek
    reuse.retire()
    assert not reuse.holds_dek
    assert key_section(ag.encrypt_bytes(b"b", kek=kek, dek_reuse=reuse)) != key_section(first)
    for bad in ({"max_files": 0}, {"max_bytes": 0}, {"max_bytes": (1 << 40) + 1}):
        with pytest.raises(ag.InvalidArgumentError):
            ag.DekReuse(**bad)


def test_repr_shows_counts_never_key_bytes(kek: ag.Kek, keyring: ag.LocalKeyring) -> None:
    reuse = ag.DekReuse(max_files=4, max_bytes=1 << 20)
    blob = ag.encrypt_bytes(b"secret rows", kek=kek, dek_reuse=reuse)
    dek = local_dek(blob, keyring)
    text = repr(reuse)
    assert text.startswith("DekReuse(max_files=4, max_bytes=1048576, deks_minted=1, files=1")
    for form in (dek.hex(), dek.hex().upper(), repr(dek), str(list(dek))):
        assert form not in text
    assert text.endswith("files_on_current_dek=1, bytes_on_current_dek=11)")


def test_key_vault_one_wrap_per_dek_and_one_unwrap_to_decrypt_them_all(
    kv: KeyVaultServer, tmp_path: Path
) -> None:
    kv.create_key("batch-reuse")
    vault = ag.AzureKeyVault(kv.url, ServerCredential(kv), ca_bundle=kv.ca_file)
    kek = vault.kek("batch-reuse")
    figures = {}
    for label, reuse in (("reuse", ag.DekReuse(max_files=10)), ("fresh", None)):
        kv.reset_counts()
        paths = []
        for i in range(10):
            plain, sealed = tmp_path / f"{label}{i}.bin", tmp_path / f"{label}{i}.amlg"
            plain.write_bytes(b"rows %d " % i * 1000)
            ag.encrypt_file(plain, sealed, kek=kek, dek_reuse=reuse)
            paths.append((plain, sealed))
        wraps = kv.calls["wrapkey"]
        kv.reset_counts()
        for plain, sealed in paths:
            out = sealed.with_suffix(".out")
            ag.decrypt_file(sealed, out, kek=kek)
            assert out.read_bytes() == plain.read_bytes()
        figures[label] = (wraps, kv.calls["unwrapkey"])
    assert figures["reuse"] == (1, 1)
    assert figures["fresh"] == (10, 10)
    print(
        "\nKey Vault calls for 10 files (wrapkey, unwrapkey):"
        f" DekReuse(max_files=10) {figures['reuse']}, a DEK per file {figures['fresh']}"
    )
