"""One agent per state directory: two would hand out the same `seq` numbers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agents.state import StateError

LOCK_FILE = "agent.lock"


class StateDirLock:
    """An exclusive flock on <state-dir>/agent.lock, released by the kernel if the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise StateError(
                f"another agent (pid {holder}) is already running with state directory "
                f"{self.path.parent}; stop it first or use a different --state-dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
