"""Web pages for jobs: templates, launch with a preview, a job's live output, history, approvals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from fleet.api.deps import DbSession, Principal, get_context
from fleet.devices.schemas import DeviceKind
from fleet.jobs import queries, service, stream
from fleet.jobs.forms import FormProblem, LaunchForm, problems_of_refusal, to_launch
from fleet.jobs.models import JOB_STATUSES, JobTemplate
from fleet.jobs.pages_templates import router as template_pages
from fleet.jobs.routes import act, launch_job, retry_when_online, visible_job
from fleet.jobs.runner import artifacts_dir
from fleet.jobs.schemas import JobOut, PreviewOut
from fleet.web.shell import PagePrincipal, require_page_permission
from fleet.web.templating import CsrfChecked, make_templates, page_context

router = APIRouter(include_in_schema=False)
# First, so /jobs/templates/new is not taken for a template's id.
router.include_router(template_pages)
templates = make_templates()
KINDS = list(DeviceKind.__args__)  # type: ignore[attr-defined]
EVENTS_ON_PAGE = 1000
STATUS_TAGS = {
    "awaiting_approval": "govuk-tag--purple",
    "queued": "govuk-tag--grey",
    "running": "govuk-tag--blue",
    "baking": "govuk-tag--light-blue",
    "paused": "govuk-tag--yellow",
    "successful": "govuk-tag--green",
    "ok": "govuk-tag--green",
    "failed": "govuk-tag--red",
    "unreachable": "govuk-tag--orange",
    "cancelled": "govuk-tag--grey",
    "aborted": "govuk-tag--grey",
    "rejected": "govuk-tag--grey",
    "pending": "govuk-tag--grey",
    "skipped": "govuk-tag--grey",
}
# Which buttons a job page offers in each status: (action, label, permission, warning?).
ACTIONS = {
    "awaiting_approval": [("cancel", "Cancel job", "jobs:launch", True)],
    "queued": [("cancel", "Cancel job", "jobs:launch", True)],
    "running": [("cancel", "Cancel job", "jobs:launch", True)],
    "baking": [("abort", "Abort the remaining stages", "jobs:launch", True)],
    "paused": [
        ("resume", "Resume rollout", "jobs:launch", False),
        ("abort", "Abort the remaining stages", "jobs:launch", True),
    ],
}
PAGE_ACTIONS = ("cancel", "resume", "abort", "approve", "reject", "rerun", "retry_when_online")


def _render(request: Request, name: str, **context: Any) -> Response:
    context.setdefault("status_tags", STATUS_TAGS)
    return templates.TemplateResponse(
        request, name, page_context(request, active_nav="jobs", **context)
    )


@router.get("/jobs", response_class=HTMLResponse)
def history_page(
    request: Request, session: DbSession, principal: PagePrincipal, status_: str = ""
) -> Response:
    require_page_permission(principal, "jobs:read")
    wanted = [status_] if status_ in JOB_STATUSES else []
    jobs = queries.list_jobs(session=session, scope=principal.scope, status=wanted, limit=100)
    waiting = queries.awaiting_approval(session=session, scope=principal.scope)
    return _render(
        request,
        "jobs/history.html",
        page_title="Jobs",
        principal=principal,
        jobs=jobs,
        waiting=len(waiting),
        statuses=JOB_STATUSES,
        chosen_status=status_ if wanted else "",
    )


@router.get("/jobs/templates", response_class=HTMLResponse)
def templates_page(
    request: Request, session: DbSession, principal: PagePrincipal, saved: int | None = None
) -> Response:
    require_page_permission(principal, "jobs:read")
    job_templates = service.list_templates(session=session)
    return _render(
        request,
        "jobs/templates.html",
        page_title="Job templates",
        principal=principal,
        job_templates=job_templates,
        saved=next((t for t in job_templates if t.id == saved), None),
        can_manage=principal.can("jobs:templates"),
    )


def _template(session: DbSession, template_id: int) -> JobTemplate:
    template = session.get(JobTemplate, template_id)
    if template is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return template


def _launch_page(
    request: Request,
    principal: Any,
    template: JobTemplate,
    form: LaunchForm,
    *,
    errors: list[dict[str, str]] | None = None,
    preview: PreviewOut | None = None,
) -> Response:
    response = _render(
        request,
        "jobs/launch.html",
        page_title=("Error: " if errors else "") + f"Launch {template.name}",
        principal=principal,
        template=template,
        form=form,
        kinds=KINDS,
        errors=errors or [],
        error_fields={e["href"].lstrip("#") for e in errors or []},
        preview=preview,
        can_launch=principal.can("jobs:launch"),
        can_manage=principal.can("jobs:templates"),
    )
    if errors:
        response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    return response


@router.get("/jobs/templates/{template_id}", response_class=HTMLResponse)
def launch_page(
    template_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    require_page_permission(principal, "jobs:read")
    template = _template(session, template_id)
    return _launch_page(request, principal, template, LaunchForm.of_template(template))


@router.post("/jobs/templates/{template_id}", response_class=HTMLResponse)
async def launch_submit(
    template_id: int,
    request: Request,
    session: DbSession,
    principal: PagePrincipal,
    _csrf: None = CsrfChecked,
) -> Response:
    """Preview the targets, or launch and go to the job's page."""
    require_page_permission(principal, "jobs:launch")
    submitted = await request.form()
    return await run_in_threadpool(
        _launch_submit, template_id, request, session, principal, submitted
    )


