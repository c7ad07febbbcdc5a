"""Shared pieces of the rollout API: lookups that answer 404, refusals, plan rendering."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, NoReturn

from fastapi import HTTPException, Query, status

from fleet.api.deps import DbSession, Principal, ensure_prison_visible
from fleet.api.errors import invalid
from fleet.db import utcnow
from fleet.rollout import service
from fleet.rollout.models import Milestone, PrisonPlan, Programme
from fleet.rollout.overview import PlanView, plan_views
from fleet.rollout.schemas import (
    EARLIEST,
    LATEST,
    BlockerOut,
    DayShareOut,
    GateOut,
    MilestoneOut,
    PlanOut,
    ProgrammeOut,
    ProgressOut,
    TemplateItem,
)

READ = "rollout:read"
WRITE = "rollout:write"
AsOf = Annotated[
    date | None,
    Query(ge=EARLIEST, le=LATEST, description="Judge the gate and RAG as of this day"),
]
SINCE = re.compile(r"^(\d{1,3})d$")
# A whole programme's overview may show device counts this old (one plan's are always fresh).
OVERVIEW_COUNTS_MAX_AGE_S = 30.0


def answer_refusal(exc: service.Refused) -> NoReturn:
    """422 naming the field to fix; other statuses carry the reason (and current version)."""
    if exc.status == 422:
        raise invalid(("body", exc.field) if exc.field else ("body",), exc.message) from exc
    detail: object = {"message": exc.message, **exc.extra} if exc.extra else exc.message
    raise HTTPException(exc.status, detail) from exc


def judged_on(as_of: date | None) -> date:
    return as_of or utcnow().date()


def programme_or_404(session: DbSession, programme_id: int) -> Programme:
    programme = service.get_programme(session=session, programme_id=programme_id)
    if programme is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "programme not found")
    return programme


def plan_or_404(
    session: DbSession, principal: Principal, programme_id: int, code: str
) -> PrisonPlan:
    programme_or_404(session, programme_id)
    plan = service.get_plan(session=session, programme_id=programme_id, prison_code=code)
    if plan is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "prison plan not found")
    ensure_prison_visible(principal, plan.prison_code, "prison plan")
    return plan


def programme_out(programme: Programme, prisons: int) -> ProgrammeOut:
    return ProgrammeOut(
        id=programme.id,
        name=programme.name,
        description=programme.description,
        owner=programme.owner,
        device_kinds=programme.device_kinds,
        devices_per_cell=programme.devices_per_cell,
        start_date=programme.start_date,
        target_date=programme.target_date,
        enrolment_threshold_pct=programme.enrolment_threshold_pct,
        gate_online_pct=programme.gate_online_pct,
        gate_days=programme.gate_days,
        milestone_template=[TemplateItem(**item) for item in programme.milestone_template],
        prisons=prisons,
    )


def milestone_out(
    m: Milestone, view: PlanView | None = None, today: date | None = None
) -> MilestoneOut:
    day = view.today if view else (today or utcnow().date())
    return MilestoneOut(
        id=m.id,
        key=m.key,
        name=m.name,
        owner=m.owner,
        due_date=m.due_date,
        done_date=m.done_date,
        done_by=m.done_by,
        note=m.note,
        version=m.version,
        overdue=m.done_date is None and m.due_date is not None and m.due_date < day,
    )


def plan_out(view: PlanView) -> PlanOut:
    shares = [DayShareOut(day=s.day, online_pct=s.share_pct) for s in view.shares_14d]
    nxt = view.next_milestone
    return PlanOut(
        id=view.plan.id,
        programme_id=view.plan.programme_id,
        prison_code=view.plan.prison_code,
        prison_name=view.prison_name,
        wave=view.plan.wave,
        planned_go_live=view.plan.planned_go_live,
        forecast_go_live=view.forecast,
        progress=ProgressOut(
            expected=view.expected,
            expected_source=view.expected_source,  # type: ignore[arg-type]
            enrolled=view.counts.enrolled,
            online_now=view.counts.online,
            healthy_now=view.counts.healthy,
            counted_at=view.counted_at,
            enrolled_pct=view.enrolled_pct,
            online_pct_now=view.online_pct_now,
            online_last_7_days=shares[-7:],
            online_last_14_days=shares,
        ),
        gate=GateOut(**vars(view.gate)),
        rag=view.rag.status,  # type: ignore[arg-type]
        rag_reasons=view.rag.reasons,
        blockers=[BlockerOut(**vars(b)) for b in view.blockers],
        next_milestone=milestone_out(nxt, view) if nxt else None,
        milestones=[milestone_out(m, view) for m in view.milestones],
    )


def views_for(
    session: DbSession,
    principal: Principal,
    programme: Programme,
    today: date,
    plans: list[PrisonPlan] | None = None,
) -> list[PlanView]:
    max_age = 0.0
    if plans is None:
        plans = service.plans_of(
            session=session, programme_id=programme.id, caseload=principal.scope
        )
        max_age = OVERVIEW_COUNTS_MAX_AGE_S
    return plan_views(
        session=session, programme=programme, plans=plans, today=today, counts_max_age_s=max_age
    )
