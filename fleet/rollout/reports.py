"""Rollout reports: the burn-up, what changed since a day, and the overview as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from fleet.api.deps import DbSession, Principal, require
from fleet.api.errors import invalid
from fleet.rollout import history, service
from fleet.rollout.common import (
    READ,
    SINCE,
    AsOf,
    judged_on,
    programme_or_404,
    views_for,
)
from fleet.rollout.schemas import (
    Burnup,
    BurnupDay,
    ChangeList,
    PlanChange,
)
from fleet.web.csv_safety import spreadsheet_safe

router = APIRouter(tags=["rollout"])


@router.get("/programmes/{programme_id}/burnup", response_model=Burnup)
def burnup(
    programme_id: int, session: DbSession, until: AsOf = None, principal: Principal = require(READ)
) -> Burnup:
    """Per day: prisons live against planned-live by then, devices enrolled against expected."""
    programme = programme_or_404(session, programme_id)
    plans = service.plans_of(session=session, programme_id=programme.id, caseload=principal.scope)
    points = history.burnup(
        session=session, programme=programme, plans=plans, until=judged_on(until)
    )
    return Burnup(programme_id=programme.id, days=[BurnupDay(**vars(p)) for p in points])


@router.get("/programmes/{programme_id}/changes", response_model=ChangeList)
def changes(
    programme_id: int,
    session: DbSession,
    since: Annotated[str, Query(description="How far back, in days, e.g. 7d")] = "7d",
    as_of: AsOf = None,
    principal: Principal = require(READ),
) -> ChangeList:
    """What changed per prison since N days ago, from the daily snapshots."""
    match = SINCE.match(since.strip())
    if match is None:
        raise invalid(("query", "since"), f"{since!r} is not a number of days such as 7d")
    programme = programme_or_404(session, programme_id)
    today = judged_on(as_of)
    start = today - timedelta(days=int(match.group(1)))
    plans = service.plans_of(session=session, programme_id=programme.id, caseload=principal.scope)
    found = history.changes_since(
        session=session, programme=programme, plans=plans, since=start, today=today
    )
    items = [
        PlanChange(
            prison_code=c.plan.prison_code,
            since=c.since,
            enrolled_then=c.then.enrolled if c.then else None,
            enrolled_now=c.now.enrolled if c.now else 0,
            online_then=c.then.online if c.then else None,
            online_now=c.now.online if c.now else 0,
            expected_then=c.then.expected if c.then else None,
            expected_now=c.now.expected if c.now else 0,
            live_then=c.live_then,
            live_now=c.live_now,
            milestones_completed=c.milestones_completed,
        )
        for c in found
    ]
    return ChangeList(programme_id=programme.id, since=start, items=items)


CSV_COLUMNS = (
    "prison_code",
    "prison_name",
    "wave",
    "planned_go_live",
    "forecast_go_live",
    "rag",
    "live",
    "expected",
    "enrolled",
    "online_now",
    "healthy_now",
    "enrolled_pct",
    "next_milestone",
    "next_milestone_due",
    "blockers",
    "rag_reasons",
)


@router.get("/programmes/{programme_id}/prisons.csv", response_class=Response)
def export_csv(
    programme_id: int, session: DbSession, as_of: AsOf = None, principal: Principal = require(READ)
) -> Response:
    """The programme overview as CSV, one row per prison in your caseload."""
    programme = programme_or_404(session, programme_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for view in views_for(session, principal, programme, judged_on(as_of)):
        nxt = view.next_milestone
        # Milestone names, blocker titles and reasons are typed by people: keep them text.
        writer.writerow(
            spreadsheet_safe(cell)
            for cell in [
                view.plan.prison_code,
                view.prison_name,
                view.plan.wave,
                view.plan.planned_go_live.isoformat(),
                view.forecast.isoformat() if view.forecast else "",
                view.rag.status,
                "yes" if view.gate.live else "no",
                view.expected,
                view.counts.enrolled,
                view.counts.online,
                view.counts.healthy,
                view.enrolled_pct,
                nxt.name if nxt else "",
                nxt.due_date.isoformat() if nxt and nxt.due_date else "",
                "; ".join(b.title for b in view.blockers),
                "; ".join(view.rag.reasons),
            ]
        )
    filename = f"programme-{programme.id}-prisons.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
