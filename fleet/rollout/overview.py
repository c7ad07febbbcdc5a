"""Each prison plan with its measured progress, gate, forecast, RAG and blockers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.estate.models import Prison
from fleet.rollout import counts as counting
from fleet.rollout import measure
from fleet.rollout.blockers import (
    DEFAULT_SOURCES,
    Blocker,
    BlockerSource,
    external_blockers,
    milestone_blockers,
    overdue_milestones,
)
from fleet.rollout.models import Milestone, PrisonPlan, Programme
from fleet.rollout.service import milestones_of

HISTORY_DAYS = 14


@dataclass
class PlanView:
    plan: PrisonPlan
    prison_name: str
    expected: int
    expected_source: str
    counts: counting.LiveCounts
    shares_14d: list[measure.DayShare]
    gate: measure.Gate
    forecast: date | None
    rag: measure.Rag
    blockers: list[Blocker]
    milestones: list[Milestone]
    today: date
    counted_at: datetime  # when enrolled/online/healthy now were counted

    @property
    def enrolled_pct(self) -> float:
        return measure.share_pct(self.counts.enrolled, self.expected)

    @property
    def online_pct_now(self) -> float:
        return measure.share_pct(self.counts.online, self.expected)

    @property
    def next_milestone(self) -> Milestone | None:
        return next((m for m in self.milestones if m.done_date is None), None)

    def overdue(self, milestone: Milestone) -> bool:
        return milestone in overdue_milestones([milestone], self.today)


def plan_views(
    *,
    session: Session,
    programme: Programme,
    plans: Sequence[PrisonPlan],
    today: date,
    sources: Sequence[BlockerSource] = DEFAULT_SOURCES,
    counts_max_age_s: float = 0,
) -> list[PlanView]:
    """Everything the overview shows, computed for all plans in a few grouped queries.

    With `counts_max_age_s`, device counts up to that old are reused (see EstateCounts).
    """
    codes = [p.prison_code for p in plans]
    ids = [p.id for p in plans]
    names = dict(
        session.execute(select(Prison.code, Prison.name).where(Prison.code.in_(codes))).all()
    )
    counted = counting.counts_for(
        session=session,
        prison_codes=codes,
        kinds=programme.device_kinds,
        max_age_s=counts_max_age_s,
    )
    cells, counts = counted.cells, counted.live
    history = measure.snapshots_for(
        session=session,
        plan_ids=ids,
        since=today - timedelta(days=max(measure.TREND_WINDOW_DAYS, programme.gate_days) + 1),
        until=today,
    )
    milestones = milestones_of(session=session, plan_ids=ids)
    faults = external_blockers(session=session, prison_codes=codes, sources=sources)
    views = []
    for plan in plans:
        expected, source = measure.expected_devices(plan, programme, cells.get(plan.prison_code, 0))
        live = counts.get(plan.prison_code, counting.LiveCounts())
        snaps = history[plan.id]
        gate = measure.gate(snaps, programme, today)
        forecast = measure.forecast_go_live(snaps, expected)
        blockers = milestone_blockers(milestones[plan.id], today) + faults.get(plan.prison_code, [])
        rag = measure.rag(
            planned=plan.planned_go_live,
            forecast=forecast,
            live=gate.live,
            enrolled=live.enrolled,
            expected=expected,
            online_pct_now=measure.share_pct(live.online, expected),
            gate_pct=programme.gate_online_pct,
            overdue=[m.name for m in overdue_milestones(milestones[plan.id], today)],
            blockers=[b.title for b in blockers if b.kind != "milestone"],
            today=today,
            dark=counted.dark.get(plan.prison_code, []),
        )
        views.append(
            PlanView(
                plan=plan,
                prison_name=names.get(plan.prison_code, plan.prison_code),
                expected=expected,
                expected_source=source,
                counts=live,
                shares_14d=measure.daily_shares(snaps, today, HISTORY_DAYS),
                gate=gate,
                forecast=forecast,
                rag=rag,
                blockers=blockers,
                milestones=milestones[plan.id],
                today=today,
                counted_at=counted.counted_at,
            )
        )
    return views
