"""Desired configuration per device, drift across the estate, and device tags."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import select

from fleet.api.deps import DbSession, Principal, ensure_prison_visible, get_context, require
from fleet.api.errors import invalid
from fleet.automation import desired, tags
from fleet.automation.config_link import ConfigLink
from fleet.automation.inventory import build_inventory
from fleet.automation.models import DesiredConfig, DeviceTag
from fleet.automation.schemas import (
    DesiredConfigIn,
    DesiredConfigOut,
    DriftCounts,
    DriftSummaryOut,
    TagsIn,
    TagsOut,
)
from fleet.broker.urls import BrokerConnectError
from fleet.db import utcnow
from fleet.devices.models import Device
from fleet.devices.schemas import DeviceKind
from fleet.estate.service import get_prison
from fleet.signing import load_signing_key

log = logging.getLogger(__name__)
router = APIRouter(tags=["desired configuration"])
MAX_INVENTORY_HOSTS = 50_000


def config_link(request: Request) -> ConfigLink:
    """The app's config link, created on first use (closed by the app at shutdown)."""
    link: ConfigLink | None = getattr(request.app.state, "config_link", None)
    if link is None:
        link = request.app.state.config_link = ConfigLink(get_context(request))
    return link


def _visible_device(session: DbSession, principal: Principal, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    ensure_prison_visible(principal, device.prison_code, "device")
    return device


def _out(session: DbSession, row: DesiredConfig, *, changed: bool = False) -> DesiredConfigOut:
    drift = desired.device_drift(session=session, device_id=row.device_id)
    assert drift is not None
    return DesiredConfigOut(
        device_id=row.device_id,
        version=row.version,
        doc=desired.redacted(row.doc),
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        published_at=row.published_at,
        applied_version=drift.applied_version,
        drift=drift.state,
        error=drift.error,
        reported_at=row.reported_at,
        changed=changed,
    )


@router.get("/devices/{device_id}/desired-config", response_model=DesiredConfigOut)
def get_desired_config(
    device_id: str, session: DbSession, principal: Principal = require("devices:read")
) -> DesiredConfigOut:
    """The device's desired configuration and whether the device has applied it."""
    _visible_device(session, principal, device_id)
    row = session.get(DesiredConfig, device_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no desired configuration for this device")
    return _out(session, row)


@router.put(
    "/devices/{device_id}/desired-config",
    response_model=DesiredConfigOut,
    responses={
        202: {"model": DesiredConfigOut, "description": "Stored; not yet published"},
        409: {"description": "The device is retired or revoked; it takes no config"},
    },
)
def put_desired_config(
    device_id: str,
    body: DesiredConfigIn,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Principal = require("devices:write"),
) -> DesiredConfigOut:
    """Set the desired configuration: a new signed version on the device's retained topic.

    The same document again makes no new version (changed: false) but is published again.
    202 with published_at null: stored, and published as soon as the broker is reachable.
    """
    device = _visible_device(session, principal, device_id)
    try:
        row, changed = desired.set_desired(
            session=session, actor=principal.username, device=device, doc=body.doc, now=utcnow()
        )
    except desired.DesiredRefused as exc:
        if exc.status == 422:
            raise invalid(("body", *(exc.field or "doc").split(".")), exc.message) from exc
        raise HTTPException(exc.status, exc.message) from exc
    envelope = desired.signed_config(row, load_signing_key(get_context(request).settings))
    session.commit()  # stored before it is published: the device's report must find the row
    try:
        published = config_link(request).publish(device.id, envelope)
    except BrokerConnectError as exc:
        log.error("cannot reach the broker to publish config for %s: %s", device.id, exc)
        published = False
    if published:
        row.published_at = utcnow()
        session.commit()
    else:
        response.status_code = status.HTTP_202_ACCEPTED
    return _out(session, row, changed=changed)


@router.get("/desired-config/drift", response_model=DriftSummaryOut)
def drift_summary(
    session: DbSession, principal: Principal = require("devices:read")
) -> DriftSummaryOut:
    """Devices in sync with their desired configuration, pending, or refusing it."""
    counts = desired.drift_summary(session=session, scope=principal.scope)
    total = counts.pop("all")
    return DriftSummaryOut(
        total=DriftCounts(**total),
        prisons={code: DriftCounts(**c) for code, c in sorted(counts.items())},
    )


@router.get("/devices/{device_id}/tags", response_model=TagsOut)
def get_tags(
    device_id: str, session: DbSession, principal: Principal = require("devices:read")
) -> TagsOut:
    """The device's tags (each is an inventory group tag_<name>)."""
    _visible_device(session, principal, device_id)
    found = tags.tags_of(session=session, device_ids=[device_id])
    return TagsOut(device_id=device_id, tags=found.get(device_id, []))


@router.put("/devices/{device_id}/tags", response_model=TagsOut)
def put_tags(
    device_id: str,
    body: TagsIn,
    session: DbSession,
    principal: Principal = require("devices:write"),
) -> TagsOut:
    """Replace the device's tags."""
    device = _visible_device(session, principal, device_id)
    try:
        saved = tags.set_tags(
            session=session, actor=principal.username, device=device, tags=body.tags
        )
    except tags.TagRefused as exc:
        raise invalid(("body", "tags", str(exc.index)), str(exc)) from exc
    session.commit()
    return TagsOut(device_id=device_id, tags=saved)


@router.get("/ansible/inventory")
def ansible_inventory(
    session: DbSession,
    principal: Principal = require("devices:read"),
    prison: Annotated[list[str] | None, Query(description="Prison code; repeat for more")] = None,
    kind: Annotated[DeviceKind | None, Query(description="Only this kind")] = None,
    tag: Annotated[
        str | None, Query(max_length=40, description="Only devices with this tag")
    ] = None,
) -> dict[str, Any]:
    """Enrolled devices in your caseload as an Ansible inventory (the `estate` plugin's source).

    Groups: prison_<code>, kind_<kind>, wing_<path>, programme_<name>, tag_<tag>, and python or
    no_python (devices that take only raw commands and desired configuration); host vars from the
    device record, with ansible_connection estate_mqtt.
    """
    codes = sorted({p.strip().upper() for p in prison or [] if p.strip()})
    for code in codes:
        if not principal.sees(code) or get_prison(session=session, code=code) is None:
            raise invalid(("query", "prison"), f"no prison {code!r} in your caseload")
    query = select(Device).where(Device.lifecycle == "enrolled").order_by(Device.id)
    if principal.scope is not None:
        query = query.where(Device.prison_code.in_(principal.scope))
    if codes:
        query = query.where(Device.prison_code.in_(codes))
    if kind:
        query = query.where(Device.kind == kind)
    if tag:
        query = query.where(Device.id.in_(select(DeviceTag.device_id).where(DeviceTag.tag == tag)))
    devices = list(session.scalars(query.limit(MAX_INVENTORY_HOSTS + 1)))
    if len(devices) > MAX_INVENTORY_HOSTS:
        raise invalid(
            ("query", "prison"),
            f"more than {MAX_INVENTORY_HOSTS} devices match; narrow by prison, kind or tag",
        )
    return build_inventory(session, devices)
