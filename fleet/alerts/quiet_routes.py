"""The API for quiet windows and notification routes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from fleet.alerts import routing, windows
from fleet.alerts.models import AlertRoute, QuietWindow
from fleet.alerts.routes import refused
from fleet.alerts.rules import RuleRefused
from fleet.alerts.schemas import QuietIn, QuietList, QuietOut, RouteIn, RouteList, RouteOut
from fleet.api.deps import DbSession, Principal, ensure_prison_visible, require
from fleet.db import utcnow

router = APIRouter(tags=["alerts"])


@router.get("/quiet-windows", response_model=QuietList)
def list_windows(session: DbSession, principal: Principal = require("alerts:read")) -> QuietList:
    """Scheduled and ad hoc windows of the caller's prisons, each saying whether it is on now."""
    now = utcnow()
    found = windows.list_windows(session=session, caseload=principal.scope, now=now)
    return QuietList(items=[windows.window_out(w, now) for w in found])


@router.post("/quiet-windows", response_model=QuietOut, status_code=status.HTTP_201_CREATED)
def create_window(
    body: QuietIn, session: DbSession, principal: Principal = require("quiet-windows:write")
) -> QuietOut:
    now = utcnow()
    try:
        window = windows.create_window(
            session=session, actor=principal.username, data=body, caseload=principal.scope, now=now
        )
    except RuleRefused as exc:
        refused(exc)
    return windows.window_out(window, now)


@router.delete("/quiet-windows/{window_id}", status_code=status.HTTP_204_NO_CONTENT)
def end_window(
    window_id: int, session: DbSession, principal: Principal = require("quiet-windows:write")
) -> Response:
    """End an ad hoc window now, or remove a scheduled one."""
    window = session.get(QuietWindow, window_id)
    if window is None or window.archived_at is not None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "quiet window not found")
    ensure_prison_visible(principal, window.prison_code, "quiet window")
    windows.end_window(session=session, actor=principal.username, window=window, now=utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/alert-routes", response_model=RouteList)
def list_routes(session: DbSession, principal: Principal = require("alerts:read")) -> RouteList:
    found = routing.list_routes(session=session, caseload=principal.scope)
    return RouteList(items=[routing.route_out(r) for r in found])


@router.post("/alert-routes", response_model=RouteOut, status_code=status.HTTP_201_CREATED)
def create_route(
    body: RouteIn, session: DbSession, principal: Principal = require("alert-routes:write")
) -> RouteOut:
    try:
        route = routing.create_route(
            session=session,
            actor=principal.username,
            data=body,
            caseload=principal.scope,
            now=utcnow(),
        )
    except RuleRefused as exc:
        refused(exc)
    return routing.route_out(route)


@router.delete("/alert-routes/{route_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_route(
    route_id: int, session: DbSession, principal: Principal = require("alert-routes:write")
) -> Response:
    route = session.get(AlertRoute, route_id)
    if route is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "alert route not found")
    ensure_prison_visible(principal, route.prison_code, "alert route")
    routing.remove_route(session=session, actor=principal.username, route=route)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
