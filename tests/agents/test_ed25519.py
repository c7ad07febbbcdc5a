"""Ed25519 verification through libcrypto, checked against `cryptography`-made signatures."""

from __future__ import annotations

import copy
import ctypes
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agents import ed25519
from agents.ed25519 import (
    BadSignature,
    LibcryptoEd25519Key,
    libcrypto,
    public_key_from_bytes,
    signature_valid,
)
from agents.protocol import (
    Rejected,
    load_public_key,
    public_key_b64,
    sign_envelope,
    verify_envelope,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493  # L, the order of the base point

# RFC 8032 section 7.1, test 1: the empty message.
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_MESSAGE = b""
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def lib_key(key: Ed25519PrivateKey) -> LibcryptoEd25519Key:
    lib = libcrypto()
    assert lib is not None, "this system's libcrypto should provide Ed25519"
    return LibcryptoEd25519Key(lib, raw_public(key))


def cryptography_accepts(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def test_the_rfc_8032_test_vector_verifies_and_a_changed_message_does_not() -> None:
    key = public_key_from_bytes(RFC_PUBLIC)
    assert isinstance(key, LibcryptoEd25519Key)
    key.verify(RFC_SIGNATURE, RFC_MESSAGE)
    with pytest.raises(BadSignature):
        key.verify(RFC_SIGNATURE, b"\x00")


@pytest.mark.parametrize("message", [b"", b"x", b'{"action":"ping"}', bytes(range(256)) * 4096])
def test_signatures_made_by_cryptography_verify(message: bytes) -> None:
    private = Ed25519PrivateKey.generate()
    key = lib_key(private)
    key.verify(private.sign(message), message)
    assert signature_valid(key, private.sign(message), message)


def test_a_signature_from_another_key_is_refused() -> None:
    signer, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with pytest.raises(BadSignature):
        lib_key(other).verify(signer.sign(b"reboot"), b"reboot")


def test_a_signature_over_another_message_is_refused() -> None:
    private = Ed25519PrivateKey.generate()
    with pytest.raises(BadSignature):
        lib_key(private).verify(private.sign(b"ping"), b"reboot")


@pytest.mark.parametrize("length", [0, 1, 32, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_refused(length: int) -> None:
    private = Ed25519PrivateKey.generate()
    signature = (private.sign(b"ping") * 2)[:length]
    with pytest.raises(BadSignature):
        lib_key(private).verify(signature, b"ping")
    assert not signature_valid(lib_key(private), signature, b"ping")


def test_garbage_signatures_are_refused_as_cryptography_refuses_them() -> None:
    private = Ed25519PrivateKey.generate()
    key, reference = lib_key(private), private.public_key()
    rng = random.Random(20261127)
    for _ in range(200):
        garbage = rng.randbytes(64)
        assert not signature_valid(key, garbage, b"ping")
        assert not cryptography_accepts(reference, garbage, b"ping")
    assert not signature_valid(key, bytes(64), b"ping")
    assert not signature_valid(key, b"\xff" * 64, b"ping")


def test_every_single_bit_flip_in_signature_or_message_is_refused() -> None:
    private = Ed25519PrivateKey.generate()
    key, message = lib_key(private), b'{"action":"reboot","device_id":"MDI-1"}'
    signature = private.sign(message)
    for bit in range(len(signature) * 8):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not signature_valid(key, bytes(flipped), message), bit
    for bit in range(len(message) * 8):
        flipped = bytearray(message)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not signature_valid(key, signature, bytes(flipped)), bit


def test_a_malleated_signature_with_s_beyond_the_group_order_is_refused_by_both() -> None:
    private = Ed25519PrivateKey.generate()
    signature = private.sign(b"ping")
    s = int.from_bytes(signature[32:], "little") + GROUP_ORDER
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not cryptography_accepts(private.public_key(), malleated, b"ping")
    assert not signature_valid(lib_key(private), malleated, b"ping")


def test_random_keys_and_messages_agree_with_cryptography() -> None:
    rng = random.Random(7)
    for _ in range(50):
        private = Ed25519PrivateKey.generate()
        message = rng.randbytes(rng.randrange(0, 300))
        signature = bytearray(private.sign(message))
        if rng.random() < 0.5:
            signature[rng.randrange(64)] ^= 1 << rng.randrange(8)
        expected = cryptography_accepts(private.public_key(), bytes(signature), message)
        assert signature_valid(lib_key(private), bytes(signature), message) is expected


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_public_key_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        public_key_from_bytes(b"\x01" * length)


def test_a_library_numbering_ed25519_apart_mocked_is_not_used() -> None:
    lib = libcrypto()
    assert lib is not None
    assert ed25519._passes_self_test(lib)
    other = copy.copy(lib)
    real_new_key = lib.new_raw_public_key
    # Another libcrypto that numbers its Ed25519 key type differently from OpenSSL's 1087.
    other.new_raw_public_key = lambda _type, *rest: real_new_key(952, *rest)  # type: ignore[assignment]
    assert not ed25519._passes_self_test(other)


def test_a_refused_signature_leaves_no_openssl_error_behind() -> None:
    lib = libcrypto()
    assert lib is not None
    peek = ctypes.CDLL(ed25519._loaded_libcrypto_path() or "libcrypto.so.3").ERR_peek_error
    peek.restype = ctypes.c_ulong
    private = Ed25519PrivateKey.generate()
    with pytest.raises(BadSignature):
        lib_key(private).verify(bytes(64), b"ping")
    assert peek() == 0


def test_one_key_verifies_from_many_threads_at_once() -> None:
    private = Ed25519PrivateKey.generate()
    key, good, bad = lib_key(private), private.sign(b"ping"), private.sign(b"pong")
    results: list[tuple[bool, bool]] = []

    def check() -> None:
        for _ in range(200):
            results.append(
                (signature_valid(key, good, b"ping"), signature_valid(key, bad, b"ping"))
            )

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(True, False)] * 800


def test_envelopes_verify_with_the_libcrypto_key_and_forgeries_are_refused() -> None:
    private = Ed25519PrivateKey.generate()
    key = load_public_key(public_key_b64(private))
    assert isinstance(key, LibcryptoEd25519Key)
    signed = sign_envelope(private, "MDI-1", {"action": "ping"})
    assert verify_envelope(key, "MDI-1", signed)["action"] == "ping"
    forged = sign_envelope(Ed25519PrivateKey.generate(), "MDI-1", {"action": "ping"})
    tampered = signed.replace(b'"ping"', b'"boot"')
    unsigned = signed.split(b',"sig"')[0] + b"}"
    empty_signature = signed.split(b',"sig"')[0] + b',"sig":""}'
    for raw in (forged, tampered, empty_signature):
        with pytest.raises(Rejected) as refused:
            verify_envelope(key, "MDI-1", raw)
        assert refused.value.reason == "bad_signature"
    with pytest.raises(Rejected, match="malformed_envelope"):
        verify_envelope(key, "MDI-1", unsigned)


def test_envelopes_still_verify_with_a_cryptography_key() -> None:
    private = Ed25519PrivateKey.generate()
    signed = sign_envelope(private, "MDI-1", {"action": "ping"})
    assert verify_envelope(private.public_key(), "MDI-1", signed)["action"] == "ping"
    forged = sign_envelope(Ed25519PrivateKey.generate(), "MDI-1", {"action": "ping"})
    with pytest.raises(Rejected, match="bad_signature"):
        verify_envelope(private.public_key(), "MDI-1", forged)


def test_without_a_system_libcrypto_mocked_keys_come_from_cryptography(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_library(name: str) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ed25519.ctypes, "CDLL", no_library)
    monkeypatch.setattr(ed25519, "_loaded", [])
    private = Ed25519PrivateKey.generate()
    key = load_public_key(public_key_b64(private))
    assert isinstance(key, Ed25519PublicKey)
    signed = sign_envelope(private, "MDI-1", {"action": "ping"})
    assert verify_envelope(key, "MDI-1", signed)["action"] == "ping"
    forged = sign_envelope(Ed25519PrivateKey.generate(), "MDI-1", {"action": "ping"})
    with pytest.raises(Rejected, match="bad_signature"):
        verify_envelope(key, "MDI-1", forged)


def test_the_running_agent_verifies_without_importing_cryptography() -> None:
    private = Ed25519PrivateKey.generate()
    signed = sign_envelope(private, "MDI-1", {"action": "ping"}).decode()
    probe = (
        "import sys, agents.cli, agents.runner\n"
        "from agents.protocol import load_public_key, verify_envelope\n"
        f"key = load_public_key({public_key_b64(private)!r})\n"
        f"print(verify_envelope(key, 'MDI-1', {signed!r}.encode())['action'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('cryptography')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["ping", "[]"]
