"""Web pages for rollout: programmes, the programme overview, a prison's rollout, milestones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleet.api.deps import DbSession, Principal
from fleet.db import utcnow
from fleet.estate.pages import places_in_prison
from fleet.rollout import history, service
from fleet.rollout.burnup_cache import RECENT_BURNUPS
from fleet.rollout.common import OVERVIEW_COUNTS_MAX_AGE_S, READ, WRITE
from fleet.rollout.models import PrisonPlan, Programme
from fleet.rollout.overview import PlanView, plan_views
from fleet.rollout.schemas import EARLIEST, LATEST, MilestoneUpdate
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import CsrfChecked, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
RAG_ORDER = {"red": 0, "amber": 1, "green": 2}
SORTS = {
    "prison": lambda v: v.plan.prison_code,
    "wave": lambda v: (v.plan.wave, v.plan.prison_code),
    "rag": lambda v: (RAG_ORDER[v.rag.status], v.plan.prison_code),
    "enrolled": lambda v: (v.enrolled_pct, v.plan.prison_code),
    "planned": lambda v: (v.plan.planned_go_live, v.plan.prison_code),
    "forecast": lambda v: (v.forecast or date.max, v.plan.prison_code),
}
CHART_WIDTH, CHART_HEIGHT = 600, 200
PAGE_BURNUP_DAYS = 90


def _programme(session: DbSession, programme_id: int) -> Programme:
    programme = service.get_programme(session=session, programme_id=programme_id)
    if programme is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return programme


def _visible_plan(
    request: Request, session: DbSession, principal: Principal, programme_id: int, code: str
) -> PrisonPlan:
    plan = service.get_plan(session=session, programme_id=programme_id, prison_code=code)
    scope = page_scope(request, principal)
    # Outside the caseload reads as not found, so a plan's existence does not leak.
    if plan is None or (scope is not None and plan.prison_code not in scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return plan


@router.get("/rollout", response_class=HTMLResponse)
def programmes_page(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, READ)
    counts = service.count_plans(session=session, caseload=page_scope(request, principal))
    return templates.TemplateResponse(
        request,
        "rollout/programmes.html",
        page_context(
            request,
            page_title="Rollout programmes",
            principal=principal,
            active_nav="rollout",
            programmes=service.list_programmes(session=session),
            counts=counts,
        ),
    )


@dataclass(frozen=True)
class Chart:
    """A burn-up drawn as SVG polylines (attributes only, so the CSP allows it)."""

    enrolled: str
    expected: str
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def _chart(points: list[history.BurnupPoint]) -> Chart | None:
    if len(points) < 2:
        return None
    top = max(max(p.devices_expected, p.devices_enrolled) for p in points) or 1
    step = CHART_WIDTH / (len(points) - 1)

    def line(values: list[int]) -> str:
        return " ".join(
            f"{i * step:.1f},{CHART_HEIGHT - CHART_HEIGHT * v / top:.1f}"
            for i, v in enumerate(values)
        )

    return Chart(
        enrolled=line([p.devices_enrolled for p in points]),
        expected=line([p.devices_expected for p in points]),
    )


@router.get("/rollout/{programme_id}", response_class=HTMLResponse)
def overview_page(
    programme_id: int,
    request: Request,
    session: DbSession,
    principal: PagePrincipal,
    sort: str = "wave",
    order: str = "asc",
    rag: str = "",
    wave: str = "",
) -> Response:
    """Every prison in the programme: progress, RAG, next milestone, planned vs forecast."""
    require_page_permission(principal, READ)
    programme = _programme(session, programme_id)
    today = utcnow().date()
    plans = service.plans_of(
        session=session, programme_id=programme.id, caseload=page_scope(request, principal)
    )
    views = plan_views(
        session=session,
        programme=programme,
        plans=plans,
        today=today,
        counts_max_age_s=OVERVIEW_COUNTS_MAX_AGE_S,
    )
    waves = sorted({v.plan.wave for v in views})
    shown = [
        v
        for v in views
        if (not rag or v.rag.status == rag) and (not wave or str(v.plan.wave) == wave)
    ]
    sort = sort if sort in SORTS else "wave"
    order = "desc" if order == "desc" else "asc"
    shown.sort(key=SORTS[sort], reverse=order == "desc")
    recent = RECENT_BURNUPS.get(
        session=session, programme=programme, plans=plans, until=today, days=PAGE_BURNUP_DAYS
    )
    return templates.TemplateResponse(
        request,
        "rollout/overview.html",
        page_context(
            request,
            page_title=programme.name,
            principal=principal,
            active_nav="rollout",
            programme=programme,
            views=shown,
            total=len(views),
            waves=waves,
            query={"sort": sort, "order": order, "rag": rag, "wave": wave},
            burnup=recent,
            chart=_chart(recent),
            counted_at=views[0].counted_at if views else None,
        ),
    )


def _prison_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    programme: Programme,
    plan: PrisonPlan,
    problem: str = "",
    status_code: int = 200,
    typed: TypedMilestone | None = None,
) -> Response:
    view: PlanView = plan_views(
        session=session, programme=programme, plans=[plan], today=utcnow().date()
    )[0]
    wings, _ = places_in_prison(session=session, prison_code=plan.prison_code)
    return templates.TemplateResponse(
        request,
        "rollout/prison.html",
        page_context(
            request,
            page_title=f"{view.prison_name} rollout",
            principal=principal,
            active_nav="rollout",
            programme=programme,
            view=view,
            wings=wings,
            can_edit=principal.can(WRITE),
            problem=problem,
            typed=typed,
        ),
        status_code=status_code,
    )


@router.get("/rollout/{programme_id}/prisons/{code}", response_class=HTMLResponse)
def prison_page(
    programme_id: int, code: str, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    """One prison's checklist, measured progress, devices by wing, blockers and history."""
    require_page_permission(principal, READ)
    programme = _programme(session, programme_id)
    plan = _visible_plan(request, session, principal, programme.id, code)
    return _prison_page(request, session, principal, programme, plan)


