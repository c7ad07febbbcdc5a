"""Reading the alert queue and moving alerts through firing -> acknowledged -> resolved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from fleet.alerts.models import Alert, AlertRule
from fleet.alerts.schemas import AlertOut
from fleet.audit.service import record
from fleet.estate.models import Location

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class AlertFilters:
    prisons: tuple[str, ...] = ()
    rule_id: int | None = None
    severity: str | None = None
    statuses: tuple[str, ...] = ("firing", "acknowledged")


def _query(filters: AlertFilters, caseload: Sequence[str] | None) -> Select[Alert]:
    stmt = select(Alert)
    if caseload:
        stmt = stmt.where(Alert.prison_code.in_(list(caseload)))
    if filters.prisons:
        stmt = stmt.where(Alert.prison_code.in_(list(filters.prisons)))
    if filters.rule_id is not None:
        stmt = stmt.where(Alert.rule_id == filters.rule_id)
    if filters.severity:
        stmt = stmt.where(Alert.severity == filters.severity)
    if filters.statuses:
        stmt = stmt.where(Alert.status.in_(list(filters.statuses)))
    return stmt


def list_alerts(
    *,
    session: Session,
    filters: AlertFilters,
    caseload: Sequence[str] | None,
    limit: int,
    after_id: int | None = None,
) -> list[Alert]:
    """Newest first, keyed by id so pages are stable while alerts open."""
    stmt = _query(filters, caseload)
    if after_id is not None:
        stmt = stmt.where(Alert.id < after_id)
    return list(session.scalars(stmt.order_by(Alert.id.desc()).limit(limit)))


def get_alert(*, session: Session, alert_id: int, caseload: Sequence[str] | None) -> Alert | None:
    alert = session.get(Alert, alert_id)
    if alert is None or (caseload and alert.prison_code not in caseload):
        return None
    return alert


def alert_views(*, session: Session, alerts: Sequence[Alert]) -> list[AlertOut]:
    """API/page view of alerts, with rule names, place paths and fault references."""
    from facilities.faults.models import Fault

    rule_ids = {a.rule_id for a in alerts}
    place_ids = {a.location_id for a in alerts if a.location_id}
    fault_ids = {a.fault_id for a in alerts if a.fault_id}
    names = dict(
        session.execute(
            select(AlertRule.id, AlertRule.name).where(AlertRule.id.in_(rule_ids))
        ).all()
    )
    paths = dict(
        session.execute(select(Location.id, Location.path).where(Location.id.in_(place_ids))).all()
    )
    references = dict(
        session.execute(select(Fault.id, Fault.reference).where(Fault.id.in_(fault_ids))).all()
    )
    return [
        AlertOut(
            id=a.id,
            rule_id=a.rule_id,
            rule_name=names.get(a.rule_id, ""),
            kind=a.kind,
            severity=a.severity,
            status=a.status,
            summary=a.summary,
            prison_code=a.prison_code,
            device_id=a.device_id,
            location=paths.get(a.location_id) if a.location_id else None,
            devices=list(a.devices),
            fault_reference=references.get(a.fault_id) if a.fault_id else None,
            value=a.value,
            opened_at=a.opened_at,
            updated_at=a.updated_at,
            acknowledged_at=a.acknowledged_at,
            acknowledged_by=a.acknowledged_by,
            resolved_at=a.resolved_at,
            resolved_by=a.resolved_by,
            resolution=a.resolution,
        )
        for a in alerts
    ]


def acknowledge(
    *,
    session: Session,
    actor: str,
    ids: Sequence[int],
    caseload: Sequence[str] | None,
    now: datetime,
) -> tuple[list[int], list[int]]:
    """Acknowledge the firing alerts among `ids` the actor can see; (changed, unchanged)."""
    wanted = sorted(set(ids))
    stmt = (
        update(Alert)
        .where(Alert.id.in_(wanted), Alert.status == "firing")
        .values(status="acknowledged", acknowledged_at=now, acknowledged_by=actor)
        .returning(Alert.id, Alert.prison_code)
    )
    if caseload:
        stmt = stmt.where(Alert.prison_code.in_(list(caseload)))
    changed = sorted((int(i), str(p)) for i, p in session.execute(stmt).all())
    for alert_id, prison_code in changed:
        record(
            session=session,
            actor=actor,
            action="alert.acknowledged",
            target_type="alert",
            target_id=str(alert_id),
            prison_code=prison_code,
        )
    done = {alert_id for alert_id, _ in changed}
    return sorted(done), [i for i in wanted if i not in done]


def resolve(*, session: Session, actor: str, alert: Alert, note: str, now: datetime) -> bool:
    """Close an open alert by hand; False when it was already resolved."""
    if alert.status == "resolved":
        return False
    alert.status, alert.resolved_at, alert.resolved_by = "resolved", now, actor
    alert.resolution = note.strip() or "Resolved by hand."
    record(
        session=session,
        actor=actor,
        action="alert.resolved",
        target_type="alert",
        target_id=str(alert.id),
        prison_code=alert.prison_code,
        detail={"note": alert.resolution},
    )
    session.flush()
    return True
