"""Notification routes: where a prison's alerts of some severity go."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fleet.alerts.models import AlertNotice, AlertRoute
from fleet.alerts.rules import RuleRefused
from fleet.alerts.schemas import RouteIn, RouteOut
from fleet.audit.service import record
from fleet.estate.models import Prison


def route_out(route: AlertRoute) -> RouteOut:
    return RouteOut.model_validate(route, from_attributes=True)


def list_routes(*, session: Session, caseload: Sequence[str] | None) -> list[AlertRoute]:
    stmt = select(AlertRoute).order_by(AlertRoute.prison_code, AlertRoute.id)
    if caseload:
        stmt = stmt.where(AlertRoute.prison_code.in_(list(caseload)))
    return list(session.scalars(stmt))


def create_route(
    *, session: Session, actor: str, data: RouteIn, caseload: Sequence[str] | None, now: datetime
) -> AlertRoute:
    code = data.prison_code.upper()
    if session.get(Prison, code) is None or (caseload and code not in caseload):
        raise RuleRefused(
            422,
            f"{data.prison_code!r} is not a prison code you look after.",
            ("body", "prison_code"),
        )
    if not data.email_to and not data.webhook_url:
        raise RuleRefused(
            422, "Give email_to, webhook_url or both: a route needs somewhere to send.", ("body",)
        )
    route = AlertRoute(
        prison_code=code,
        min_severity=data.min_severity,
        email_to=data.email_to,
        webhook_url=data.webhook_url,
        digest_minutes=data.digest_minutes,
        created_by=actor,
        created_at=now,
    )
    session.add(route)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="alert_route.created",
        target_type="alert_route",
        target_id=str(route.id),
        prison_code=code,
        detail=data.model_dump(),
    )
    return route


def remove_route(*, session: Session, actor: str, route: AlertRoute) -> None:
    session.execute(delete(AlertNotice).where(AlertNotice.route_id == route.id))
    record(
        session=session,
        actor=actor,
        action="alert_route.removed",
        target_type="alert_route",
        target_id=str(route.id),
        prison_code=route.prison_code,
    )
    session.delete(route)
    session.flush()
