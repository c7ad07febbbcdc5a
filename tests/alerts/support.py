"""Builders for alert tests: rules, windows and a pass at a chosen time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from fleet.alerts.evaluate import PassResult, evaluate
from fleet.alerts.models import Alert
from fleet.alerts.rules import create_rule
from fleet.alerts.schemas import QuietIn, RuleIn
from fleet.alerts.windows import create_window
from fleet.context import Context
from fleet.db import transaction, utcnow


def add_rule(ctx: Context, **fields: Any) -> int:
    data = RuleIn.model_validate({"name": fields.get("kind", "rule"), **fields})
    with transaction(ctx.sessions) as session:
        rule = create_rule(session=session, actor="tester", data=data, caseload=None, now=utcnow())
        return rule.id


def add_window(ctx: Context, now: datetime | None = None, **fields: Any) -> int:
    with transaction(ctx.sessions) as session:
        window = create_window(
            session=session,
            actor="tester",
            data=QuietIn.model_validate(fields),
            caseload=None,
            now=now or utcnow(),
        )
        return window.id


def run_pass(ctx: Context, now: datetime) -> PassResult:
    with transaction(ctx.sessions) as session:
        return evaluate(session=session, now=now)


def alerts(ctx: Context, *, rule_id: int | None = None) -> list[Alert]:
    with transaction(ctx.sessions) as session:
        stmt = select(Alert).order_by(Alert.id)
        if rule_id is not None:
            stmt = stmt.where(Alert.rule_id == rule_id)
        return list(session.scalars(stmt))


def open_alerts(ctx: Context, *, rule_id: int | None = None) -> list[Alert]:
    return [a for a in alerts(ctx, rule_id=rule_id) if a.status != "resolved"]
