"""Faults raised from the fleet: a silent device's cell, or one for a whole landing or wing."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from facilities.faults import service
from facilities.faults.models import Fault
from facilities.faults.workflow import OPEN_STATUSES
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location
from fleet.estate.service import subtree_ids

log = logging.getLogger(__name__)

FLEET_ACTOR = "estate-fleet"
# A landing counts as down when at least this many of its devices, and this share, fall silent.
MASS_MIN = 3
MASS_SHARE = 0.5
# A wing counts as down when this many of its landings are down together.
WING_LANDINGS = 2


@dataclass(frozen=True)
class SilentDevice:
    device_id: str
    kind: str
    location_id: int
    parent_id: int | None  # the landing, for a device in a cell


def _silent(session: Session, cutoff: datetime) -> list[SilentDevice]:
    rows = session.execute(
        select(Device.id, Device.kind, Location.id, Location.parent_id)
        .join(DeviceState, DeviceState.device_id == Device.id)
        .join(Location, Location.id == Device.location_id)
        .where(
            Device.lifecycle == "enrolled",
            DeviceState.online.is_(False),
            DeviceState.last_seen < cutoff,
        )
        .order_by(Device.id)
    )
    return [SilentDevice(*row) for row in rows]


def _devices_beneath(session: Session, location_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Device)
            .where(
                Device.lifecycle == "enrolled",
                Device.location_id.in_(subtree_ids(location_id)),
            )
        )
        or 0
    )


def _covered(session: Session, location: Location, device_id: str | None) -> bool:
    """An open fleet fault already stands for this place (or a place above it, or the device)."""
    places = [location.id]
    parent = location.parent_id
    while parent is not None:
        places.append(parent)
        above = session.get(Location, parent)
        parent = above.parent_id if above else None
    here: ColumnElement[bool] = Fault.location_id.in_(places)
    if device_id:
        here = here | (Fault.device_id == device_id)
    stmt = select(Fault.id).where(Fault.source == "fleet", Fault.status.in_(OPEN_STATUSES), here)
    return session.scalars(stmt.limit(1)).first() is not None


def _raise(
    session: Session,
    location: Location,
    *,
    category: str,
    priority: str,
    text: str,
    now: datetime,
    device_id: str | None = None,
) -> Fault:
    fault = service.report_fault(
        session=session,
        actor=FLEET_ACTOR,
        location_path=location.path,
        category=category,
        priority=priority,
        description=text,
        device_id=device_id,
        now=now,
        source="fleet",
    )
    log.info("raised %s at %s from the fleet: %s", fault.reference, location.path, text)
    return fault


def raise_from_fleet(*, session: Session, now: datetime, silent_after: timedelta) -> list[Fault]:
    """Raise faults for devices silent longer than `silent_after`: grouped where many drop."""
    silent = _silent(session, now - silent_after)
    by_landing: dict[int, list[SilentDevice]] = defaultdict(list)
    for device in silent:
        if device.parent_id is not None:
            by_landing[device.parent_id].append(device)
    down_landings: list[Location] = []
    for landing_id, devices in by_landing.items():
        landing = session.get(Location, landing_id)
        total = _devices_beneath(session, landing_id)
        many = len(devices) >= MASS_MIN and len(devices) / max(total, 1) >= MASS_SHARE
        if many and landing is not None and landing.kind == "landing":
            down_landings.append(landing)
    by_wing: dict[int, list[Location]] = defaultdict(list)
    for landing in down_landings:
        if landing.parent_id is not None:
            by_wing[landing.parent_id].append(landing)
    raised: list[Fault] = []
    grouped: list[tuple[Location, int]] = []
    for wing_id, landings in by_wing.items():
        wing = session.get(Location, wing_id)
        if wing is not None and len(landings) >= WING_LANDINGS:
            grouped.append((wing, sum(len(by_landing[x.id]) for x in landings)))
        else:
            grouped += [(x, len(by_landing[x.id])) for x in landings]
    for place, count in sorted(grouped, key=lambda pair: pair[0].path):
        if _covered(session, place, None):
            continue
        text = (
            f"{count} devices on {place.kind} {place.path} fell silent together; "
            "likely a power or network fault."
        )
        priority = "P1" if place.kind == "wing" else "P2"
        raised.append(
            _raise(
                session, place, category="power_electrical", priority=priority, text=text, now=now
            )
        )
    for device in silent:
        cell = session.get(Location, device.location_id)
        if cell is None or _covered(session, cell, device.device_id):
            continue
        category = "in_cell_telephony" if device.kind == "in_cell_phone" else "in_cell_device"
        text = f"Device {device.device_id} has been silent for over {silent_after}."
        raised.append(
            _raise(
                session,
                cell,
                category=category,
                priority="P3",
                text=text,
                now=now,
                device_id=device.device_id,
            )
        )
    return raised


@dataclass(frozen=True)
class DevicesBack:
    online: int
    total: int


def devices_back(*, session: Session, fault: Fault) -> DevicesBack:
    """How many devices at or beneath the fault's place are online again."""
    if fault.device_id:
        where = Device.id == fault.device_id
    else:
        where = Device.location_id.in_(subtree_ids(fault.location_id))
    total, online = session.execute(
        select(func.count(), func.count().filter(DeviceState.online.is_(True)))
        .select_from(Device)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.lifecycle == "enrolled", where)
    ).one()
    return DevicesBack(int(online), int(total))


def rollout_blockers(*, session: Session, prison_code: str) -> list[Fault]:
    """Open faults in the prison flagged as blocking a rollout."""
    return list(
        session.scalars(
            select(Fault)
            .where(
                Fault.prison_code == prison_code,
                Fault.blocks_rollout.is_(True),
                Fault.status.in_(OPEN_STATUSES),
            )
            .order_by(Fault.reported_at)
        )
    )
