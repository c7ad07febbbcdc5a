"""Fault reports API: the figures as JSON, and each section as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from facilities.reports.schemas import FaultReportOut
from facilities.reports.service import BadPeriod, Period, Report, build_report, parse_period
from fleet.api.deps import DbSession, Principal, require
from fleet.api.errors import invalid
from fleet.db import utcnow
from fleet.estate.service import get_prison

router = APIRouter(tags=["fault reports"])
READ = "faults:read"
Section = Literal["open", "clearance", "compliance", "recurring"]
PrisonQuery = Annotated[
    list[str] | None, Query(description="Prison code; repeat for more. Default: your caseload")
]
FromQuery = Annotated[
    str | None, Query(alias="from", max_length=40, description="First day, e.g. 2026-11-01")
]
ToQuery = Annotated[
    str | None,
    Query(alias="to", max_length=40, description="Last day, inclusive; default today (UTC)"),
]


class ScopeProblem(Exception):
    """A prison asked for that is unknown (422) or outside the caseload (404)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def report_prisons(
    session: DbSession, visible: Sequence[str] | None, requested: Iterable[str]
) -> tuple[str, ...] | None:
    """The prisons to report on: those asked for, else everything visible (None: the estate)."""
    codes = sorted({c.strip().upper() for c in requested if c.strip()})
    for code in codes:
        if len(code) > 8 or get_prison(session=session, code=code) is None:
            raise ScopeProblem(422, f"unknown prison {code[:8]!r}; see /api/v1/prisons")
        if visible is not None and code not in visible:
            raise ScopeProblem(404, f"prison {code} not found")
    if codes:
        return tuple(codes)
    return tuple(visible) if visible is not None else None


def _resolve(
    session: DbSession,
    principal: Principal,
    prison: list[str] | None,
    first: str | None,
    last: str | None,
) -> tuple[tuple[str, ...] | None, Period]:
    try:
        prisons = report_prisons(session, principal.scope, prison or [])
    except ScopeProblem as exc:
        if exc.status_code == 422:
            raise invalid(("query", "prison"), exc.message) from exc
        raise HTTPException(exc.status_code, exc.message) from exc
    try:
        period = parse_period(first, last, today=utcnow().date())
    except BadPeriod as exc:
        raise invalid(("query", exc.field), exc.message) from exc
    return prisons, period


def report_out(report: Report) -> FaultReportOut:
    return FaultReportOut.model_validate(
        {
            "period": {
                "first": report.period.first,
                "last": report.period.last,
                "days": report.period.days,
            },
            "prisons": list(report.prisons) if report.prisons is not None else None,
            "generated_at": report.generated_at,
            "overall": report.overall,
            "open": [vars(o) for o in report.open],
            "clearance": [vars(c) for c in report.clearance],
            "compliance": [
                {**vars(c), "respond_pct": c.respond_pct, "clear_pct": c.clear_pct}
                for c in report.compliance
            ],
            "recurring": [vars(g) for g in report.recurring],
        }
    )


@router.get(
    "/fault-reports",
    response_model=FaultReportOut,
    responses={404: {"description": "A prison asked for is outside your caseload"}},
)
def fault_report(
    session: DbSession,
    principal: Principal = require(READ),
    prison: PrisonQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
) -> FaultReportOut:
    """Open faults by prison and category, mean time to clear, SLA compliance, recurrences."""
    prisons, period = _resolve(session, principal, prison, first, last)
    report = build_report(session=session, prisons=prisons, period=period, now=utcnow())
    return report_out(report)


CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "open": ("prison_code", "category", "open_now"),
    "clearance": ("category", "cleared", "mean_hours_to_clear"),
    "compliance": (
        "category",
        "respond_met",
        "respond_missed",
        "respond_pct",
        "clear_met",
        "clear_missed",
        "clear_pct",
    ),
    "recurring": ("location", "prison_code", "category", "count", "references"),
}


def csv_rows(report: Report, section: str) -> list[list[Any]]:
    """One section of the report as rows under CSV_HEADERS[section]."""
    if section == "open":
        return [[o.prison_code, o.category, o.count] for o in report.open]
    if section == "clearance":
        return [
            [c.category, c.cleared, "" if c.mean_hours is None else round(c.mean_hours, 1)]
            for c in report.clearance
        ]
    if section == "compliance":
        return [
            [
                c.category,
                c.respond_met,
                c.respond_missed,
                "" if c.respond_pct is None else c.respond_pct,
                c.clear_met,
                c.clear_missed,
                "" if c.clear_pct is None else c.clear_pct,
            ]
            for c in report.compliance
        ]
    return [
        [g.location, g.prison_code, g.category, g.count, " ".join(g.references)]
        for g in report.recurring
    ]


def csv_response(report: Report, section: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADERS[section])
    writer.writerows(csv_rows(report, section))
    name = f"faults-{section}-{report.period.first.isoformat()}-to-{report.period.last.isoformat()}"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/fault-reports/{section}.csv", response_class=Response)
def fault_report_csv(
    section: Section,
    session: DbSession,
    principal: Principal = require(READ),
    prison: PrisonQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
) -> Response:
    """One section of the report as CSV: open, clearance, compliance or recurring."""
    prisons, period = _resolve(session, principal, prison, first, last)
    report = build_report(session=session, prisons=prisons, period=period, now=utcnow())
    return csv_response(report, section)
