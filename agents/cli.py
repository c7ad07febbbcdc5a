"""`estate agent`: enrol this device once, then run the agent with the saved identity."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from agents.buffer import DEFAULT_MAX_REPORTS
from agents.config import CONFIG_FILE
from agents.identity import (
    Identity,
    IdentityError,
    default_state_dir,
    identity_path,
    load_identity,
    save_identity,
)
from agents.lock import StateDirLock
from agents.state import StateError, ensure_state_dir
from agents.store import DATABASE_FILE

DEVICE_KINDS = ("in_cell_phone", "tablet", "laptop", "kiosk")
ENROL_FIRST = (
    "Enrol this device first:\n\n"
    "    estate agent --enrol TOKEN --server URL\n\n"
    "IT support creates one-time tokens with `estate devices enrol`. If this device was "
    "enrolled with another state directory, pass --state-dir or set ESTATE_AGENT_STATE_DIR."
)


@click.command(name="agent")
@click.option("--enrol", "token", metavar="TOKEN", help="Redeem this one-time enrolment token.")
@click.option("--server", metavar="URL", help="Control plane URL to enrol with (with --enrol).")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ESTATE_AGENT_STATE_DIR",
    show_envvar=True,
    help="Where the identity, counters and report buffer live "
    "[default: ~/.local/state/estate-agent].",
)
@click.option("--serial", help="Serial number to enrol with [default: read from the machine].")
@click.option("--kind", type=click.Choice(DEVICE_KINDS), help="Kind of device, when enrolling.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Report health this often, overriding the control plane's health_interval_s.",
)
@click.option(
    "--buffer-max",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_REPORTS,
    show_default=True,
    help="Reports kept on disk while the broker is unreachable; the oldest are dropped first.",
)
@click.option("--force", is_flag=True, help="With --enrol: replace an existing identity.")
@click.option(
    "--allow-system-actions",
    is_flag=True,
    help="Let the control plane reboot and lock this machine and restart the agent; "
    "off by default, when those commands fail with a reason.",
)
@click.option(
    "--reboot-command",
    default="systemctl reboot",
    show_default=True,
    help="What a reboot command runs (with --allow-system-actions).",
)
@click.option(
    "--lock-command",
    default="loginctl lock-sessions",
    show_default=True,
    help="What a lock command runs (with --allow-system-actions).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also log to this file; collect_diagnostics sends its last lines.",
)
@click.option(
    "--sandbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where remote (Ansible) commands run, and where files may be written and fetched "
    "[default: <state-dir>/sandbox].",
)
@click.option(
    "--allow-dir",
    "allow_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Another directory remote file transfers may use; repeat for more.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def agent(
    token: str | None,
    server: str | None,
    state_dir: Path | None,
    serial: str | None,
    kind: str | None,
    interval: float | None,
    buffer_max: int,
    force: bool,
    allow_system_actions: bool,
    reboot_command: str,
    lock_command: str,
    log_file: Path | None,
    sandbox: Path | None,
    allow_dirs: tuple[Path, ...],
    log_level: str,
) -> None:
    """Run the device agent: health reports, signed commands and desired configuration.

    \b
    First time on a device, enrol with a one-time token; the agent saves the
    identity it receives (identity.json, readable by its owner only) and starts:
        estate agent --enrol TOKEN --server https://estate.example.gov.uk
    \b
    After that (for example from a system service), run it with the saved identity:
        estate agent

    The agent reports health every health_interval_s seconds (set by the control plane),
    keeps reports on disk while the broker is unreachable and sends them in order once it
    is back, and stops cleanly on SIGTERM or Ctrl-C.
    """
    from agents.actions import ActionSettings, parse_command_line

    try:
        action_settings = ActionSettings(
            allow_system_actions=allow_system_actions,
            reboot_command=parse_command_line(reboot_command),
            lock_command=parse_command_line(lock_command),
            log_file=log_file,
        )
    except ValueError as exc:
        raise click.UsageError(f"--reboot-command / --lock-command: {exc}") from None
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    state_dir = state_dir or default_state_dir()
    if token is not None:
        identity = _enrol(token, server, state_dir, serial=serial, kind=kind, force=force)
    elif server or serial or kind or force:
        raise click.UsageError(
            "--server, --serial, --kind and --force only apply with --enrol TOKEN"
        )
    else:
        identity = _saved_identity(state_dir)
    from agents.actions import install_actions
    from agents.remote_ops import Sandbox
    from agents.runner import Agent

    remote_dirs = Sandbox(
        (sandbox or state_dir / "sandbox").absolute(), tuple(d.absolute() for d in allow_dirs)
    )
    try:
        runner = Agent(
            identity,
            state_dir,
            interval_s=interval,
            buffer_max=buffer_max,
            sandbox=remote_dirs,
        )
        install_actions(runner.actions, runner, action_settings)
        runner.run_forever()
    except (StateError, IdentityError) as exc:
        raise click.ClickException(str(exc)) from None
    if runner.restart_exit_code is not None:
        raise SystemExit(runner.restart_exit_code)


def _saved_identity(state_dir: Path) -> Identity:
    try:
        identity = load_identity(state_dir)
    except IdentityError as exc:
        raise click.ClickException(f"The saved identity cannot be used: {exc}") from None
    if identity is None:
        raise click.ClickException(f"No device identity in {state_dir}. {ENROL_FIRST}")
    return identity


def _enrol(
    token: str,
    server: str | None,
    state_dir: Path,
    *,
    serial: str | None,
    kind: str | None,
    force: bool,
) -> Identity:
    from agents.enrol import EnrolmentError, detect_serial, redeem

    if not server:
        raise click.UsageError("--enrol needs --server URL, the control plane to enrol with")
    if not token.strip():
        raise click.UsageError("--enrol needs the token IT support gave you")
    try:
        previous = load_identity(state_dir)
    except IdentityError:
        previous = None  # damaged: replacing it is exactly what enrolment is for
    if previous is not None and not force:
        raise click.ClickException(
            f"This device is already enrolled as {previous.device_id} "
            f"({identity_path(state_dir)}). Run `estate agent` to use that identity, "
            "or add --force to replace it with a new enrolment."
        )
    serial = serial or detect_serial()
    if not serial:
        raise click.UsageError("Could not read this machine's serial number; pass --serial")
    ensure_state_dir(state_dir)
    try:
        lock = StateDirLock(state_dir)  # not while an agent is running on this directory
    except StateError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        identity = redeem(server, token.strip(), serial=serial, kind=kind)
        _forget_previous_device(state_dir)
        path = save_identity(state_dir, identity)
    except EnrolmentError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        lock.release()
    click.echo(f"Enrolled as {identity.device_id} at {identity.prison_code}; identity in {path}")
    return identity


def _forget_previous_device(state_dir: Path) -> None:
    """Queued reports and applied config belong to the old identity; counters stay monotonic."""
    for name in (DATABASE_FILE, f"{DATABASE_FILE}-wal", f"{DATABASE_FILE}-shm", CONFIG_FILE):
        (state_dir / name).unlink(missing_ok=True)


if __name__ == "__main__":
    agent()
