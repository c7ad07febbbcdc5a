"""Fault targets per category x priority, and where each prison's SLA warnings are sent."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from facilities.faults import notify, sla
from facilities.faults.schemas import (
    NotificationRouteIn,
    NotificationRouteOut,
    TargetOut,
    TargetUpdate,
)
from fleet.api.deps import DbSession, Principal, ensure_prison_visible, require
from fleet.estate.service import get_prison

router = APIRouter(tags=["faults"])


@router.get("/fault-targets", response_model=list[TargetOut])
def list_targets(
    session: DbSession, principal: Principal = require("faults:read")
) -> list[TargetOut]:
    """Time to respond and to clear for every category x priority."""
    return [
        TargetOut.model_validate(t, from_attributes=True) for t in sla.all_targets(session=session)
    ]


@router.put("/fault-targets", response_model=TargetOut)
def set_target(
    body: TargetUpdate, session: DbSession, principal: Principal = require("faults:admin")
) -> TargetOut:
    """Change one target; faults reported from now on use it."""
    target = sla.set_target(
        session=session,
        actor=principal.username,
        category=body.category,
        priority=body.priority,
        respond=body.respond_minutes,
        clear=body.clear_minutes,
    )
    return TargetOut.model_validate(target, from_attributes=True)


def _visible_prison(session: DbSession, principal: Principal, code: str) -> str:
    prison = get_prison(session=session, code=code)
    if prison is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "prison not found")
    ensure_prison_visible(principal, prison.code, "prison")
    return prison.code


@router.get("/prisons/{code}/notifications", response_model=NotificationRouteOut)
def get_notifications(
    code: str, session: DbSession, principal: Principal = require("faults:admin")
) -> NotificationRouteOut:
    """Where this prison's at-risk and breach warnings are sent."""
    prison_code = _visible_prison(session, principal, code)
    route = notify.route_for(session=session, prison_code=prison_code)
    return NotificationRouteOut(prison_code=prison_code, **vars(route))


@router.put("/prisons/{code}/notifications", response_model=NotificationRouteOut)
def set_notifications(
    code: str,
    body: NotificationRouteIn,
    session: DbSession,
    principal: Principal = require("faults:admin"),
) -> NotificationRouteOut:
    """Send this prison's warnings to an email address and/or a webhook; null turns one off."""
    prison_code = _visible_prison(session, principal, code)
    route = notify.set_route(
        session=session,
        actor=principal.username,
        prison_code=prison_code,
        email_to=body.email_to,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
    )
    return NotificationRouteOut(prison_code=prison_code, **vars(route))
