"""Pages to manage alert rules and quiet windows, for those allowed to change them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from fleet.alerts import rules as rule_service
from fleet.alerts import windows
from fleet.alerts.kinds import KINDS
from fleet.alerts.models import QuietWindow
from fleet.alerts.pages import subnav
from fleet.alerts.quiet import DAY_NAMES, PRISON_TZ, active_windows, schedule_text
from fleet.alerts.rules import RuleRefused
from fleet.alerts.schemas import QuietIn, RuleIn
from fleet.api.deps import DbSession, Principal
from fleet.db import utcnow
from fleet.devices.models import DEVICE_KINDS
from fleet.estate.service import list_prisons
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import CsrfChecked, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
Errors = dict[str, str]


def _errors(exc: ValidationError | RuleRefused) -> Errors:
    """Field name -> sentence, for the error summary and the fields themselves."""
    if isinstance(exc, RuleRefused):
        names = [str(p) for p in exc.field if p != "body" and not isinstance(p, int)]
        return {names[0] if names else "form": exc.message}
    found: Errors = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(name, message[:1].upper() + message[1:])
    return found


def _rules_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
) -> Response:
    require_page_permission(principal, "alerts:read")
    scope = page_scope(request, principal)
    found = rule_service.list_rules(session=session, caseload=scope)
    return templates.TemplateResponse(
        request,
        "alerts/rules.html",
        page_context(
            request,
            page_title="Alert rules",
            principal=principal,
            active_nav="alerts",
            subnav=subnav(principal, "rules"),
            rules=[
                (rule_service.rule_out(r), rule_service.editable_by(r, principal.scope))
                for r in found
            ],
            kinds=KINDS,
            device_kinds=DEVICE_KINDS,
            can_edit=principal.can("alert-rules:write"),
            form=form or {"severity": "warning", "group_min": "3"},
            errors=errors or {},
        ),
        status_code=422 if errors else 200,
    )


@router.get("/alerts/rules", response_class=HTMLResponse)
def rules_page(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    return _rules_page(request, session, principal)


def _codes(raw: str) -> list[str]:
    return [c.strip().upper() for c in raw.replace(",", " ").split() if c.strip()]


@router.post("/alerts/rules", dependencies=[CsrfChecked])
async def add_rule(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "alert-rules:write")
    raw = await request.form()
    # Database work can wait on row locks, which must not stall the event loop.
    return await run_in_threadpool(_add_rule, request, session, principal, raw)


def _add_rule(request: Request, session: Session, principal: Principal, raw: FormData) -> Response:
    form: dict[str, Any] = {
        k: str(raw.get(k) or "").strip()[:200] for k in raw if k != "device_kinds"
    }
    form["device_kinds"] = [str(v) for v in raw.getlist("device_kinds")]
    try:
        data = RuleIn.model_validate(
            {
                "name": form.get("name", ""),
                "kind": form.get("kind", ""),
                "severity": form.get("severity") or "warning",
                "threshold": form.get("threshold") or None,
                "min_version": form.get("min_version") or None,
                "prisons": _codes(form.get("prisons", "")),
                "device_kinds": form["device_kinds"],
                "location_prefix": form.get("location_prefix") or None,
                "tag": (form.get("tag") or "").lower() or None,
                "group_min": form.get("group_min") or 3,
            }
        )
        rule_service.create_rule(
            session=session,
            actor=principal.username,
            data=data,
            caseload=principal.scope,
            now=utcnow(),
        )
    except (ValidationError, RuleRefused) as exc:
        return _rules_page(request, session, principal, form, _errors(exc))
    return RedirectResponse("/alerts/rules", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/alerts/rules/{rule_id:int}/remove", dependencies=[CsrfChecked])
def remove_rule(
    rule_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    # A plain function, so it runs on a worker thread: archiving can wait on a row lock.
    require_page_permission(principal, "alert-rules:write")
    try:
        rule = rule_service.get_rule(session=session, rule_id=rule_id, caseload=principal.scope)
        rule_service.archive_rule(
            session=session,
            actor=principal.username,
            rule=rule,
            caseload=principal.scope,
            now=utcnow(),
        )
    except RuleRefused as exc:
        raise HTTPException(exc.status, exc.message) from exc
    return RedirectResponse("/alerts/rules", status_code=status.HTTP_303_SEE_OTHER)


def _quiet_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
) -> Response:
    require_page_permission(principal, "alerts:read")
    scope = page_scope(request, principal)
    now = utcnow()
    found = windows.list_windows(session=session, caseload=scope, now=now)
    return templates.TemplateResponse(
        request,
        "alerts/quiet.html",
        page_context(
            request,
            page_title="Quiet windows",
            principal=principal,
            active_nav="alerts",
            subnav=subnav(principal, "quiet"),
            windows=[(windows.window_out(w, now), schedule_text(w)) for w in found],
            quiet=active_windows(session=session, now=now, prisons=scope),
            prisons=[(p.code, p.name) for p in list_prisons(session=session, caseload=scope)],
            kinds=KINDS,
            day_names=DAY_NAMES,
            can_edit=principal.can("quiet-windows:write"),
            form=form or {"kind": "scheduled", "days": [], "rule_kinds": []},
            errors=errors or {},
        ),
        status_code=422 if errors else 200,
    )


@router.get("/alerts/quiet", response_class=HTMLResponse)
def quiet_page(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    return _quiet_page(request, session, principal)


def _local(raw: str, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "T"))
    except ValueError as exc:
        raise RuleRefused(
            422, f"Enter {name.replace('_', ' ')} like 2026-11-27 18:00 (UK time)", (name,)
        ) from exc
    return value.replace(tzinfo=PRISON_TZ) if value.tzinfo is None else value


@router.post("/alerts/quiet", dependencies=[CsrfChecked])
async def add_window(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "quiet-windows:write")
    raw = await request.form()
    # Database work can wait on row locks, which must not stall the event loop.
    return await run_in_threadpool(_add_window, request, session, principal, raw)


def _add_window(
    request: Request, session: Session, principal: Principal, raw: FormData
) -> Response:
    lists = ("days", "rule_kinds")
    form: dict[str, Any] = {k: str(raw.get(k) or "").strip()[:200] for k in raw if k not in lists}
    for name in lists:
        form[name] = [str(v) for v in raw.getlist(name)]
    scheduled = form.get("kind") == "scheduled"
    try:
        data = QuietIn.model_validate(
            {
                "prison_code": form.get("prison_code", ""),
                "kind": form.get("kind", ""),
                "reason": form.get("reason", ""),
                "rule_kinds": form["rule_kinds"],
                "days": [int(d) for d in form["days"] if d.isdigit()] if scheduled else [],
                "start_time": (form.get("start_time") or None) if scheduled else None,
                "end_time": (form.get("end_time") or None) if scheduled else None,
                "starts_at": None if scheduled else _local(form.get("starts_at", ""), "starts_at"),
                "ends_at": None if scheduled else _local(form.get("ends_at", ""), "ends_at"),
            }
        )
        windows.create_window(
            session=session,
            actor=principal.username,
            data=data,
            caseload=page_scope(request, principal),
            now=utcnow(),
        )
    except (ValidationError, RuleRefused) as exc:
        return _quiet_page(request, session, principal, form, _errors(exc))
    return RedirectResponse("/alerts/quiet", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/alerts/quiet/{window_id:int}/end", dependencies=[CsrfChecked])
def end_window(
    window_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    # A plain function, so it runs on a worker thread: ending can wait on a row lock.
    require_page_permission(principal, "quiet-windows:write")
    window = session.get(QuietWindow, window_id)
    scope = page_scope(request, principal)
    if (
        window is None
        or window.archived_at is not None
        or (scope and window.prison_code not in scope)
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    windows.end_window(session=session, actor=principal.username, window=window, now=utcnow())
    return RedirectResponse("/alerts/quiet", status_code=status.HTTP_303_SEE_OTHER)
