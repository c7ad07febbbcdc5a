"""Counters that must survive restarts and crashes: the boot number and the health `seq`."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

COUNTERS_FILE = "counters.json"
DEFAULT_SEQ_BLOCK = 1000


class StateError(Exception):
    """The state directory holds something the agent cannot use; the message says what to do."""


def ensure_state_dir(state_dir: Path) -> Path:
    """Create the state directory (owner-only) if needed and return it."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return state_dir


def write_file_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask and ignored for old files
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def read_json_file(path: Path) -> dict[str, object] | None:
    """The JSON object in `path`, None when the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"{path} is not valid JSON ({exc}); restore it or remove it") from None
    if not isinstance(doc, dict):
        raise StateError(f"{path} must hold a JSON object; restore it or remove it")
    return doc


def _counter(doc: dict[str, object], name: str, path: Path) -> int:
    value = doc.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StateError(f"{path}: {name} must be a non-negative integer, found {value!r}")
    return value


class Counters:
    """The boot counter and the health sequence, persisted in counters.json.

    `seq` numbers are reserved on disk a block at a time (one fsync per block, not per report);
    after a crash the agent resumes above the whole reserved block, so a number is never reused.
    """

    def __init__(self, state_dir: Path, *, seq_block: int = DEFAULT_SEQ_BLOCK) -> None:
        if seq_block < 1:
            raise ValueError("seq_block must be at least 1")
        self.path = state_dir / COUNTERS_FILE
        self._seq_block = seq_block
        self._lock = threading.Lock()
        doc = read_json_file(self.path) or {}
        self.boot = _counter(doc, "boot", self.path)
        self._seq_reserved = _counter(doc, "seq_reserved", self.path)
        self._next_seq = self._seq_reserved + 1

    def start_boot(self) -> int:
        """Count one more agent start and return its boot number."""
        with self._lock:
            self.boot += 1
            self._save()
            return self.boot

    def next_seq(self) -> int:
        """The next health sequence number, strictly greater than any handed out before."""
        with self._lock:
            if self._next_seq > self._seq_reserved:
                self._seq_reserved = self._next_seq + self._seq_block - 1
                self._save()
            seq = self._next_seq
            self._next_seq += 1
            return seq

    @property
    def last_seq(self) -> int:
        """The last sequence number handed out (0 before the first)."""
        return self._next_seq - 1

    def release_unused(self) -> None:
        """On clean shutdown, give back the unused part of the block so numbering stays dense."""
        with self._lock:
            if self._seq_reserved != self._next_seq - 1:
                self._seq_reserved = self._next_seq - 1
                self._save()

    def _save(self) -> None:
        doc = {"boot": self.boot, "seq_reserved": self._seq_reserved}
        write_file_atomically(self.path, orjson.dumps(doc))
