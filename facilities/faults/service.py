"""Faults: reporting with a per-prison reference, once per idempotency key, with attachments."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facilities.faults import sla
from facilities.faults.models import Fault, FaultAttachment, FaultCounter, FaultEvent
from facilities.faults.recurring import flag_recurring
from fleet.audit.service import record
from fleet.db import utcnow
from fleet.devices.models import Device
from fleet.estate.service import Refused, location_by_path

log = logging.getLogger(__name__)


def next_number(*, session: Session, prison_code: str) -> int:
    """The prison's next fault number; the row lock makes concurrent reports queue, not collide."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(FaultCounter)
        .values(prison_code=prison_code, last_number=0)
        .on_conflict_do_nothing(index_elements=["prison_code"])
    )
    number = session.execute(
        update(FaultCounter)
        .where(FaultCounter.prison_code == prison_code)
        .values(last_number=FaultCounter.last_number + 1)
        .returning(FaultCounter.last_number)
    ).scalar_one()
    return int(number)


def reference(prison_code: str, number: int) -> str:
    return f"{prison_code}-F-{number:06d}"


def report_fault(
    *,
    session: Session,
    actor: str,
    location_path: str,
    category: str,
    priority: str,
    description: str,
    device_id: str | None = None,
    team: str | None = None,
    visible: Sequence[str] | None = None,
    now: datetime | None = None,
    source: str = "staff",
    blocks_rollout: bool = False,
    idempotency_key: str | None = None,
) -> Fault:
    """Log a fault at a location (and optionally a device there), with due times from targets."""
    now = now or utcnow()
    location = location_by_path(session=session, path=location_path.strip())
    if location is None or (visible is not None and location.prison_code not in visible):
        raise Refused(
            422,
            f"no location {location_path.strip().upper()!r}; search /api/v1/locations",
            field="location",
        )
    if device_id:
        device = session.get(Device, device_id.strip())
        if device is None or device.prison_code != location.prison_code:
            raise Refused(
                422,
                f"no device {device_id.strip()!r} in {location.prison_code}",
                field="device",
            )
        device_id = device.id
    number = next_number(session=session, prison_code=location.prison_code)
    due_respond, due_clear = sla.due_times(
        sla.target_for(session=session, category=category, priority=priority), now
    )
    fault = Fault(
        reference=reference(location.prison_code, number),
        prison_code=location.prison_code,
        number=number,
        location_id=location.id,
        device_id=device_id or None,
        category=category,
        priority=priority,
        status="reported",
        description=description.strip(),
        reporter=actor,
        team=team.strip() if team and team.strip() else None,
        reported_at=now,
        source=source,
        blocks_rollout=blocks_rollout,
        idempotency_key=idempotency_key,
        due_respond_at=due_respond,
        due_clear_at=due_clear,
        updated_at=now,
    )
    session.add(fault)
    session.flush()
    session.add(
        FaultEvent(
            fault_id=fault.id,
            ts=now,
            actor=actor,
            action="reported",
            from_status=None,
            to_status="reported",
            note=None,
            detail={
                "priority": priority,
                "category": category,
                "location": location.path,
                "source": source,
            },
        )
    )
    flag_recurring(session=session, fault=fault, now=now)
    record(
        session=session,
        actor=actor,
        action="fault.reported",
        target_type="fault",
        target_id=fault.reference,
        prison_code=fault.prison_code,
        detail={"location": location.path, "category": category, "priority": priority},
    )
    session.flush()
    return fault


def report_once(
    *,
    session: Session,
    actor: str,
    idempotency_key: str | None,
    location_path: str,
    category: str,
    priority: str,
    description: str,
    device_id: str | None = None,
    team: str | None = None,
    visible: Sequence[str] | None = None,
    blocks_rollout: bool = False,
) -> tuple[Fault, bool]:
    """(fault, created): a form sent again with its key gives back the first fault, not a second."""
    if idempotency_key:
        earlier = by_idempotency_key(session=session, reporter=actor, key=idempotency_key)
        if earlier is not None:
            return earlier, False
    try:
        # A savepoint: if a twin request with the same key wins the race, only this part undoes.
        with session.begin_nested():
            fault = report_fault(
                session=session,
                actor=actor,
                location_path=location_path,
                category=category,
                priority=priority,
                description=description,
                device_id=device_id,
                team=team,
                visible=visible,
                blocks_rollout=blocks_rollout,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        twin = (
            by_idempotency_key(session=session, reporter=actor, key=idempotency_key)
            if idempotency_key
            else None
        )
        if twin is None:
            raise
        log.info("fault %s was submitted twice with one idempotency key", twin.reference)
        return twin, False
    return fault, True


def by_idempotency_key(*, session: Session, reporter: str, key: str) -> Fault | None:
    """The fault this reporter already submitted with this key, if any."""
    return session.scalars(
        select(Fault).where(Fault.reporter == reporter, Fault.idempotency_key == key)
    ).first()


def add_attachment(
    *,
    session: Session,
    actor: str,
    fault: Fault,
    key: str,
    content_type: str,
    size: int,
    filename: str,
) -> FaultAttachment:
    """Record a file already put in storage under `key`."""
    attachment = FaultAttachment(
        id=key,
        fault_id=fault.id,
        content_type=content_type,
        size=size,
        filename=filename,
        uploaded_by=actor,
    )
    session.add(attachment)
    record(
        session=session,
        actor=actor,
        action="fault.attachment_added",
        target_type="fault",
        target_id=fault.reference,
        prison_code=fault.prison_code,
        detail={"attachment": key, "content_type": content_type, "size": size},
    )
    session.flush()
    return attachment
