"""Web sign-in and sign-out, and the signed-in home page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from fleet.api.deps import DbSession, Principal, current_principal_optional
from fleet.audit.service import record
from fleet.auth import service as accounts
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Prison
from fleet.web.templating import csrf_ok, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
OptionalPrincipal = Annotated[Principal | None, Depends(current_principal_optional)]


def _safe_next(value: str | None) -> str:
    # Only local paths: an open redirect would let a phishing link bounce through us.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(
        request,
        "sign_in.html",
        page_context(request, page_title="Sign in", next_url=_safe_next(next), username=""),
    )


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    error = None
    user = None
    if not csrf_ok(request, csrf_token):
        error = "Your sign-in form expired. Try again."
    elif not username or not password:
        error = "Enter your username and password"
    else:
        user = accounts.user_for_password(session=session, username=username, password=password)
        if user is None:
            error = "The username or password is not right"
            record(
                session=session,
                actor=f"web:{username[:50]}",
                action="user.sign_in_failed",
                target_type="user",
                target_id=username[:64],
            )
    if user is None:
        return templates.TemplateResponse(
            request,
            "sign_in.html",
            page_context(
                request,
                page_title="Error: Sign in",
                next_url=_safe_next(next),
                username=username,
                error=error,
            ),
            status_code=400,
        )
    request.session.clear()
    request.session["user_id"] = user.id
    record(
        session=session,
        actor=user.username,
        action="user.signed_in",
        target_type="user",
        target_id=user.username,
    )
    return RedirectResponse(_safe_next(next), status_code=303)


@router.get("/sign-out", response_class=HTMLResponse)
def sign_out_form(request: Request, principal: OptionalPrincipal) -> Response:
    return templates.TemplateResponse(
        request, "sign_out.html", page_context(request, page_title="Sign out", principal=principal)
    )


@router.post("/sign-out")
def sign_out(
    request: Request, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> RedirectResponse:
    if csrf_ok(request, csrf_token):
        request.session.clear()
    return RedirectResponse("/sign-in", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: DbSession, principal: OptionalPrincipal) -> Response:
    if principal is None:
        return RedirectResponse("/sign-in", status_code=303)
    stmt = (
        select(
            Prison.code,
            Prison.name,
            func.count(Device.id),
            func.count(DeviceState.device_id).filter(DeviceState.online.is_(True)),
            func.max(DeviceState.last_seen),
        )
        .join(Device, Device.prison_code == Prison.code)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.lifecycle == "enrolled")
        .group_by(Prison.code, Prison.name)
        .order_by(Prison.name)
    )
    if principal.scope:
        stmt = stmt.where(Prison.code.in_(principal.scope))
    prisons = [
        {
            "code": code,
            "name": name,
            "enrolled": enrolled,
            "online": online,
            "last_seen": last.strftime("%Y-%m-%d %H:%M:%S") if last else None,
        }
        for code, name, enrolled, online, last in session.execute(stmt)
    ]
    return templates.TemplateResponse(
        request,
        "home.html",
        page_context(
            request, page_title="Home", principal=principal, prisons=prisons, active_nav="home"
        ),
    )
