"""Creating, changing and removing alert rules, with the caller's caseload and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fleet.alerts.kinds import KINDS
from fleet.alerts.models import Alert, AlertRule
from fleet.alerts.schemas import RuleIn, RuleOut
from fleet.audit.service import record
from fleet.estate.models import Prison


class RuleRefused(Exception):
    """A rule change that cannot be made; `field` names the offending part of the request."""

    def __init__(self, status: int, message: str, field: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def rule_out(rule: AlertRule) -> RuleOut:
    return RuleOut(
        id=rule.id,
        name=rule.name,
        kind=rule.kind,
        severity=rule.severity,
        threshold=rule.threshold,
        min_version=rule.min_version,
        prisons=list(rule.prisons),
        device_kinds=list(rule.device_kinds),
        location_prefix=rule.location_prefix,
        tag=rule.tag,
        group_min=rule.group_min,
        enabled=rule.enabled,
        version=rule.version,
        description=KINDS[rule.kind].describe(rule.threshold, rule.min_version),
        created_by=rule.created_by,
        created_at=rule.created_at,
        updated_by=rule.updated_by,
        updated_at=rule.updated_at,
    )


def visible_to(rule: AlertRule, caseload: Sequence[str] | None) -> bool:
    """Estate-wide rules are seen by everyone; prison rules by those with one of the prisons."""
    return not caseload or not rule.prisons or bool(set(rule.prisons) & set(caseload))


def editable_by(rule: AlertRule, caseload: Sequence[str] | None) -> bool:
    """Only people over the whole estate change estate-wide rules."""
    return not caseload or (bool(rule.prisons) and set(rule.prisons) <= set(caseload))


def list_rules(*, session: Session, caseload: Sequence[str] | None) -> list[AlertRule]:
    rules = session.scalars(
        select(AlertRule).where(AlertRule.archived_at.is_(None)).order_by(AlertRule.name)
    )
    return [rule for rule in rules if visible_to(rule, caseload)]


def get_rule(*, session: Session, rule_id: int, caseload: Sequence[str] | None) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None or rule.archived_at is not None or not visible_to(rule, caseload):
        raise RuleRefused(404, "alert rule not found")
    return rule


def _check_scope(session: Session, data: RuleIn, caseload: Sequence[str] | None) -> None:
    known = set(session.scalars(select(Prison.code).where(Prison.code.in_(data.prisons))))
    for index, code in enumerate(data.prisons):
        if code not in known:
            raise RuleRefused(
                422,
                f"{code!r} is not a prison code in the estate; use a code such as MDI.",
                ("body", "prisons", index),
            )
    if caseload:
        if not data.prisons:
            raise RuleRefused(
                422,
                "Your caseload covers only some prisons: name them in prisons "
                f"({', '.join(caseload)}); estate-wide rules are set by estate-wide staff.",
                ("body", "prisons"),
            )
        outside = [c for c in data.prisons if c not in caseload]
        if outside:
            raise RuleRefused(
                422,
                f"{outside[0]} is not in your caseload; a rule may name only your prisons.",
                ("body", "prisons", data.prisons.index(outside[0])),
            )


def _apply(rule: AlertRule, data: RuleIn) -> None:
    rule.name, rule.kind, rule.severity = data.name.strip(), data.kind, data.severity
    rule.threshold, rule.min_version = data.threshold, data.min_version
    rule.prisons = sorted(set(data.prisons))
    rule.device_kinds = sorted(set(data.device_kinds))
    rule.location_prefix = data.location_prefix.upper() if data.location_prefix else None
    rule.tag = data.tag
    rule.group_min, rule.enabled = data.group_min, data.enabled


def create_rule(
    *, session: Session, actor: str, data: RuleIn, caseload: Sequence[str] | None, now: datetime
) -> AlertRule:
    _check_scope(session, data, caseload)
    if data.threshold is None and KINDS[data.kind].default is not None:
        data = data.model_copy(update={"threshold": KINDS[data.kind].default})
    rule = AlertRule(created_by=actor, updated_by=actor, created_at=now, updated_at=now)
    _apply(rule, data)
    session.add(rule)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="alert_rule.created",
        target_type="alert_rule",
        target_id=str(rule.id),
        detail=data.model_dump(),
    )
    return rule


def change_rule(
    *,
    session: Session,
    actor: str,
    rule: AlertRule,
    data: RuleIn,
    caseload: Sequence[str] | None,
    now: datetime,
) -> AlertRule:
    if not editable_by(rule, caseload):
        raise RuleRefused(403, "This rule covers prisons outside your caseload; ask estate staff.")
    _check_scope(session, data, caseload)
    if data.threshold is None and KINDS[data.kind].default is not None:
        data = data.model_copy(update={"threshold": KINDS[data.kind].default})
    before = rule_out(rule).model_dump(mode="json")
    _apply(rule, data)
    rule.version += 1
    rule.updated_by, rule.updated_at = actor, now
    session.flush()
    record(
        session=session,
        actor=actor,
        action="alert_rule.changed",
        target_type="alert_rule",
        target_id=str(rule.id),
        detail={"before": before, "after": data.model_dump()},
    )
    return rule


def archive_rule(
    *, session: Session, actor: str, rule: AlertRule, caseload: Sequence[str] | None, now: datetime
) -> int:
    """Remove a rule; its open alerts are resolved. Returns how many were resolved."""
    if not editable_by(rule, caseload):
        raise RuleRefused(403, "This rule covers prisons outside your caseload; ask estate staff.")
    rule.archived_at, rule.enabled, rule.updated_by, rule.updated_at = now, False, actor, now
    closed = session.execute(
        update(Alert)
        .where(Alert.rule_id == rule.id, Alert.status != "resolved")
        .values(
            status="resolved",
            resolved_at=now,
            resolved_by=actor,
            resolution="The rule was removed.",
        )
    )
    count = int(getattr(closed, "rowcount", 0) or 0)
    record(
        session=session,
        actor=actor,
        action="alert_rule.removed",
        target_type="alert_rule",
        target_id=str(rule.id),
        detail={"name": rule.name, "alerts_resolved": count},
    )
    session.flush()
    return count
