"""The actions a real device carries out: reboot, lock, restart, diagnostics, config refresh.

Reboot, lock and restart_agent touch the machine itself, so they run only when the agent was
started with --allow-system-actions; otherwise they fail with a reason and nothing happens.
"""

from __future__ import annotations

import logging
import os
import platform
import shlex
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import psutil

from agents.commands import ActionFailed, ActionRegistry

log = logging.getLogger(__name__)

SYSTEM_ACTIONS_DISABLED = "system actions are disabled on this agent"
SYSTEM_COMMAND_TIMEOUT_S = 30
MAX_LOG_LINES = 50
MAX_LOG_LINE_CHARS = 300
# An exit status systemd's Restart=on-failure (and most service managers) restart after.
RESTART_EXIT_CODE = 75


class AgentControls(Protocol):
    """What the actions need from the running agent."""

    def status_snapshot(self) -> dict[str, Any]: ...

    def request_config_refresh(self) -> None: ...

    def request_restart(self, exit_code: int | None = None) -> None: ...


@dataclass(frozen=True)
class ActionSettings:
    allow_system_actions: bool = False
    reboot_command: list[str] = field(default_factory=lambda: ["systemctl", "reboot"])
    lock_command: list[str] = field(default_factory=lambda: ["loginctl", "lock-sessions"])
    log_file: Path | None = None


def parse_command_line(text: str) -> list[str]:
    """A shell-style command line split into arguments (no shell is ever involved)."""
    words = shlex.split(text)
    if not words:
        raise ValueError("the command is empty")
    return words


def run_system_command(argv: list[str]) -> str:
    """Run `argv`; its output on success, ActionFailed with the reason otherwise."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=SYSTEM_COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActionFailed(f"{shlex.join(argv)} could not run: {exc}") from exc
    output = (done.stdout + done.stderr).strip()[-2000:]
    if done.returncode != 0:
        detail = f": {output}" if output else ""
        raise ActionFailed(f"{shlex.join(argv)} exited {done.returncode}{detail}")
    return output or "ok"


def last_log_lines(path: Path | None, count: int) -> list[str]:
    """The last `count` lines of the log file, each cut to a readable length."""
    if path is None or count <= 0:
        return []
    try:
        with path.open("r", errors="replace") as fh:
            tail = deque(fh, maxlen=count)
    except OSError as exc:
        return [f"log file {path} cannot be read: {exc}"]
    return [line.rstrip("\n")[:MAX_LOG_LINE_CHARS] for line in tail]


def diagnostics(agent: AgentControls, log_file: Path | None, log_lines: int) -> dict[str, Any]:
    """A bounded summary of the agent and machine for IT support."""
    disk = psutil.disk_usage(os.path.abspath(os.sep))
    return {
        **agent.status_snapshot(),
        "host": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "uptime_s": int(time.time() - psutil.boot_time()),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": disk.percent,
        "load_average": list(os.getloadavg()),
        "log": last_log_lines(log_file, log_lines),
    }


def install_actions(
    registry: ActionRegistry, agent: AgentControls, settings: ActionSettings
) -> None:
    """Register every action a device supports, bound to this agent and its settings."""

    def system(argv: list[str]) -> str:
        if not settings.allow_system_actions:
            raise ActionFailed(SYSTEM_ACTIONS_DISABLED)
        log.warning("running %s on request of the control plane", shlex.join(argv))
        return run_system_command(argv)

    def collect_diagnostics(command: dict[str, Any]) -> str:
        params = command.get("params") or {}
        lines = params.get("log_lines", MAX_LOG_LINES) if isinstance(params, dict) else 0
        lines = min(max(int(lines), 0), MAX_LOG_LINES) if isinstance(lines, int) else 0
        return orjson.dumps(diagnostics(agent, settings.log_file, lines)).decode()

    def refresh_config(command: dict[str, Any]) -> str:
        agent.request_config_refresh()
        return "asked the broker for the current configuration"

    def restart_agent(command: dict[str, Any]) -> str:
        if settings.allow_system_actions:
            agent.request_restart(RESTART_EXIT_CODE)
            return f"exiting with status {RESTART_EXIT_CODE} for the service manager to restart"
        agent.request_restart()
        return "reconnecting as a new boot"

    registry.register("reboot", lambda command: system(settings.reboot_command))
    registry.register("lock", lambda command: system(settings.lock_command))
    registry.register("collect_diagnostics", collect_diagnostics)
    registry.register("refresh_config", refresh_config)
    registry.register("restart_agent", restart_agent)