def _launch_submit(
    template_id: int,
    request: Request,
    session: Session,
    principal: Principal,
    submitted: FormData,
) -> Response:
    template = _template(session, template_id)
    form = LaunchForm.of_form(submitted)
    preview = submitted.get("action") != "launch"
    try:
        result = launch_job(request, principal, to_launch(template_id, form, preview))
    except FormProblem as exc:
        return _launch_page(request, principal, template, form, errors=exc.errors)
    except RequestValidationError as exc:
        return _launch_page(request, principal, template, form, errors=problems_of_refusal(exc))
    if isinstance(result, JobOut):
        return RedirectResponse(f"/jobs/{result.id}", status.HTTP_303_SEE_OTHER)
    return _launch_page(request, principal, template, form, preview=result)


@router.get("/jobs/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "jobs:approve")
    return _render(
        request,
        "jobs/approvals.html",
        page_title="Jobs awaiting approval",
        principal=principal,
        jobs=queries.awaiting_approval(session=session, scope=principal.scope),
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    require_page_permission(principal, "jobs:read")
    job = visible_job(session, principal, job_id)
    events = queries.events_of(session=session, job_id=job_id, limit=EVENTS_ON_PAGE)
    actions = [a for a in ACTIONS.get(job.status, []) if principal.can(a[2])]
    return _render(
        request,
        "jobs/job.html",
        page_title=f"Job {job.id}: {job.name}",
        principal=principal,
        job=queries.job_out(session=session, job=job),
        hosts=queries.hosts_of(session=session, job_id=job_id),
        artifacts=queries.artifacts_of(artifacts_dir(get_context(request).settings, job_id)),
        events=events,
        last_event_id=events[-1].id if events else 0,
        more_events=len(events) == EVENTS_ON_PAGE,
        actions=actions,
        can_launch=principal.can("jobs:launch"),
        can_approve=principal.can("jobs:approve") and principal.username != job.launched_by,
    )


@router.post("/jobs/{job_id}/actions/{action}")
async def job_action(
    job_id: int,
    action: str,
    request: Request,
    principal: PagePrincipal,
    _csrf: None = CsrfChecked,
) -> Response:
    """The job page's buttons; every outcome (or refusal) is shown back on the job page."""
    if action not in PAGE_ACTIONS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    needed = "jobs:approve" if action in ("approve", "reject") else "jobs:launch"
    require_page_permission(principal, needed)
    form = await request.form()
    kwargs: dict[str, Any] = {}
    if action == "reject":
        kwargs["reason"] = str(form.get("reason") or "")[:500]
    if action == "rerun":
        kwargs["which"] = "failed_and_unreachable"
    if action == "retry_when_online":
        await run_in_threadpool(retry_when_online, job_id, request, principal)
        return RedirectResponse(f"/jobs/{job_id}", status.HTTP_303_SEE_OTHER)
    out = await run_in_threadpool(act, request, principal, job_id, action, **kwargs)
    return RedirectResponse(f"/jobs/{out.id}", status.HTTP_303_SEE_OTHER)


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
def job_output_stream(
    job_id: int,
    request: Request,
    session: DbSession,
    principal: PagePrincipal,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """The job's output as Server-Sent Events until the job ends; resumes at Last-Event-ID."""
    require_page_permission(principal, "jobs:read")
    visible_job(session, principal, job_id)
    events = stream.job_events(
        request,
        get_context(request).sessions,
        job_id,
        stream.resume_from(last_event_id, after),
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
