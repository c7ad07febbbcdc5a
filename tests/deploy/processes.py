"""Running `estate` sub-commands as real child processes, with their output kept for failures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ESTATE = str(Path(sys.executable).with_name("estate"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def estate_env(**settings: str) -> dict[str, str]:
    """This environment without any ESTATE_* of its own, plus the given ESTATE_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ESTATE_")}
    env.update(settings)
    return env


def run_estate(args: list[str], env: Mapping[str, str], timeout_s: float = 120) -> str:
    """Run an estate command to completion; fail with its output if it does not succeed."""
    done = subprocess.run(
        [ESTATE, *args], env=dict(env), capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise AssertionError(
            f"`estate {' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


@dataclass
class EstateProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def exited(self) -> bool:
        return self.process.poll() is not None


@contextmanager
def running_estate(
    args: list[str], env: Mapping[str, str], log_path: Path, *, stop_timeout_s: float = 20
) -> Iterator[EstateProcess]:
    """Start `estate ARGS`; on exit stop it with SIGTERM (SIGKILL if it lingers)."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [ESTATE, *args],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so its own children can be stopped with it
        )
    running = EstateProcess(process, log_path)
    try:
        yield running
    finally:
        _stop(process, stop_timeout_s)


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
    # Anything it left behind in its session (pool children, server workers) goes too.
    with contextlib.suppress(ProcessLookupError):  # an empty group: nothing was left behind
        os.killpg(process.pid, signal.SIGKILL)
