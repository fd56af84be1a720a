"""Envelope encryption from Python: round trips, a third-party decrypt, tampering, rotation."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from pathlib import Path

import amlguard as ag
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

SEGMENT = 4096


@pytest.fixture
def kek(keyring: ag.LocalKeyring) -> ag.Kek:
    keyring.ensure_key("training-data")
    return keyring.kek("training-data")


def hkdf(salt: bytes, ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def third_party_decrypt(blob: bytes, keyring_dir: Path) -> bytes:
    """Decrypt following docs/format.md alone, with Python `cryptography`."""
    assert blob[:4] == b"AMLG" and blob[4] == 1 and blob[5] == 1
    (segment_size,) = struct.unpack(">I", blob[6:10])
    salt, prefix, commitment = blob[10:42], blob[42:49], blob[49:81]
    (ctx_len,) = struct.unpack(">I", blob[81:85])
    bound = blob[: 85 + ctx_len]
    (ks_len,) = struct.unpack(">I", blob[85 + ctx_len : 89 + ctx_len])
    key_section = blob[89 + ctx_len : 89 + ctx_len + ks_len]
    tag = blob[89 + ctx_len + ks_len : 121 + ctx_len + ks_len]
    payload = blob[121 + ctx_len + ks_len :]
    # Key section: one wrapped key: provider, key id, algorithm, wrapped bytes.
    offset = 1
    provider_len = key_section[offset]
    offset += 1 + provider_len
    (key_id_len,) = struct.unpack(">H", key_section[offset : offset + 2])
    key_id = key_section[offset + 2 : offset + 2 + key_id_len].decode()
    offset += 2 + key_id_len
    alg_len = key_section[offset]
    offset += 1 + alg_len
    (wrapped_len,) = struct.unpack(">H", key_section[offset : offset + 2])
    wrapped = key_section[offset + 2 : offset + 2 + wrapped_len]
    name, version = key_id.removeprefix("local:").split("@")
    keyring_key = (keyring_dir / name / f"v{int(version):06d}.key").read_bytes()
    kek_wrap_key = hkdf(b"amlguard/v1", keyring_key, b"kek-wrap")
    dek = aes_key_unwrap_with_padding(kek_wrap_key, wrapped)

    header_hash = hashlib.sha256(bound).digest()
    assert hmac.compare_digest(hkdf(salt, dek, b"amlguard/v1/key-commitment"), commitment)
    mac_key = hkdf(salt, dek, b"amlguard/v1/header-mac")
    assert hmac.compare_digest(hmac.new(mac_key, header_hash + key_section, "sha256").digest(), tag)
    aead = AESGCM(hkdf(salt, dek, b"amlguard/v1/segment-key" + header_hash))
    n = -(-len(payload) // (segment_size + 16))
    out = []
    for i in range(n):
        chunk = payload[i * (segment_size + 16) : (i + 1) * (segment_size + 16)]
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if i == n - 1 else b"\x00")
        out.append(aead.decrypt(nonce, chunk, header_hash))
    return b"".join(out)


def test_bytes_round_trip_and_third_party_decrypt(kek: ag.Kek, keyring: ag.LocalKeyring) -> None:
    for size in (0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 5 * SEGMENT + 17):
        data = os.urandom(size)
        blob = ag.encrypt_bytes(
            data, kek=kek, context={"dataset": "patients"}, segment_size_bytes=SEGMENT
        )
        assert ag.decrypt_bytes(blob, keks=[kek], context={"dataset": "patients"}) == data
        assert ag.decrypt_bytes(bytearray(blob), kek=kek) == data
        assert third_party_decrypt(blob, Path(keyring.path)) == data


def test_files_open_encrypted_and_inspect(tmp_path: Path, kek: ag.Kek) -> None:
    source = tmp_path / "data.bin"
    data = os.urandom(3 * SEGMENT + 123)
    source.write_bytes(data)
    sealed = tmp_path / "data.bin.amlg"
    report = ag.encrypt_file(
        source, sealed, kek=kek, context={"dataset": "d"}, segment_size_bytes=SEGMENT
    )
    assert report.plaintext_bytes == len(data) and report.segments == 4
    assert report.key_ids == [kek.key_id] and kek.key_id == "local:training-data@1"
    info = ag.inspect(sealed)
    assert info.context == {"dataset": "d"} and info.key_ids == [kek.key_id]
    assert info.segment_size_bytes == SEGMENT and info.plaintext_len_bytes == len(data)
    assert ag.decrypt_file(sealed, tmp_path / "out.bin", keks=[kek]).plaintext_bytes == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    with ag.open_encrypted(sealed, keks=[kek], context={"dataset": "d"}) as f:
        assert f.size == len(data) and f.seekable() and not f.writable()
        f.seek(2 * SEGMENT - 10)
        assert f.read(30) == data[2 * SEGMENT - 10 : 2 * SEGMENT + 20]
        assert f.seek(-5, 2) == len(data) - 5
        assert f.read() == data[-5:]
        assert f.read(10) == b""
    assert f.closed
    with pytest.raises(ValueError, match="closed"):
        f.read(1)


def test_every_bit_flip_is_rejected(tmp_path: Path, kek: ag.Kek) -> None:
    blob = ag.encrypt_bytes(b"x" * 100, kek=kek, context={"c": "1"}, segment_size_bytes=SEGMENT)
    accepted = 0
    for index in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[index] ^= 1 << bit
            try:
                ag.decrypt_bytes(bytes(tampered), keks=[kek])
                accepted += 1
            except ag.AmlguardError:
                pass
    assert accepted == 0


def test_truncation_reorder_and_wrong_keys(
    tmp_path: Path, kek: ag.Kek, keyring: ag.LocalKeyring
) -> None:
    data = os.urandom(3 * SEGMENT)
    blob = ag.encrypt_bytes(data, kek=kek, context={"dataset": "a"}, segment_size_bytes=SEGMENT)
    header_len = len(blob) - 3 * (SEGMENT + 16)
    segments = [
        blob[header_len + i * (SEGMENT + 16) : header_len + (i + 1) * (SEGMENT + 16)]
        for i in range(3)
    ]
    header = blob[:header_len]
    for variant in (
        header + segments[0] + segments[1],  # truncated at a segment boundary
        blob[:-1],
        header + segments[1] + segments[0] + segments[2],
        header + segments[0] + segments[0] + segments[2],
    ):
        with pytest.raises(ag.DecryptionError):
            ag.decrypt_bytes(variant, keks=[kek])
    other = ag.encrypt_bytes(data, kek=kek, segment_size_bytes=SEGMENT)
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_bytes(other[: len(other) - 3 * (SEGMENT + 16)] + b"".join(segments), keks=[kek])
    with pytest.raises(ag.DecryptionError) as caught:
        ag.decrypt_bytes(blob, keks=[kek], context={"dataset": "b"})
    assert (
        str(caught.value)
        == "decryption failed: the data was tampered with, or the key or context is wrong"
    )
    keyring.ensure_key("other")
    with pytest.raises(ag.NoMatchingKeyError, match="local:training-data@1"):
        ag.decrypt_bytes(blob, keks=[keyring.kek("other")])
    impostor = ag.LocalKeyring(tmp_path / "impostor")
    impostor.ensure_key("training-data")
    with pytest.raises(ag.DecryptionError):
        ag.decrypt_bytes(blob, keks=[impostor.kek("training-data")])


def test_rotation_and_rewrap(tmp_path: Path, kek: ag.Kek, keyring: ag.LocalKeyring) -> None:
    sealed = tmp_path / "f.amlg"
    source = tmp_path / "f"
    source.write_bytes(b"secret rows")
    ag.encrypt_file(source, sealed, kek=kek)
    keyring.rotate("training-data")
    v2 = keyring.kek("training-data")
    assert v2.key_id == "local:training-data@2"
    assert ag.decrypt_file(sealed, tmp_path / "a", keks=[v2]).plaintext_bytes == 11
    payload_before = sealed.read_bytes()[-27:]
    info = ag.rewrap(sealed, old=kek, new=v2)
    assert info.key_ids == ["local:training-data@2"]
    assert sealed.read_bytes()[-27:] == payload_before, "rewrap does not re-encrypt data"
    (Path(keyring.path) / "training-data" / "v000001.key").unlink()
    assert (
        ag.decrypt_file(sealed, tmp_path / "b", keks=[keyring.kek("training-data")]).plaintext_bytes
        == 11
    )
    assert (tmp_path / "b").read_bytes() == b"secret rows"


def test_bad_input_is_typed_and_loses_nothing(tmp_path: Path, kek: ag.Kek) -> None:
    empty = tmp_path / "empty.amlg"
    empty.write_bytes(b"")
    with pytest.raises(ag.NotAnEnvelopeError):
        ag.inspect(empty)
    short = tmp_path / "short.amlg"
    short.write_bytes(ag.encrypt_bytes(b"abc", kek=kek)[:50])
    with pytest.raises(ag.TruncatedHeaderError):
        ag.inspect(short)
    plain = tmp_path / "plain.parquet"
    plain.write_bytes(b"PAR1" + b"\0" * 200)
    with pytest.raises(ag.NotAnEnvelopeError):
        ag.decrypt_file(plain, tmp_path / "out", keks=[kek])
    assert not (tmp_path / "out").exists()
    blob = bytearray(ag.encrypt_bytes(b"abc", kek=kek))
    blob[4] = 9
    with pytest.raises(ag.UnsupportedFormatError):
        ag.decrypt_bytes(bytes(blob), keks=[kek])
    huge = bytearray(ag.encrypt_bytes(b"abc", kek=kek))
    huge[6:10] = struct.pack(">I", 2**31)
    with pytest.raises(ag.MalformedHeaderError):
        ag.decrypt_bytes(bytes(huge), keks=[kek])
    with pytest.raises(FileNotFoundError):
        ag.encrypt_file(tmp_path / "absent", tmp_path / "x.amlg", kek=kek)
    source = tmp_path / "s"
    source.write_bytes(b"keep me")
    with pytest.raises(ag.AmlguardError, match="input itself"):
        ag.encrypt_file(source, source, kek=kek)
    assert source.read_bytes() == b"keep me"
    with pytest.raises(ag.InvalidArgumentError):
        ag.encrypt_bytes(b"x", kek=kek, segment_size_bytes=10)
    with pytest.raises(TypeError):
        ag.encrypt_bytes(b"x", kek=kek, context={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        ag.encrypt_bytes(b"x")


def test_reprs_and_errors_carry_no_key_bytes(kek: ag.Kek, keyring: ag.LocalKeyring) -> None:
    material = (Path(keyring.path) / "training-data" / "v000001.key").read_bytes()
    blob = ag.encrypt_bytes(b"x", kek=kek)
    texts = [repr(kek), repr(keyring)]
    try:
        ag.decrypt_bytes(blob[:-1], keks=[kek])
    except ag.DecryptionError as err:
        texts.append(str(err))
    for text in texts:
        assert material.hex() not in text and str(material) not in text
