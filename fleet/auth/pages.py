"""Web sign-in and sign-out, the landing page per role, and the prison switcher."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleet.api.deps import DbSession, Principal, current_principal_optional
from fleet.audit.service import record
from fleet.auth import service as accounts
from fleet.web.security import SESSION_ISSUED_AT, SignInThrottle, revoke_web_sessions
from fleet.web.shell import CHOSEN_PRISON, PagePrincipal, home_path
from fleet.web.templating import CsrfChecked, csrf_ok, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
OptionalPrincipal = Annotated[Principal | None, Depends(current_principal_optional)]


def _safe_next(value: str | None) -> str:
    # Only local paths: an open redirect would let a phishing link bounce through us.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


def _throttle(request: Request) -> SignInThrottle:
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    return throttle


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(
        request,
        "sign_in.html",
        page_context(request, page_title="Sign in", next_url=_safe_next(next), username=""),
    )


def _sign_in_problem(request: Request, username: str, password: str, csrf: str) -> str | None:
    if not csrf_ok(request, csrf):
        return "Your sign-in form expired. Try again."
    if not username or not password:
        return "Enter your username and password"
    address = request.client.host if request.client else "unknown"
    wait = _throttle(request).retry_after(username, address)
    if wait:
        minutes = max(1, round(wait / 60))
        return f"Too many failed attempts. Wait {minutes} minutes, then try again"
    return None


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    user = None
    error = _sign_in_problem(request, username, password, csrf_token)
    if error is None:
        user = accounts.user_for_password(session=session, username=username, password=password)
        if user is None:
            error = "The username or password is not right"
            address = request.client.host if request.client else "unknown"
            _throttle(request).failed(username, address)
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
    _throttle(request).succeeded(username)
    request.session.clear()
    request.session["user_id"] = user.id
    request.session[SESSION_ISSUED_AT] = time.time()
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


@router.post("/sign-out", dependencies=[CsrfChecked])
def sign_out(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/sign-in", status_code=303)


@router.post("/sign-out-everywhere", dependencies=[CsrfChecked])
def sign_out_everywhere(
    request: Request, session: DbSession, principal: PagePrincipal
) -> RedirectResponse:
    revoke_web_sessions(session=session, user_id=principal.user_id)
    record(
        session=session,
        actor=principal.username,
        action="user.signed_out_everywhere",
        target_type="user",
        target_id=principal.username,
    )
    request.session.clear()
    return RedirectResponse("/sign-in", status_code=303)


@router.get("/")
def home(principal: PagePrincipal) -> Response:
    return RedirectResponse(home_path(principal.role), status_code=303)


@router.get("/prison", response_class=HTMLResponse)
def choose_prison_form(request: Request, principal: PagePrincipal) -> Response:
    if len(principal.caseload) < 2:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return templates.TemplateResponse(
        request,
        "choose_prison.html",
        page_context(request, page_title="Choose a prison", principal=principal),
    )


@router.post("/prison", dependencies=[CsrfChecked])
def choose_prison(
    request: Request,
    principal: PagePrincipal,
    prison: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    if prison and prison not in principal.caseload:
        # Never accept a prison outside the caseload, whatever the form said.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    if prison:
        request.session[CHOSEN_PRISON] = prison
    else:
        request.session.pop(CHOSEN_PRISON, None)
    return RedirectResponse(home_path(principal.role), status_code=303)
