"""A bounded, crash-safe FIFO of line-protocol batches on disk, for when the TSDB is down."""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".lp"


class Spool:
    """One file per batch, named by a rising sequence number; written, fsynced, then renamed.

    When the spool would exceed `max_bytes`, the oldest batches are dropped (and reported by
    `append`) so the disk never fills up behind a long TSDB outage.
    """

    def __init__(self, directory: Path, *, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):
            leftover.unlink()  # a batch half-written by a crash was never acknowledged
        files = sorted(directory.glob(f"*{SUFFIX}"))
        self._queue: deque[tuple[Path, int]] = deque((p, p.stat().st_size) for p in files)
        self._next = int(files[-1].stem) + 1 if files else 1
        self._bytes = sum(size for _, size in self._queue)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def count(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def append(self, data: bytes) -> int:
        """Durably add a batch; returns how many lines of older batches were dropped for room."""
        dropped = 0
        while self._queue and self._bytes + len(data) > self.max_bytes:
            oldest = self._queue[0][0]
            lines = oldest.read_bytes().count(b"\n") + 1
            log.error(
                "TSDB spool %s is full (%d bytes): dropping %d lines of %s",
                self.directory,
                self._bytes,
                lines,
                oldest.name,
            )
            self.remove(oldest)
            dropped += lines
        final = self.directory / f"{self._next:020d}{SUFFIX}"
        temporary = final.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        self._fsync_directory()
        self._next += 1
        self._queue.append((final, len(data)))
        self._bytes += len(data)
        return dropped

    def oldest(self) -> Path | None:
        return self._queue[0][0] if self._queue else None

    def remove(self, path: Path) -> None:
        """Forget the oldest batch (the one `oldest()` returned) once it is safely elsewhere."""
        self._pop(path).unlink()

    def set_aside(self, path: Path) -> Path:
        """Move a batch the TSDB refuses as invalid out of the queue, keeping it for people."""
        rejected = self.directory / "rejected"
        rejected.mkdir(exist_ok=True)
        target = rejected / path.name
        os.replace(self._pop(path), target)
        return target

    def _pop(self, path: Path) -> Path:
        head, size = self._queue[0]
        if head != path:
            raise ValueError(f"spool batches leave in order: {path.name} is not {head.name}")
        self._queue.popleft()
        self._bytes -= size
        return head

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
