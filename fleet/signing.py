"""The control plane's Ed25519 command-signing key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agents.protocol import public_key_b64
from fleet.settings import Settings


def new_seed_b64() -> str:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def _from_seed(seed_b64: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(seed_b64, validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError as exc:
        raise ValueError(
            "ESTATE_SIGNING_KEY is not a base64 Ed25519 seed; "
            "create one with `estate keys generate`"
        ) from exc


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """From ESTATE_SIGNING_KEY, or a key file generated once in the data directory."""
    if settings.signing_key:
        return _from_seed(settings.signing_key)
    path = Path(settings.data_dir) / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_seed_b64())
    return _from_seed(path.read_text().strip())


def signing_public_key(settings: Settings) -> str:
    return public_key_b64(load_signing_key(settings))
