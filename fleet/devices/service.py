"""Devices: one device in detail, registration before enrolment, moves, retirement."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEvent
from fleet.audit.service import for_target, record
from fleet.broker.credentials import CredentialIssuer
from fleet.db import utcnow
from fleet.devices.models import Credential, Device, DeviceEvent, DeviceState
from fleet.enrolment.service import KIND_CODES, new_device_id
from fleet.estate.models import Location, Prison
from fleet.estate.service import Refused, ancestors, location_by_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceDetail:
    device: Device
    prison: Prison
    state: DeviceState | None
    path: list[Location]  # wing down to the device's location
    events: list[DeviceEvent]
    audit: list[AuditEvent]


def device_detail(*, session: Session, device_id: str, recent: int = 20) -> DeviceDetail | None:
    device = session.get(Device, device_id)
    if device is None:
        return None
    prison = session.get(Prison, device.prison_code)
    assert prison is not None
    location = session.get(Location, device.location_id) if device.location_id else None
    events = session.scalars(
        select(DeviceEvent)
        .where(DeviceEvent.device_id == device.id)
        .order_by(DeviceEvent.ts.desc(), DeviceEvent.id.desc())
        .limit(recent)
    )
    return DeviceDetail(
        device=device,
        prison=prison,
        state=session.get(DeviceState, device.id),
        path=ancestors(session=session, location=location) if location else [],
        events=list(events),
        audit=for_target(session=session, target_type="device", target_id=device.id, limit=recent),
    )


def _location_in(session: Session, path: str, prison_codes: Sequence[str] | None) -> Location:
    location = location_by_path(session=session, path=path.strip())
    if location is None or (prison_codes is not None and location.prison_code not in prison_codes):
        raise Refused(
            422, f"no location {path.strip().upper()!r}; see /api/v1/locations", field="location"
        )
    return location


def register_device(
    *,
    session: Session,
    actor: str,
    serial: str,
    kind: str,
    prison_code: str,
    location_path: str | None = None,
    visible: Sequence[str] | None = None,
) -> Device:
    """Record a device before it enrols (lifecycle 'registered'); serials are unique."""
    prison_code = prison_code.strip().upper()
    if session.get(Prison, prison_code) is None:
        raise Refused(
            422, f"unknown prison {prison_code!r}; see /api/v1/prisons", field="prison_code"
        )
    if kind not in KIND_CODES:
        raise Refused(422, f"kind must be one of {', '.join(KIND_CODES)}", field="kind")
    location = None
    if location_path:
        location = _location_in(session, location_path, [prison_code])
    existing = session.scalars(select(Device).where(Device.serial == serial)).first()
    if existing is not None:
        seen = visible is None or existing.prison_code in visible
        raise Refused(
            409,
            f"serial {serial} is already registered as device {existing.id}"
            if seen
            else f"serial {serial} is already registered in another prison",
            field="serial",
            extra={"device_id": existing.id} if seen else {},
        )
    device = Device(
        id=new_device_id(session=session, prison_code=prison_code, kind=kind),
        serial=serial,
        kind=kind,
        prison_code=prison_code,
        location_id=location.id if location else None,
        lifecycle="registered",
    )
    session.add(device)
    session.flush()
    where = location.path if location else None
    session.add(DeviceEvent(device_id=device.id, kind="registered", detail={"serial": serial}))
    record(
        session=session,
        actor=actor,
        action="device.registered",
        target_type="device",
        target_id=device.id,
        prison_code=prison_code,
        detail={"serial": serial, "kind": kind, "location": where},
    )
    return device


def move_device(
    *,
    session: Session,
    actor: str,
    device: Device,
    location_path: str,
    visible: Sequence[str] | None,
    may_change_prison: bool,
) -> bool:
    """Put the device at another location; False when it is already there."""
    if device.lifecycle == "retired":
        raise Refused(409, f"device {device.id} is retired; it cannot be moved")
    target = _location_in(session, location_path, visible)
    if target.id == device.location_id:
        return False
    if target.prison_code != device.prison_code and not may_change_prison:
        raise Refused(
            403,
            f"moving a device to another prison ({device.prison_code} -> "
            f"{target.prison_code}) is for estate administrators only",
        )
    source = session.get(Location, device.location_id) if device.location_id else None
    detail = {
        "from": source.path if source else None,
        "to": target.path,
        "from_prison": device.prison_code,
        "to_prison": target.prison_code,
    }
    device.location_id = target.id
    device.prison_code = target.prison_code
    session.add(DeviceEvent(device_id=device.id, kind="moved", detail=detail))
    record(
        session=session,
        actor=actor,
        action="device.moved",
        target_type="device",
        target_id=device.id,
        prison_code=target.prison_code,
        detail=detail,
    )
    session.flush()
    return True


def retire_device(
    *, session: Session, issuer: CredentialIssuer, actor: str, device: Device, reason: str
) -> bool:
    """Take the device out of service and disable its broker identity; False if already retired."""
    if device.lifecycle == "retired":
        return False
    had_identity = session.scalar(
        select(func.count()).select_from(Credential).where(Credential.device_id == device.id)
    )
    now = utcnow()
    previous = device.lifecycle
    device.lifecycle = "retired"
    device.retired_at = now
    session.execute(
        update(Credential)
        .where(Credential.device_id == device.id, Credential.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    state = session.get(DeviceState, device.id)
    if state is not None:
        state.online = False
        state.state = "offline"
    session.add(DeviceEvent(device_id=device.id, kind="retired", detail={"reason": reason}))
    record(
        session=session,
        actor=actor,
        action="device.retired",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"reason": reason, "previous_lifecycle": previous},
    )
    session.flush()
    if had_identity:
        # Last, so a broker failure rolls the whole retirement back with the transaction.
        issuer.revoke(device.id)
    return True
