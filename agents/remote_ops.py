"""What a remote request does on the device: run a command, write or read a file in chunks.

Files may only be written or read inside the allowed directories (the sandbox and any extra
directories the agent was started with). Commands run in their own process group, with the
sandbox as working and home directory, so a timeout or a cancel kills everything they started.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
MAX_STREAM_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT_S = 600
MAX_TIMEOUT_S = 86_400
KILL_GRACE_S = 2.0
SHELL = "/bin/sh"


class RequestRefused(Exception):
    """A request the agent will not carry out; the message says why (sent back and logged)."""


class RequestFailed(Exception):
    """A request that ran and failed; `detail` goes back in the reply."""

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.detail = {"error": message, **detail}


@dataclass(frozen=True)
class Sandbox:
    """The directory remote work happens in, plus any others files may be moved in and out of."""

    root: Path
    extra: tuple[Path, ...] = ()

    @property
    def allowed(self) -> tuple[Path, ...]:
        return (self.root, *self.extra)

    def prepare(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def check(self, raw: object, *, must_exist: bool) -> Path:
        """The real path of `raw` if it lies inside an allowed directory, else RequestRefused."""
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            raise RequestRefused("path must be a non-empty string")
        if not os.path.isabs(raw):
            raise RequestRefused(f"path {raw!r} must be absolute")
        path = Path(raw)
        if must_exist:
            real = Path(os.path.realpath(path))
        else:  # the file may not exist yet; its directory must, and decides where it lands
            real = Path(os.path.realpath(path.parent)) / path.name
            if path.name in ("", ".", ".."):
                raise RequestRefused(f"path {raw!r} does not name a file")
        for root in self.allowed:
            base = Path(os.path.realpath(root))
            if real == base or base in real.parents:
                if not must_exist and real.is_symlink():
                    raise RequestRefused(f"path {raw!r} is a symbolic link; refusing to follow")
                return real
        where = ", ".join(str(p) for p in self.allowed)
        raise RequestRefused(f"path {raw!r} is outside the allowed directories ({where})")


@dataclass
class ProcessTable:
    """Process groups of the commands running now, so a cancel can kill them all."""

    _running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancelled: set[str] = field(default_factory=set)

    def add(self, request_id: str, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running[request_id] = proc

    def remove(self, request_id: str) -> bool:
        """Forget the request; True when it was cancelled while it ran."""
        with self._lock:
            self._running.pop(request_id, None)
            if request_id in self._cancelled:
                self._cancelled.discard(request_id)
                return True
            return False

    def cancel(self, request_ids: Iterable[str] | None) -> list[str]:
        """Kill the process groups of these requests (all when None); the ids killed."""
        with self._lock:
            wanted = list(self._running) if request_ids is None else list(request_ids)
            victims = [(rid, self._running[rid]) for rid in wanted if rid in self._running]
            self._cancelled.update(rid for rid, _ in victims)
        for rid, proc in victims:
            log.warning("cancelling remote command %s (process group %d)", rid, proc.pid)
            # Off the caller's thread: the grace period must not stall the agent's MQTT loop.
            threading.Thread(target=kill_group, args=(proc,), daemon=True).start()
        return [rid for rid, _ in victims]


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the command's whole process group, then KILL what is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_GRACE_S)
    # Even when the leader has exited, others in its group may not have.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _timeout(params: dict[str, Any]) -> int:
    value = params.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT_S:
        raise RequestRefused(f"timeout must be whole seconds from 1 to {MAX_TIMEOUT_S}")
    return value


def _decode(params: dict[str, Any], name: str) -> bytes:
    value = params.get(name)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise RequestRefused(f"{name} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise RequestRefused(f"{name} is not valid base64") from None


def _clip(data: bytes) -> tuple[str, bool]:
    return base64.b64encode(data[:MAX_STREAM_BYTES]).decode(), len(data) > MAX_STREAM_BYTES


def run_command(
    request_id: str, params: dict[str, Any], sandbox: Sandbox, processes: ProcessTable
) -> dict[str, Any]:
    """Run the shell command in its own process group and return rc, stdout and stderr."""
    cmd = params.get("cmd")
    if not isinstance(cmd, str) or not cmd.strip():
        raise RequestRefused("cmd must be a non-empty command line")
    timeout = _timeout(params)
    stdin = _decode(params, "stdin")
    env = {**os.environ, "HOME": str(sandbox.root)}
    proc = subprocess.Popen(
        [SHELL, "-c", cmd],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=sandbox.root,
        env=env,
        start_new_session=True,  # its own process group: a timeout or cancel kills all of it
    )
    processes.add(request_id, proc)
    timed_out = False
    try:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            log.warning(
                "remote command %s ran past %d s; killing its process group", request_id, timeout
            )
            kill_group(proc)
            out, err = proc.communicate()
    finally:
        cancelled = processes.remove(request_id)
    stdout, out_cut = _clip(out)
    stderr, err_cut = _clip(err)
    result = {"rc": proc.returncode, "stdout": stdout, "stderr": stderr}
    if out_cut or err_cut:
        result["truncated"] = True
    if timed_out:
        raise RequestFailed(
            f"the command ran past its {timeout} s timeout; the agent killed its process group",
            timed_out=True,
            **result,
        )
    if cancelled:
        raise RequestFailed(
            "the command was cancelled; the agent killed its process group",
            cancelled=True,
            **result,
        )
    return result


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_path(target: Path, transfer: object) -> Path:
    if not isinstance(transfer, str) or not transfer.isalnum() or len(transfer) > 64:
        raise RequestRefused("transfer must be a short alphanumeric id")
    return target.with_name(f".{target.name}.{transfer}.part")


def write_chunk(params: dict[str, Any], sandbox: Sandbox) -> dict[str, Any]:
    """Write one chunk into the transfer's temporary file; the last one checks and renames it."""
    target = sandbox.check(params.get("path"), must_exist=False)
    part = _part_path(target, params.get("transfer"))
    offset = params.get("offset")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise RequestRefused("offset must be a non-negative integer")
    data = _decode(params, "data")
    if len(data) > CHUNK_BYTES:
        raise RequestRefused(f"a chunk carries at most {CHUNK_BYTES} bytes")
    if not target.parent.is_dir():
        raise RequestFailed(f"directory {target.parent} does not exist")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if offset == 0 else 0)
    fd = os.open(part, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if offset and os.fstat(fd).st_size != offset:
            raise RequestFailed(
                f"chunk at {offset} does not follow the {os.fstat(fd).st_size} bytes received"
            )
        os.lseek(fd, offset, os.SEEK_SET)
        os.write(fd, data)
        if params.get("final"):
            os.fsync(fd)
    finally:
        os.close(fd)
    if not params.get("final"):
        return {"received": offset + len(data)}
    expected = params.get("sha256")
    actual = _sha256_of(part)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise RequestFailed(f"checksum mismatch for {target}: expected {expected}, got {actual}")
    mode = params.get("mode")
    if isinstance(mode, int) and 0 <= mode <= 0o7777:
        os.chmod(part, mode)
    os.replace(part, target)
    return {"received": offset + len(data), "sha256": actual, "path": str(target)}


def read_chunk(params: dict[str, Any], sandbox: Sandbox) -> dict[str, Any]:
    """Read one chunk of a file; the last chunk also carries the whole file's checksum."""
    path = sandbox.check(params.get("path"), must_exist=True)
    offset = params.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise RequestRefused("offset must be a non-negative integer")
    if not path.is_file():
        raise RequestFailed(f"{path} is not a file that can be fetched")
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(offset)
        data = fh.read(CHUNK_BYTES)
    eof = offset + len(data) >= size
    result: dict[str, Any] = {
        "data": base64.b64encode(data).decode(),
        "size": size,
        "eof": eof,
    }
    if eof:
        result["sha256"] = _sha256_of(path)
    return result
