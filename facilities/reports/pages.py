"""The fault reports page: charts with table alternatives, a period and prison picker, CSV."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from facilities.faults.pages_common import CATEGORY_LABELS, sub_navigation
from facilities.reports.charts import BarChart, bar_chart
from facilities.reports.routes import CSV_HEADERS, ScopeProblem, report_prisons
from facilities.reports.service import BadPeriod, Report, build_report, parse_period
from fleet.api.deps import DbSession
from fleet.db import utcnow
from fleet.estate.service import list_prisons
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
templates.env.globals.update(category_labels=CATEGORY_LABELS)
QUICK_PERIODS = (7, 30, 90, 365)
# The page lists the places that came back most often; the CSV and the API have every one.
RECURRING_SHOWN = 50


def _charts(report: Report) -> dict[str, BarChart]:
    by_category: dict[str, int] = defaultdict(int)
    by_prison: dict[str, int] = defaultdict(int)
    for o in report.open:
        by_category[o.category] += o.count
        by_prison[o.prison_code] += o.count
    label = CATEGORY_LABELS.get
    return {
        "open_category": bar_chart(
            "Open faults by category",
            [(label(c, c), [("open", n, str(n))]) for c, n in sorted(by_category.items())],
        ),
        "open_prison": bar_chart(
            "Open faults by prison",
            [(code, [("open", n, str(n))]) for code, n in sorted(by_prison.items())],
        ),
        "clearance": bar_chart(
            "Mean hours to clear, by category",
            [
                (
                    label(c.category, c.category),
                    [("clear", c.mean_hours, f"{c.mean_hours:.1f} h" if c.mean_hours else "none")],
                )
                for c in report.clearance
            ],
        ),
        "compliance": bar_chart(
            "SLA compliance by category: responded in time and cleared in time",
            [
                (
                    label(c.category, c.category),
                    [
                        ("respond", c.respond_pct, _pct_text(c.respond_pct)),
                        ("clear", c.clear_pct, _pct_text(c.clear_pct)),
                    ],
                )
                for c in report.compliance
            ],
            top=100.0,
        ),
    }


def _pct_text(value: float | None) -> str:
    return "none due" if value is None else f"{value:g}%"


@router.get("/faults/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    session: DbSession,
    principal: PagePrincipal,
    prison: str = "",
    first: str = Query(default="", alias="from"),
    last: str = Query(default="", alias="to"),
) -> Response:
    """Open faults, time to clear, SLA compliance and recurring faults over a period."""
    require_page_permission(principal, "faults:read")
    scope = page_scope(request, principal)
    today = utcnow().date()
    form = {
        "prison": prison.strip().upper()[:8],
        "from": first.strip()[:40],
        "to": last.strip()[:40],
    }
    errors: dict[str, str] = {}
    prisons: tuple[str, ...] | None = scope
    try:
        prisons = report_prisons(session, scope, [form["prison"]] if form["prison"] else [])
    except ScopeProblem as exc:
        errors["prison"] = f"Choose one of your prisons: {exc.message}"
    try:
        period = parse_period(form["from"], form["to"], today=today)
    except BadPeriod as exc:
        errors[exc.field] = exc.message[0].upper() + exc.message[1:]
    choices = list_prisons(session=session, caseload=scope)
    context: dict[str, Any] = {
        "page_title": ("Error: " if errors else "") + "Fault reports",
        "principal": principal,
        "active_nav": "faults",
        "subnav": sub_navigation("reports"),
        "recurring_shown": RECURRING_SHOWN,
        "form": form,
        "errors": errors,
        "prison_choices": choices,
        "quick": [
            (days, (today - timedelta(days=days - 1)).isoformat(), today.isoformat())
            for days in QUICK_PERIODS
        ],
    }
    if errors:
        return templates.TemplateResponse(
            request,
            "fault_reports/reports.html",
            page_context(request, report=None, **context),
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    report = build_report(session=session, prisons=prisons, period=period, now=utcnow())
    query: list[tuple[str, str]] = [("prison", p) for p in report.prisons or ()]
    query += [("from", period.first.isoformat()), ("to", period.last.isoformat())]
    return templates.TemplateResponse(
        request,
        "fault_reports/reports.html",
        page_context(
            request,
            report=report,
            charts=_charts(report),
            csv_links={s: f"/api/v1/fault-reports/{s}.csv?{urlencode(query)}" for s in CSV_HEADERS},
            **context,
        ),
    )
