"""Alert pages: the queue with filters and bulk acknowledge, and one alert's detail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from fleet.alerts import service
from fleet.alerts.kinds import KINDS
from fleet.alerts.models import STATUSES, Alert, AlertRule
from fleet.alerts.quiet import active_windows
from fleet.alerts.rules import list_rules
from fleet.api.deps import DbSession, Principal
from fleet.db import utcnow
from fleet.estate.service import list_prisons
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import CsrfChecked, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
PAGE_SIZE = 100
STATUS_CHOICES = {"open": "Open (firing or acknowledged)", **{s: s.capitalize() for s in STATUSES}}
SEVERITY_TAGS = {
    "critical": "govuk-tag--red",
    "warning": "govuk-tag--orange",
    "info": "govuk-tag--blue",
}
STATUS_TAGS = {
    "firing": "govuk-tag--red",
    "acknowledged": "govuk-tag--yellow",
    "resolved": "govuk-tag--green",
}


def subnav(principal: Principal, active: str) -> list[dict[str, Any]]:
    items = [("queue", "/alerts", "Alert queue"), ("rules", "/alerts/rules", "Rules")]
    items.append(("quiet", "/alerts/quiet", "Quiet windows"))
    return [{"href": href, "text": text, "active": key == active} for key, href, text in items]


def _int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


def _query(request: Request) -> dict[str, str]:
    params = request.query_params
    return {
        "prison": params.get("prison", "").upper()[:8],
        "rule": params.get("rule", "")[:12],
        "severity": params.get("severity", "") if params.get("severity") in SEVERITY_TAGS else "",
        "status": params.get("status", "open")
        if params.get("status") in STATUS_CHOICES
        else "open",
    }


@router.get("/alerts", response_class=HTMLResponse)
def queue_page(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    """The alert queue: filters, active quiet windows, and a form to acknowledge many at once."""
    require_page_permission(principal, "alerts:read")
    scope = page_scope(request, principal)
    query = _query(request)
    filters = service.AlertFilters(
        prisons=(query["prison"],) if query["prison"] else (),
        rule_id=_int(query["rule"]),
        severity=query["severity"] or None,
        statuses=("firing", "acknowledged") if query["status"] == "open" else (query["status"],),
    )
    after = _int(request.query_params.get("before"))
    found = service.list_alerts(
        session=session, filters=filters, caseload=scope, limit=PAGE_SIZE + 1, after_id=after
    )
    more = len(found) > PAGE_SIZE
    rows = service.alert_views(session=session, alerts=found[:PAGE_SIZE])
    now = utcnow()
    rules = list_rules(session=session, caseload=scope)
    older = None
    if more:
        older = "/alerts?" + urlencode({**query, "before": rows[-1].id})
    return templates.TemplateResponse(
        request,
        "alerts/queue.html",
        page_context(
            request,
            page_title="Alert queue",
            principal=principal,
            active_nav="alerts",
            subnav=subnav(principal, "queue"),
            rows=rows,
            query=query,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            older_url=older,
            quiet=active_windows(session=session, now=now, prisons=scope),
            prisons=[(p.code, p.name) for p in list_prisons(session=session, caseload=scope)],
            rules=[(str(r.id), r.name) for r in rules],
            status_choices=STATUS_CHOICES,
            severity_tags=SEVERITY_TAGS,
            status_tags=STATUS_TAGS,
            can_act=principal.can("alerts:write"),
            acted=request.query_params.get("acted", ""),
        ),
    )


def _back(form: Any, default: str) -> str:
    """Where to go after a form: a path on this site only."""
    target = str(form.get("back") or "")
    return target if target.startswith("/alerts") and not target.startswith("//") else default


@router.post("/alerts/acknowledge", dependencies=[CsrfChecked])
async def acknowledge_many(
    request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    """Acknowledge the ticked alerts and return to the same view of the queue."""
    require_page_permission(principal, "alerts:write")
    form = await request.form()
    # The update waits on the alerts' row locks; waiting on the event loop would stall every
    # other request, so the database work runs on a worker thread.
    return await run_in_threadpool(_acknowledge_many, request, session, principal, form)


def _acknowledge_many(
    request: Request, session: Session, principal: Principal, form: FormData
) -> Response:
    ids = [int(str(v)) for v in form.getlist("ids") if str(v).isdigit()]
    changed: list[int] = []
    if ids:
        changed, _ = service.acknowledge(
            session=session,
            actor=principal.username,
            ids=ids,
            caseload=page_scope(request, principal),
            now=utcnow(),
        )
    back = _back(form, "/alerts")
    joiner = "&" if "?" in back else "?"
    return RedirectResponse(
        f"{back}{joiner}acted={len(changed)}", status_code=status.HTTP_303_SEE_OTHER
    )


def _visible(request: Request, session: DbSession, principal: Principal, alert_id: int) -> Alert:
    alert = service.get_alert(
        session=session, alert_id=alert_id, caseload=page_scope(request, principal)
    )
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return alert


@router.get("/alerts/{alert_id:int}", response_class=HTMLResponse)
def alert_page(
    alert_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    require_page_permission(principal, "alerts:read")
    alert = _visible(request, session, principal, alert_id)
    [view] = service.alert_views(session=session, alerts=[alert])
    rule = session.get(AlertRule, alert.rule_id)
    return templates.TemplateResponse(
        request,
        "alerts/alert.html",
        page_context(
            request,
            page_title=f"Alert {alert.id}",
            principal=principal,
            active_nav="alerts",
            subnav=subnav(principal, "queue"),
            alert=view,
            rule=rule,
            rule_label=KINDS[alert.kind].label,
            severity_tags=SEVERITY_TAGS,
            status_tags=STATUS_TAGS,
            can_act=principal.can("alerts:write"),
        ),
    )


@router.post("/alerts/{alert_id:int}/acknowledge", dependencies=[CsrfChecked])
def acknowledge_one(
    alert_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    # A plain function, so it runs on a worker thread: the update can wait on a row lock.
    require_page_permission(principal, "alerts:write")
    alert = _visible(request, session, principal, alert_id)
    service.acknowledge(
        session=session, actor=principal.username, ids=[alert.id], caseload=None, now=utcnow()
    )
    return RedirectResponse(f"/alerts/{alert.id}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/alerts/{alert_id:int}/resolve", dependencies=[CsrfChecked])
async def resolve(
    alert_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    require_page_permission(principal, "alerts:write")
    form = await request.form()
    # Resolving waits on the alert's row lock, which must not stall the event loop.
    return await run_in_threadpool(_resolve, alert_id, request, session, principal, form)


def _resolve(
    alert_id: int, request: Request, session: Session, principal: Principal, form: FormData
) -> Response:
    alert = _visible(request, session, principal, alert_id)
    note = str(form.get("note") or "")[:300]
    service.resolve(session=session, actor=principal.username, alert=alert, note=note, now=utcnow())
    return RedirectResponse(f"/alerts/{alert.id}", status_code=status.HTTP_303_SEE_OTHER)
