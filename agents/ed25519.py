"""Ed25519 signature checks through the system's OpenSSL libcrypto, else `cryptography`.

The agent only ever verifies. Python's own hashlib and ssl modules already load libcrypto,
so calling its EVP interface through ctypes costs almost nothing, where importing
`cryptography` (its own statically linked OpenSSL) adds about 8 MB to the agent's resident
memory. Both paths run OpenSSL's Ed25519 verification, so they accept the same signatures.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
EVP_PKEY_ED25519 = 1087  # NID_ED25519, fixed since OpenSSL 1.1.1
LIBCRYPTO_NAMES = ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so")

# RFC 8032 section 7.1, test 3: a library is used only if it accepts this and refuses a change.
SELF_TEST_KEY = bytes.fromhex("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025")
SELF_TEST_MESSAGE = bytes.fromhex("af82")
SELF_TEST_SIGNATURE = bytes.fromhex(
    "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
    "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
)


class SignatureKey(Protocol):
    """A public key whose verify(signature, data) raises when the signature is not valid."""

    def verify(self, signature: bytes, data: bytes) -> None: ...


class BadSignature(ValueError):
    """The signature does not verify with this key."""


class _LibCrypto:
    """The handful of libcrypto functions an Ed25519 check needs, with exact C signatures."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, size = ctypes.c_void_p, ctypes.c_size_t
        self.new_raw_public_key = lib.EVP_PKEY_new_raw_public_key
        self.new_raw_public_key.argtypes = [ctypes.c_int, p, ctypes.c_char_p, size]
        self.new_raw_public_key.restype = p
        self.pkey_free = lib.EVP_PKEY_free
        self.pkey_free.argtypes = [p]
        self.pkey_free.restype = None
        self.md_ctx_new = lib.EVP_MD_CTX_new
        self.md_ctx_new.argtypes = []
        self.md_ctx_new.restype = p
        self.md_ctx_free = lib.EVP_MD_CTX_free
        self.md_ctx_free.argtypes = [p]
        self.md_ctx_free.restype = None
        self.verify_init = lib.EVP_DigestVerifyInit
        self.verify_init.argtypes = [p, p, p, p, p]
        self.verify_init.restype = ctypes.c_int
        self.verify = lib.EVP_DigestVerify
        self.verify.argtypes = [p, ctypes.c_char_p, size, ctypes.c_char_p, size]
        self.verify.restype = ctypes.c_int
        self.clear_errors = lib.ERR_clear_error
        self.clear_errors.argtypes = []
        self.clear_errors.restype = None


_loaded: list[_LibCrypto | None] = []
_load_lock = threading.Lock()


def _loaded_libcrypto_path() -> str | None:
    """The libcrypto this process already maps (Python's _hashlib links it), on Linux."""
    try:
        import _hashlib  # noqa: F401  (maps libcrypto, as paho's hashlib import does anyway)

        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if "/libcrypto.so" in path:
                    return path
    except (ImportError, OSError):
        return None
    return None


def libcrypto() -> _LibCrypto | None:
    """OpenSSL's libcrypto with Ed25519 support, or None when this system has none."""
    with _load_lock:
        if not _loaded:
            _loaded.append(_open_libcrypto())
        return _loaded[0]


def _open_libcrypto() -> _LibCrypto | None:
    candidates = [_loaded_libcrypto_path(), *LIBCRYPTO_NAMES]
    for name in candidates:
        if not name:
            continue
        try:
            lib = _LibCrypto(ctypes.CDLL(name))
        except (OSError, AttributeError):  # missing, or older than 1.1.1 (no raw keys)
            continue
        if _passes_self_test(lib):
            return lib
    return None


def _passes_self_test(lib: _LibCrypto) -> bool:
    """Whether `lib` verifies Ed25519 correctly (another library may number its types apart)."""
    try:
        key = LibcryptoEd25519Key(lib, SELF_TEST_KEY)
    except ValueError:
        return False
    tampered = SELF_TEST_MESSAGE[:-1] + bytes([SELF_TEST_MESSAGE[-1] ^ 1])
    try:
        key.verify(SELF_TEST_SIGNATURE, SELF_TEST_MESSAGE)
    except BadSignature:
        return False
    try:
        key.verify(SELF_TEST_SIGNATURE, tampered)
    except BadSignature:
        return True
    return False


class LibcryptoEd25519Key:
    """An Ed25519 public key held by libcrypto; safe to verify with from several threads."""

    def __init__(self, lib: _LibCrypto, raw: bytes) -> None:
        if len(raw) != PUBLIC_KEY_BYTES:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._lib = lib
        self._pkey = lib.new_raw_public_key(EVP_PKEY_ED25519, None, raw, len(raw))
        if not self._pkey:
            lib.clear_errors()
            raise ValueError("libcrypto refused the Ed25519 public key")

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return if `signature` is this key's signature of `data`, else raise BadSignature."""
        if not isinstance(signature, bytes) or not isinstance(data, bytes):
            raise TypeError("signature and data must be bytes")
        if len(signature) != SIGNATURE_BYTES:
            raise BadSignature("an Ed25519 signature is 64 bytes")
        lib = self._lib
        ctx = lib.md_ctx_new()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new failed")
        try:
            ok = lib.verify_init(ctx, None, None, None, self._pkey) == 1 and (
                lib.verify(ctx, signature, len(signature), data, len(data)) == 1
            )
        finally:
            lib.md_ctx_free(ctx)
        if not ok:
            lib.clear_errors()  # leave no stale error for Python's ssl and hashlib to report
            raise BadSignature("signature does not verify")

    def __del__(self) -> None:
        pkey, self._pkey = getattr(self, "_pkey", None), None
        if pkey:
            self._lib.pkey_free(pkey)


def public_key_from_bytes(raw: bytes) -> SignatureKey:
    """A verifying key for 32 raw bytes: libcrypto when available, else `cryptography`."""
    lib = libcrypto()
    if lib is not None:
        return LibcryptoEd25519Key(lib, raw)
    return cryptography_public_key(raw)


def cryptography_public_key(raw: bytes) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


def signature_valid(key: SignatureKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is `key`'s signature of `data`, for either kind of key."""
    if isinstance(key, LibcryptoEd25519Key):
        try:
            key.verify(signature, data)
        except BadSignature:
            return False
        return True
    # Any other key is a `cryptography` one, so that package is already imported.
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
