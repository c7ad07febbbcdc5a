"""Rollout programmes API: programmes, prison plans and milestones."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from fleet.api.deps import DbSession, Principal, ensure_prison_visible, require
from fleet.estate.models import Prison
from fleet.rollout import service
from fleet.rollout.common import (
    READ,
    WRITE,
    AsOf,
    answer_refusal,
    judged_on,
    milestone_out,
    plan_or_404,
    plan_out,
    programme_or_404,
    programme_out,
    views_for,
)
from fleet.rollout.reports import router as reports_router
from fleet.rollout.schemas import (
    MilestoneOut,
    MilestoneUpdate,
    PlanCreate,
    PlanList,
    PlanOut,
    PlanUpdate,
    ProgrammeCreate,
    ProgrammeList,
    ProgrammeOut,
    ProgrammeUpdate,
)

router = APIRouter(tags=["rollout"])
# The reports share this router, so the app includes rollout with one line.
router.include_router(reports_router)


@router.get("/programmes", response_model=ProgrammeList)
def list_programmes(session: DbSession, principal: Principal = require(READ)) -> ProgrammeList:
    """Every programme, with how many of its prisons are in your caseload."""
    counts = service.count_plans(session=session, caseload=principal.scope)
    items = [
        programme_out(p, counts.get(p.id, 0)) for p in service.list_programmes(session=session)
    ]
    return ProgrammeList(items=items, count=len(items))


@router.post("/programmes", status_code=status.HTTP_201_CREATED, response_model=ProgrammeOut)
def create_programme(
    body: ProgrammeCreate, session: DbSession, principal: Principal = require(WRITE)
) -> ProgrammeOut:
    """Start a programme: kinds in scope, dates, enrolment threshold and go-live gate."""
    try:
        programme = service.create_programme(session=session, actor=principal.username, data=body)
    except service.Refused as exc:
        answer_refusal(exc)
    return programme_out(programme, 0)


@router.get("/programmes/{programme_id}", response_model=ProgrammeOut)
def get_programme(
    programme_id: int, session: DbSession, principal: Principal = require(READ)
) -> ProgrammeOut:
    programme = programme_or_404(session, programme_id)
    counts = service.count_plans(session=session, caseload=principal.scope)
    return programme_out(programme, counts.get(programme.id, 0))


@router.patch("/programmes/{programme_id}", response_model=ProgrammeOut)
def update_programme(
    programme_id: int,
    body: ProgrammeUpdate,
    session: DbSession,
    principal: Principal = require(WRITE),
) -> ProgrammeOut:
    """Change the fields sent; a changed template applies to prisons added afterwards."""
    programme = programme_or_404(session, programme_id)
    if principal.scope:
        codes = {
            p.prison_code for p in service.plans_of(session=session, programme_id=programme.id)
        }
        outside = sorted(codes - set(principal.scope))
        if outside:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"This programme also plans {len(outside)} prison(s) outside your caseload, "
                "whose gate and milestones would change too; ask a national manager.",
            )
    try:
        service.update_programme(
            session=session, actor=principal.username, programme=programme, data=body
        )
    except service.Refused as exc:
        answer_refusal(exc)
    counts = service.count_plans(session=session, caseload=principal.scope)
    return programme_out(programme, counts.get(programme.id, 0))


@router.delete("/programmes/{programme_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_programme(
    programme_id: int, session: DbSession, principal: Principal = require(WRITE)
) -> Response:
    """Delete a programme and all its plans; only for users without a caseload."""
    programme = programme_or_404(session, programme_id)
    if principal.scope:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Deleting a programme removes prisons outside your caseload; ask a national manager.",
        )
    service.delete_programme(session=session, actor=principal.username, programme=programme)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/programmes/{programme_id}/prisons", response_model=PlanList)
def list_plans(
    programme_id: int, session: DbSession, as_of: AsOf = None, principal: Principal = require(READ)
) -> PlanList:
    """The programme's prisons in your caseload with measured progress, gate, RAG and blockers."""
    programme = programme_or_404(session, programme_id)
    items = [plan_out(v) for v in views_for(session, principal, programme, judged_on(as_of))]
    return PlanList(items=items, count=len(items))


@router.post(
    "/programmes/{programme_id}/prisons",
    status_code=status.HTTP_201_CREATED,
    response_model=PlanOut,
)
def add_plan(
    programme_id: int, body: PlanCreate, session: DbSession, principal: Principal = require(WRITE)
) -> PlanOut:
    """Add a prison with its wave and planned go-live; milestones come from the template."""
    programme = programme_or_404(session, programme_id)
    if session.get(Prison, body.prison_code.upper()) is not None:
        ensure_prison_visible(principal, body.prison_code.upper(), "prison")
    try:
        plan = service.add_plan(
            session=session, actor=principal.username, programme=programme, data=body
        )
    except service.Refused as exc:
        answer_refusal(exc)
    return plan_out(views_for(session, principal, programme, judged_on(None), [plan])[0])


@router.get("/programmes/{programme_id}/prisons/{code}", response_model=PlanOut)
def get_plan(
    programme_id: int,
    code: str,
    session: DbSession,
    as_of: AsOf = None,
    principal: Principal = require(READ),
) -> PlanOut:
    plan = plan_or_404(session, principal, programme_id, code)
    programme = programme_or_404(session, programme_id)
    return plan_out(views_for(session, principal, programme, judged_on(as_of), [plan])[0])


@router.patch("/programmes/{programme_id}/prisons/{code}", response_model=PlanOut)
def update_plan(
    programme_id: int,
    code: str,
    body: PlanUpdate,
    session: DbSession,
    principal: Principal = require(WRITE),
) -> PlanOut:
    plan = plan_or_404(session, principal, programme_id, code)
    try:
        service.update_plan(session=session, actor=principal.username, plan=plan, data=body)
    except service.Refused as exc:
        answer_refusal(exc)
    programme = programme_or_404(session, programme_id)
    return plan_out(views_for(session, principal, programme, judged_on(None), [plan])[0])


@router.delete("/programmes/{programme_id}/prisons/{code}", status_code=status.HTTP_204_NO_CONTENT)
def remove_plan(
    programme_id: int, code: str, session: DbSession, principal: Principal = require(WRITE)
) -> Response:
    plan = plan_or_404(session, principal, programme_id, code)
    service.remove_plan(session=session, actor=principal.username, plan=plan)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/programmes/{programme_id}/prisons/{code}/milestones/{milestone_id}",
    response_model=MilestoneOut,
    responses={409: {"description": "Changed by someone else; the body names the current version"}},
)
def update_milestone(
    programme_id: int,
    code: str,
    milestone_id: int,
    body: MilestoneUpdate,
    session: DbSession,
    principal: Principal = require(WRITE),
) -> MilestoneOut:
    """Set owner, due date, done date or note; send the version you read."""
    plan = plan_or_404(session, principal, programme_id, code)
    try:
        milestone = service.update_milestone(
            session=session,
            actor=principal.username,
            plan=plan,
            milestone_id=milestone_id,
            data=body,
        )
    except service.Refused as exc:
        answer_refusal(exc)
    return milestone_out(milestone)