@dataclass(frozen=True)
class TypedMilestone:
    """What a person typed into one milestone row, re-shown when it cannot be saved."""

    milestone_id: int
    values: dict[str, str]
    field: str  # the input to fix, e.g. "due_date"


class MilestoneFormError(ValueError):
    """A milestone form that cannot be read; `typed` holds what to show again."""

    def __init__(self, message: str, typed: TypedMilestone) -> None:
        super().__init__(message)
        self.typed = typed


def _form_date(raw: str, name: str) -> date | None:
    if not raw:
        return None
    label = name.replace("_", " ")
    try:
        value = date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"The {label} {raw!r} is not a date like 2026-07-31") from exc
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"The {label} must lie between {EARLIEST} and {LATEST}")
    return value


def _milestone_form(milestone_id: int, form: Any) -> MilestoneUpdate:
    """The edit as typed; ValueError names the first field that cannot be read."""
    typed = {
        name: str(form.get(name) or "").strip()
        for name in ("owner", "note", "due_date", "done_date", "version")
    }
    dates: dict[str, date | None] = {}
    for name in ("due_date", "done_date"):
        try:
            dates[name] = _form_date(typed[name], name)
        except ValueError as exc:
            raise MilestoneFormError(str(exc), TypedMilestone(milestone_id, typed, name)) from exc
    if len(typed["owner"]) > 200 or len(typed["note"]) > 4000:
        name = "owner" if len(typed["owner"]) > 200 else "note"
        limit = 200 if name == "owner" else 4000
        raise MilestoneFormError(
            f"The {name} must be {limit} characters or fewer",
            TypedMilestone(milestone_id, typed, name),
        )
    # A missing or mangled version reads as the first, so the stale-edit check refuses it.
    version = int(typed["version"]) if typed["version"].isdigit() else 1
    return MilestoneUpdate(
        version=max(1, min(version, 2**31 - 1)), owner=typed["owner"], note=typed["note"], **dates
    )


@router.post(
    "/rollout/{programme_id}/prisons/{code}/milestones/{milestone_id}",
    dependencies=[CsrfChecked],
)
async def edit_milestone(
    programme_id: int,
    code: str,
    milestone_id: int,
    request: Request,
    session: DbSession,
    principal: PagePrincipal,
) -> Response:
    """Save a milestone from the prison page; a stale version re-shows the page with a 409."""
    require_page_permission(principal, WRITE)
    programme = _programme(session, programme_id)
    plan = _visible_plan(request, session, principal, programme.id, code)
    form = await request.form()
    try:
        data = _milestone_form(milestone_id, form)
    except MilestoneFormError as exc:
        return _prison_page(
            request, session, principal, programme, plan, str(exc), 422, typed=exc.typed
        )
    try:
        service.update_milestone(
            session=session,
            actor=principal.username,
            plan=plan,
            milestone_id=milestone_id,
            data=data,
        )
    except service.Refused as exc:
        if exc.status == 404:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found") from exc
        return _prison_page(request, session, principal, programme, plan, exc.message, exc.status)
    return RedirectResponse(
        f"/rollout/{programme.id}/prisons/{plan.prison_code}#milestone-{milestone_id}",
        status_code=status.HTTP_303_SEE_OTHER,
    )
