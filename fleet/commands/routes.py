"""Sending remote actions to a device and reading what became of them."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import select

from fleet.api.deps import DbSession, Principal, ensure_prison_visible, get_context, require
from fleet.api.errors import invalid
from fleet.audit.service import record
from fleet.broker.urls import BrokerConnectError
from fleet.commands import bulk, service
from fleet.commands.models import DeviceCommand
from fleet.commands.relay import CommandRelay
from fleet.commands.schemas import (
    BulkCommandRequest,
    BulkPreviewOut,
    BulkQueuedOut,
    CommandListOut,
    CommandOut,
    CommandRequest,
    DeviceFilter,
)
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from fleet.devices.search import DeviceFilters, list_devices
from fleet.estate.service import get_prison, location_by_path
from fleet.signing import load_signing_key

log = logging.getLogger(__name__)
router = APIRouter(tags=["commands"])


def command_relay(request: Request) -> CommandRelay:
    """The app's relay, created on first use (closed by the app at shutdown)."""
    relay: CommandRelay | None = getattr(request.app.state, "command_relay", None)
    if relay is None:
        relay = request.app.state.command_relay = CommandRelay(get_context(request))
    return relay


def _out(command: DeviceCommand) -> CommandOut:
    return CommandOut.model_validate(command, from_attributes=True)


