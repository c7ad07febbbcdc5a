"""Queueing signed commands for devices, recording their replies and expiring the unanswered."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agents.protocol import sign_envelope
from fleet.audit.service import record
from fleet.commands.models import ACTIONS, FINAL_STATUSES, DeviceCommand
from fleet.devices.models import Device

DEFAULT_TTL_S = 300
MAX_OUTPUT_CHARS = 16_000
REPLY_STATUSES = frozenset({"done", "failed", "rejected"})
# Actions that change what a person sees on the device; the rest are housekeeping.
DISRUPTIVE_ACTIONS = frozenset({"reboot", "lock"})
MAX_DIAGNOSTIC_LOG_LINES = 50


class CommandRefused(Exception):
    """The command cannot be sent; `status` is the HTTP answer and `field` what to fix."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def check_params(action: str, params: dict[str, Any]) -> dict[str, Any]:
    """The action's parameters, or CommandRefused(422) naming the one to fix."""
    if action not in ACTIONS:
        raise CommandRefused(
            422, f"unknown action; use one of {', '.join(ACTIONS)}", field="action"
        )
    allowed = {"log_lines"} if action == "collect_diagnostics" else set()
    for name in params:
        if name not in allowed:
            raise CommandRefused(
                422, f"{action} takes no parameter {name!r}", field=f"params.{name}"
            )
    if "log_lines" in params:
        lines = params["log_lines"]
        if isinstance(lines, bool) or not isinstance(lines, int):
            raise CommandRefused(422, "must be a whole number", field="params.log_lines")
        if not 0 <= lines <= MAX_DIAGNOSTIC_LOG_LINES:
            raise CommandRefused(
                422, f"must be between 0 and {MAX_DIAGNOSTIC_LOG_LINES}", field="params.log_lines"
            )
    return dict(params)


def check_device_accepts_commands(device: Device) -> None:
    """Retired, revoked and never-enrolled devices cannot act on commands: 409 with why."""
    if device.lifecycle in ("retired", "revoked"):
        raise CommandRefused(
            409, f"device {device.id} is {device.lifecycle}; commands are not sent to it"
        )
    if device.lifecycle != "enrolled":
        raise CommandRefused(
            409, f"device {device.id} has not enrolled yet; it cannot take commands"
        )


def queue_command(
    *,
    session: Session,
    actor: str,
    device: Device,
    action: str,
    params: dict[str, Any],
    now: datetime,
    ttl_s: int = DEFAULT_TTL_S,
) -> DeviceCommand:
    """Record a queued command for an enrolled device and audit who asked for it."""
    params = check_params(action, params)
    check_device_accepts_commands(device)
    command = DeviceCommand(
        id=secrets.token_hex(16),
        device_id=device.id,
        action=action,
        params=params,
        requested_by=actor,
        status="queued",
        output="",
        created_at=now,
        # Whole seconds, matching the envelope's exp, so both sides agree when it lapses.
        expires_at=now.replace(microsecond=0) + timedelta(seconds=ttl_s),
        updated_at=now,
    )
    session.add(command)
    session.flush()
    record(
        session=session,
        actor=actor,
        action=f"device.command.{action}",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"command_id": command.id, "action": action, "params": params},
    )
    return command


def signed_envelope(command: DeviceCommand, key: Ed25519PrivateKey) -> bytes:
    """The command as the device receives it, valid until the command's expiry."""
    issued = int(command.created_at.timestamp())
    return sign_envelope(
        key,
        command.device_id,
        {"action": command.action, "params": command.params},
        ttl_s=int(command.expires_at.timestamp()) - issued,
        now=issued,
        envelope_id=command.id,
    )


def mark_delivered(*, session: Session, command_id: str, now: datetime) -> bool:
    """queued -> delivered once the broker has the command; a reply may already have won."""
    result = session.execute(
        update(DeviceCommand)
        .where(DeviceCommand.id == command_id, DeviceCommand.status == "queued")
        .values(status="delivered", updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_failed(*, session: Session, command_id: str, reason: str, now: datetime) -> None:
    session.execute(
        update(DeviceCommand)
        .where(DeviceCommand.id == command_id, DeviceCommand.status == "queued")
        .values(status="failed", output=reason[:MAX_OUTPUT_CHARS], updated_at=now)
    )


def apply_reply(
    *, session: Session, device_id: str, reply: dict[str, Any], now: datetime
) -> DeviceCommand | None:
    """Record a device's reply on its command; None when it answers nothing of ours."""
    command_id, status, output = reply.get("id"), reply.get("status"), reply.get("output", "")
    # A device's JSON may put a list or object anywhere: test the type before the set lookup.
    if not isinstance(command_id, str) or not isinstance(status, str):
        return None
    if status not in REPLY_STATUSES:
        return None
    command = session.get(DeviceCommand, command_id)
    if command is None or command.device_id != device_id or command.status in FINAL_STATUSES:
        return None
    command.status = str(status)
    command.output = output if isinstance(output, str) else str(output)
    command.output = command.output[:MAX_OUTPUT_CHARS]
    command.updated_at = now
    session.flush()
    return command


def expire_overdue(*, session: Session, now: datetime) -> int:
    """Mark commands with no reply by their expiry as expired; return how many."""
    result = session.execute(
        update(DeviceCommand)
        .where(DeviceCommand.status.in_(("queued", "delivered")), DeviceCommand.expires_at < now)
        .values(status="expired", output="no reply before the command expired", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def device_history(*, session: Session, device_id: str, limit: int = 100) -> list[DeviceCommand]:
    query = (
        select(DeviceCommand)
        .where(DeviceCommand.device_id == device_id)
        .order_by(DeviceCommand.created_at.desc(), DeviceCommand.id)
        .limit(limit)
    )
    return list(session.scalars(query))
