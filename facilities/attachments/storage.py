"""Where attachment bytes live: a small backend interface and a local-directory implementation."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

# Keys are generated here (uuid4 hex) and checked on every read, so no path can be smuggled in.
KEY_RE = re.compile(r"^[0-9a-f]{32}$")
CHUNK = 64 * 1024

# (content type, test on the first bytes). HEIC is an ISO media file whose brand says heic/mif1.
SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("application/pdf", b"%PDF-", 0),
)
HEIC_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"hevc")
ACCEPTED = ("image/jpeg", "image/png", "image/heic", "application/pdf")


def sniff(head: bytes) -> str | None:
    """The content type the bytes really are, among those accepted; None for anything else."""
    for content_type, magic, offset in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[4:8] == b"ftyp" and head[8:12] in HEIC_BRANDS:
        return "image/heic"
    return None


UPLOAD_TYPES = "a JPEG, PNG or HEIC photo, or a PDF"


class Unacceptable(ValueError):
    """An upload refused for its size (413) or content (415), with a sentence to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def accept(data: bytes, limit: int) -> str:
    """The content type of an upload read as up to `limit + 1` bytes; Unacceptable if refused."""
    if len(data) > limit:
        raise Unacceptable(
            413, f"The file is larger than {limit // 1024} KiB; send a smaller photo."
        )
    content_type = sniff(data[:16])
    if content_type is None:
        raise Unacceptable(
            415,
            f"The file's content is not {UPLOAD_TYPES}, whatever its name says; send one of those.",
        )
    return content_type


class UnknownKey(LookupError):
    """No stored object under this key (or the key is not one this storage gives out)."""


class AttachmentStorage(Protocol):
    def put(self, data: bytes) -> str:
        """Store the bytes and return the new key."""
        ...

    def stream(self, key: str) -> Iterator[bytes]:
        """The stored bytes in chunks; UnknownKey if there is nothing under `key`."""
        ...


class LocalDirectoryStorage:
    """Files under one directory, named by uuid, written atomically, readable only by us."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not KEY_RE.fullmatch(key):
            raise UnknownKey(key)
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = uuid.uuid4().hex
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_suffix(".part")
        with open(partial, "xb") as handle:
            handle.write(data)
        os.chmod(partial, 0o600)
        partial.replace(path)
        return key

    def stream(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise UnknownKey(key)
        return self._chunks(path)

    @staticmethod
    def _chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
