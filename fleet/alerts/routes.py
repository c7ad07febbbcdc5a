"""The alert API: rules, the alert queue, acknowledging and resolving."""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import APIRouter, HTTPException, Query, Response, status

from fleet.alerts import rules as rule_service
from fleet.alerts import service
from fleet.alerts.models import Alert, AlertRule
from fleet.alerts.quiet import active_windows
from fleet.alerts.rules import RuleRefused, rule_out
from fleet.alerts.schemas import (
    AcknowledgeIn,
    ActedOut,
    AlertList,
    AlertOut,
    ResolveIn,
    RuleIn,
    RuleList,
    RuleOut,
    Severity,
)
from fleet.alerts.windows import window_out
from fleet.api.deps import DbSession, Principal, require
from fleet.api.errors import invalid
from fleet.api.pagination import decode_cursor, encode_cursor
from fleet.db import utcnow

router = APIRouter(tags=["alerts"])
AlertStatus = Annotated[list[str], Query()]


def refused(exc: RuleRefused) -> NoReturn:
    if exc.status == 422:
        # The handler adds the field and the full stop.
        raise invalid(
            tuple(str(p) for p in exc.field) or ("body",), exc.message.rstrip(".")
        ) from exc
    raise HTTPException(exc.status, exc.message) from exc


def _rule(session: DbSession, principal: Principal, rule_id: int) -> AlertRule:
    try:
        return rule_service.get_rule(session=session, rule_id=rule_id, caseload=principal.scope)
    except RuleRefused as exc:
        refused(exc)


@router.get("/alert-rules", response_model=RuleList)
def list_rules(session: DbSession, principal: Principal = require("alerts:read")) -> RuleList:
    """Rules that cover any prison the caller sees (estate-wide rules included)."""
    found = rule_service.list_rules(session=session, caseload=principal.scope)
    return RuleList(items=[rule_out(rule) for rule in found])


@router.post("/alert-rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
def create_rule(
    body: RuleIn, session: DbSession, principal: Principal = require("alert-rules:write")
) -> RuleOut:
    try:
        rule = rule_service.create_rule(
            session=session,
            actor=principal.username,
            data=body,
            caseload=principal.scope,
            now=utcnow(),
        )
    except RuleRefused as exc:
        refused(exc)
    return rule_out(rule)


@router.get("/alert-rules/{rule_id}", response_model=RuleOut)
def get_rule(
    rule_id: int, session: DbSession, principal: Principal = require("alerts:read")
) -> RuleOut:
    return rule_out(_rule(session, principal, rule_id))


@router.put("/alert-rules/{rule_id}", response_model=RuleOut)
def change_rule(
    rule_id: int,
    body: RuleIn,
    session: DbSession,
    principal: Principal = require("alert-rules:write"),
) -> RuleOut:
    rule = _rule(session, principal, rule_id)
    try:
        rule_service.change_rule(
            session=session,
            actor=principal.username,
            rule=rule,
            data=body,
            caseload=principal.scope,
            now=utcnow(),
        )
    except RuleRefused as exc:
        refused(exc)
    return rule_out(rule)


@router.delete("/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_rule(
    rule_id: int, session: DbSession, principal: Principal = require("alert-rules:write")
) -> Response:
    """Remove the rule; its open alerts are resolved."""
    rule = _rule(session, principal, rule_id)
    try:
        rule_service.archive_rule(
            session=session,
            actor=principal.username,
            rule=rule,
            caseload=principal.scope,
            now=utcnow(),
        )
    except RuleRefused as exc:
        refused(exc)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/alerts", response_model=AlertList)
def list_alerts(
    session: DbSession,
    principal: Principal = require("alerts:read"),
    prison: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    rule_id: int | None = None,
    severity: Severity | None = None,
    alert_status: Annotated[
        list[str], Query(alias="status", description="firing, acknowledged, resolved")
    ] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> AlertList:
    """Open alerts by default, newest first, with the quiet windows active in scope."""
    bad = [s for s in alert_status if s not in ("firing", "acknowledged", "resolved")]
    if bad:
        raise invalid(
            ("query", "status"), f"{bad[0]!r} is not a status; use firing, acknowledged or resolved"
        )
    after = int(decode_cursor(cursor, 1)[0]) if cursor else None
    filters = service.AlertFilters(
        prisons=tuple(code.upper() for code in prison),
        rule_id=rule_id,
        severity=severity,
        statuses=tuple(alert_status) or ("firing", "acknowledged"),
    )
    found = service.list_alerts(
        session=session, filters=filters, caseload=principal.scope, limit=limit, after_id=after
    )
    now = utcnow()
    quiet = active_windows(session=session, now=now, prisons=principal.scope)
    return AlertList(
        items=service.alert_views(session=session, alerts=found),
        next_cursor=encode_cursor([found[-1].id]) if len(found) == limit else None,
        quiet=[window_out(a.window, now) for a in quiet],
    )


def _alert(session: DbSession, principal: Principal, alert_id: int) -> Alert:
    alert = service.get_alert(session=session, alert_id=alert_id, caseload=principal.scope)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "alert not found")
    return alert


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(
    alert_id: int, session: DbSession, principal: Principal = require("alerts:read")
) -> AlertOut:
    return service.alert_views(session=session, alerts=[_alert(session, principal, alert_id)])[0]


@router.post("/alerts/acknowledge", response_model=ActedOut)
def acknowledge_many(
    body: AcknowledgeIn, session: DbSession, principal: Principal = require("alerts:write")
) -> ActedOut:
    """Acknowledge several alerts; ones not firing (or not visible) are listed as unchanged."""
    changed, unchanged = service.acknowledge(
        session=session,
        actor=principal.username,
        ids=body.ids,
        caseload=principal.scope,
        now=utcnow(),
    )
    return ActedOut(changed=changed, unchanged=unchanged)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={409: {"description": "The alert is not firing"}},
)
def acknowledge_one(
    alert_id: int, session: DbSession, principal: Principal = require("alerts:write")
) -> AlertOut:
    alert = _alert(session, principal, alert_id)
    if alert.status != "firing":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"alert {alert_id} is {alert.status}, not firing"
        )
    service.acknowledge(
        session=session,
        actor=principal.username,
        ids=[alert_id],
        caseload=principal.scope,
        now=utcnow(),
    )
    session.refresh(alert)
    return service.alert_views(session=session, alerts=[alert])[0]


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=AlertOut,
    responses={409: {"description": "The alert is already resolved"}},
)
def resolve(
    alert_id: int,
    body: ResolveIn,
    session: DbSession,
    principal: Principal = require("alerts:write"),
) -> AlertOut:
    alert = _alert(session, principal, alert_id)
    if not service.resolve(
        session=session, actor=principal.username, alert=alert, note=body.note, now=utcnow()
    ):
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is already resolved")
    return service.alert_views(session=session, alerts=[alert])[0]