def _visible_device(session: DbSession, principal: Principal, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    ensure_prison_visible(principal, device.prison_code, "device")
    return device


@router.post(
    "/devices/{device_id}/commands",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    responses={409: {"description": "The device is retired, revoked or not yet enrolled"}},
)
def send_command(
    device_id: str,
    body: CommandRequest,
    request: Request,
    session: DbSession,
    principal: Principal = require("commands:run"),
) -> CommandOut:
    """Sign and send one action to the device; the reply updates the status later."""
    device = _visible_device(session, principal, device_id)
    if body.action in service.DISRUPTIVE_ACTIONS and not principal.can("commands:disrupt"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role may not {body.action} devices")
    ctx = get_context(request)
    try:
        # Committed before publishing, so a reply that comes back at once finds its row.
        with transaction(ctx.sessions) as own:
            command = service.queue_command(
                session=own,
                actor=principal.username,
                device=own.get(Device, device.id) or device,
                action=body.action,
                params=body.params,
                now=utcnow(),
            )
            envelope = service.signed_envelope(command, load_signing_key(ctx.settings))
    except service.CommandRefused as exc:
        if exc.status == 422:
            raise invalid(("body", *(exc.field or "").split(".")), exc.message) from exc
        raise HTTPException(exc.status, exc.message) from exc
    return publish_commands(request, session, [(command.id, device.id, envelope)])[0]


def publish_commands(
    request: Request, session: DbSession, outgoing: list[tuple[str, str, bytes]]
) -> list[CommandOut]:
    """Publish committed commands; each becomes delivered, or failed with the broker's reason."""
    relay = command_relay(request)
    for command_id, device_id, envelope in outgoing:
        try:
            acknowledged = relay.publish(device_id, envelope)
            reason = "" if acknowledged else "the broker did not acknowledge the command"
        except BrokerConnectError as exc:
            log.error("cannot reach the broker to send command %s: %s", command_id, exc)
            acknowledged, reason = False, f"the broker is unreachable: {exc}"
        now = utcnow()
        if acknowledged:
            service.mark_delivered(session=session, command_id=command_id, now=now)
        else:
            service.mark_failed(session=session, command_id=command_id, reason=reason, now=now)
    session.flush()
    ids = [command_id for command_id, _, _ in outgoing]
    rows = session.scalars(
        select(DeviceCommand)
        .where(DeviceCommand.id.in_(ids))
        .execution_options(populate_existing=True)
    )
    by_id = {row.id: row for row in rows}
    return [_out(by_id[command_id]) for command_id in ids]


@router.get("/devices/{device_id}/commands", response_model=CommandListOut)
def device_commands(
    device_id: str,
    session: DbSession,
    principal: Principal = require("commands:read"),
    limit: Annotated[int, Query(ge=1, le=500, description="Newest first")] = 100,
) -> CommandListOut:
    """The device's command history, newest first."""
    _visible_device(session, principal, device_id)
    history = service.device_history(session=session, device_id=device_id, limit=limit)
    return CommandListOut(items=[_out(c) for c in history])


@router.get("/commands/{command_id}", response_model=CommandOut)
def get_command(
    command_id: str, session: DbSession, principal: Principal = require("commands:read")
) -> CommandOut:
    """One command and what became of it."""
    command = session.get(DeviceCommand, command_id)
    if command is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "command not found")
    device = session.get(Device, command.device_id)
    ensure_prison_visible(principal, device.prison_code if device else None, "command")
    return _out(command)


def _bulk_filters(session: DbSession, principal: Principal, wanted: DeviceFilter) -> DeviceFilters:
    codes = sorted({p.strip().upper() for p in wanted.prison if p.strip()})
    for code in codes:
        if get_prison(session=session, code=code) is None:
            raise invalid(("body", "filter", "prison"), f"unknown prison {code!r}")
    within = []
    for name, path in (("wing", wanted.wing), ("landing", wanted.landing)):
        if path and path.strip():
            place = location_by_path(session=session, path=path.strip())
            if place is None or not principal.sees(place.prison_code):
                raise invalid(("body", "filter", name), f"no location {path.strip().upper()!r}")
            within.append(place.id)
    return DeviceFilters(
        prisons=tuple(codes),
        kind=wanted.kind,
        lifecycle="enrolled",  # only enrolled devices can take commands
        online=wanted.online,
        health=wanted.health,
        within=tuple(within),
        q=wanted.q.strip() if wanted.q and wanted.q.strip() else None,
    )


@router.post(
    "/commands",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkPreviewOut | BulkQueuedOut,
)
def send_bulk_command(
    body: BulkCommandRequest,
    request: Request,
    session: DbSession,
    principal: Principal = require("commands:run"),
) -> BulkPreviewOut | BulkQueuedOut:
    """Without `confirmation`: how many enrolled devices match, and a token to confirm.
    With it: queue the action on each of them."""
    if body.action in service.DISRUPTIVE_ACTIONS and not principal.can("commands:disrupt"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role may not {body.action} devices")
    try:
        params = service.check_params(body.action, body.params)
    except service.CommandRefused as exc:
        raise invalid(("body", *(exc.field or "").split(".")), exc.message) from exc
    page = list_devices(
        session=session,
        scope=principal.scope,
        filters=_bulk_filters(session, principal, body.filter),
        limit=bulk.MAX_BULK_DEVICES,
        count_cap=bulk.MAX_BULK_DEVICES,  # past the limit, how far past does not matter
    )
    if page.capped:
        raise invalid(
            ("body", "filter"),
            f"the filter matches more than {bulk.MAX_BULK_DEVICES} devices; narrow it to "
            f"{bulk.MAX_BULK_DEVICES} or fewer",
        )
    ctx = get_context(request)
    asked = bulk.Confirmation(
        user_id=principal.user_id,
        action=body.action,
        params=params,
        filter=body.filter.model_dump(mode="json"),
        matched=page.count,
    )
    if body.confirmation is None:
        now = utcnow()
        return BulkPreviewOut(
            action=body.action,
            matched=page.count,
            confirmation=bulk.issue_token(ctx.settings.secret_key, asked, now=now.timestamp()),
            expires_at=now + timedelta(seconds=bulk.CONFIRMATION_TTL_S),
        )
    try:
        bulk.check_token(ctx.settings.secret_key, body.confirmation, asked)
    except bulk.ConfirmationRefused as exc:
        raise invalid(("body", "confirmation"), str(exc)) from exc
    key = load_signing_key(ctx.settings)
    outgoing = []
    with transaction(ctx.sessions) as own:
        now = utcnow()
        for row in page.rows:
            device = own.get(Device, row.id)
            assert device is not None
            command = service.queue_command(
                session=own,
                actor=principal.username,
                device=device,
                action=body.action,
                params=params,
                now=now,
            )
            outgoing.append((command.id, device.id, service.signed_envelope(command, key)))
        record(
            session=own,
            actor=principal.username,
            action=f"device.command.bulk.{body.action}",
            target_type="device_filter",
            target_id=",".join(asked.filter["prison"]) or "estate",
            detail={"filter": asked.filter, "devices": len(outgoing), "params": params},
        )
    items = publish_commands(request, session, outgoing)
    return BulkQueuedOut(queued=len(items), items=items)
