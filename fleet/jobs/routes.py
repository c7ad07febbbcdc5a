"""Job templates and jobs: launch with a preview, follow, cancel, approve, resume, rerun."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse

from fleet.api.deps import DbSession, Principal, get_context, require
from fleet.api.errors import invalid
from fleet.api.pagination import BAD_CURSOR, decode_cursor, encode_cursor
from fleet.db import transaction, utcnow
from fleet.jobs import lifecycle, queries, service
from fleet.jobs.dispatch import JobDispatcher
from fleet.jobs.inventory import InventoryUnavailable
from fleet.jobs.models import JOB_STATUSES, Job, JobTemplate
from fleet.jobs.runner import artifacts_dir
from fleet.jobs.schemas import (
    ArtifactListOut,
    DecisionIn,
    EventListOut,
    HostListOut,
    JobListOut,
    JobOut,
    LaunchIn,
    PreviewOut,
    RerunIn,
    StageOut,
    TargetOut,
    TemplateIn,
    TemplateListOut,
    TemplateOut,
)
from fleet.jobs.targets import SelectorRefused

router = APIRouter(tags=["jobs"])
PREVIEW_TARGETS = 200


def job_dispatcher(request: Request) -> JobDispatcher:
    """The app's dispatcher, created on first use (closed by the app at shutdown)."""
    dispatcher: JobDispatcher | None = getattr(request.app.state, "job_dispatcher", None)
    if dispatcher is None:
        dispatcher = request.app.state.job_dispatcher = JobDispatcher(get_context(request))
    return dispatcher


def refusal(exc: Exception) -> HTTPException | RequestValidationError:
    """The HTTP answer for a refused job request."""
    if isinstance(exc, SelectorRefused):
        return invalid(("body", *exc.field.split(".")), exc.message)
    if isinstance(exc, InventoryUnavailable):
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))
    assert isinstance(exc, service.JobRefused)
    if exc.status == 422:
        return invalid(("body", *(exc.field or "body").split(".")), exc.message)
    return HTTPException(exc.status, exc.message)


def _template(session: DbSession, template_id: int) -> JobTemplate:
    template = session.get(JobTemplate, template_id)
    if template is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "job template not found")
    return template


def visible_job(session: DbSession, principal: Principal, job_id: int, lock: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=lock)
    # Outside the caseload reads as not found, so a job's existence does not leak.
    if job is None or not service.job_visible(job, principal.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "job not found")
    return job


@router.get("/job-templates", response_model=TemplateListOut)
def list_templates(session: DbSession, principal: Principal = require("jobs:read")) -> Any:
    """Every job template, by name."""
    return {"items": service.list_templates(session=session)}


@router.post("/job-templates", status_code=status.HTTP_201_CREATED, response_model=TemplateOut)
def create_template(
    body: TemplateIn, session: DbSession, principal: Principal = require("jobs:templates")
) -> Any:
    """A playbook from playbooks/ with its selector, variables, schema and options."""
    try:
        return service.create_template(
            session=session, actor=principal.username, data=body, now=utcnow()
        )
    except service.JobRefused as exc:
        raise refusal(exc) from exc


@router.get("/job-templates/{template_id}", response_model=TemplateOut)
def get_template(
    template_id: int, session: DbSession, principal: Principal = require("jobs:read")
) -> Any:
    return _template(session, template_id)


@router.put("/job-templates/{template_id}", response_model=TemplateOut)
def update_template(
    template_id: int,
    body: TemplateIn,
    session: DbSession,
    principal: Principal = require("jobs:templates"),
) -> Any:
    template = _template(session, template_id)
    try:
        return service.update_template(
            session=session, actor=principal.username, template=template, data=body, now=utcnow()
        )
    except service.JobRefused as exc:
        raise refusal(exc) from exc


def preview_of(plan: service.Plan) -> PreviewOut:
    return PreviewOut(
        matched=len(plan.targets),
        prisons=plan.prisons,
        estate_wide=plan.estate_wide,
        needs_approval=plan.estate_wide,
        stages=[
            StageOut(
                position=i,
                label=s.label,
                devices=len(s.device_ids),
                status="pending",
                started_at=None,
                finished_at=None,
            )
            for i, s in enumerate(plan.stages)
        ],
        targets=[TargetOut(**t.__dict__) for t in plan.targets[:PREVIEW_TARGETS]],
    )


def launch_job(request: Request, principal: Principal, body: LaunchIn) -> PreviewOut | JobOut:
    """Check, then preview or create (and start) the job; shared by the API and the pages."""
    ctx = get_context(request)
    try:
        with transaction(ctx.sessions) as session:
            template = _template(session, body.template_id)
            plan = service.plan_launch(
                session=session, template=template, body=body, scope=principal.scope
            )
            if body.preview:
                return preview_of(plan)
            job = service.launch(session=session, actor=principal.username, plan=plan, now=utcnow())
            out = queries.job_out(session=session, job=job)
    except (service.JobRefused, SelectorRefused, InventoryUnavailable) as exc:
        raise refusal(exc) from exc
    if out.status == "queued":
        job_dispatcher(request).start(out.id)
    return out


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut | PreviewOut,
    responses={
        404: {"description": "There is no job template with that id"},
        503: {"description": "The device inventory cannot be read just now; try again shortly"},
    },
)
def create_job(
    body: LaunchIn, request: Request, principal: Principal = require("jobs:launch")
) -> Any:
    """Launch a template (with `preview: true`, only show the targets and stages).

    An estate-wide job, or one over 500 devices, waits for a second person's approval."""
    return launch_job(request, principal, body)


@router.get("/jobs", response_model=JobListOut)
def list_jobs(
    session: DbSession,
    principal: Principal = require("jobs:read"),
    status_: Annotated[list[str], Query(alias="status")] = [],  # noqa: B006
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """Job history, newest first, within your caseload."""
    for value in status_:
        if value not in JOB_STATUSES:
            raise invalid(("query", "status"), f"must be one of {', '.join(JOB_STATUSES)}")
    before = decode_cursor(cursor, 1)[0] if cursor else None
    if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
        raise invalid(("query", "cursor"), BAD_CURSOR)
    jobs = queries.list_jobs(
        session=session, scope=principal.scope, status=status_, before_id=before, limit=limit
    )
    items = [queries.job_out(session=session, job=j, detail=False) for j in jobs]
    more = len(jobs) == limit
    return {"items": items, "next_cursor": encode_cursor([jobs[-1].id]) if more else None}


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: int, session: DbSession, principal: Principal = require("jobs:read")) -> Any:
    return queries.job_out(session=session, job=visible_job(session, principal, job_id))


@router.get("/jobs/{job_id}/hosts", response_model=HostListOut)
def job_hosts(
    job_id: int,
    session: DbSession,
    principal: Principal = require("jobs:read"),
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
) -> Any:
    """What each device did."""
    visible_job(session, principal, job_id)
    return {"items": queries.hosts_of(session=session, job_id=job_id, status=status_)}


@router.get("/jobs/{job_id}/events", response_model=EventListOut)
def job_events(
    job_id: int,
    session: DbSession,
    principal: Principal = require("jobs:read"),
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Any:
    """The run's output as events; poll with `after` set to the last id seen."""
    job = visible_job(session, principal, job_id)
    items = queries.events_of(session=session, job_id=job_id, after_id=after, limit=limit)
    return {"items": items, "last_id": items[-1].id if items else after, "status": job.status}


def act(request: Request, principal: Principal, job_id: int, action: str, **kwargs: Any) -> JobOut:
    """Apply one lifecycle action under a row lock; start the job again when it is due."""
    ctx = get_context(request)
    try:
        with transaction(ctx.sessions) as session:
            job = visible_job(session, principal, job_id, lock=True)
            result = getattr(lifecycle, action)(
                session=session, actor=principal.username, job=job, now=utcnow(), **kwargs
            )
            target = result if isinstance(result, Job) else job
            session.flush()
            out = queries.job_out(session=session, job=target)
    except service.JobRefused as exc:
        raise refusal(exc) from exc
    if out.status == "queued":
        job_dispatcher(request).start(out.id)
    return out


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactListOut)
def job_artifacts(
    job_id: int, request: Request, session: DbSession, principal: Principal = require("jobs:read")
) -> Any:
    """Files the job fetched from devices (for example collected logs)."""
    visible_job(session, principal, job_id)
    folder = artifacts_dir(get_context(request).settings, job_id)
    return {"items": queries.artifacts_of(folder)}


@router.get(
    "/jobs/{job_id}/artifacts/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def job_artifact(
    job_id: int,
    path: str,
    request: Request,
    session: DbSession,
    principal: Principal = require("jobs:read"),
) -> FileResponse:
    """One fetched file, as a download."""
    visible_job(session, principal, job_id)
    found = queries.artifact_file(artifacts_dir(get_context(request).settings, job_id), path)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "artifact not found")
    return FileResponse(found, filename=found.name, media_type="application/octet-stream")


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses={409: {"description": "The job has already ended"}},
)
def cancel_job(job_id: int, request: Request, principal: Principal = require("jobs:launch")) -> Any:
    """Stop the job: a running stage is stopped and its devices told to stop."""
    return act(request, principal, job_id, "cancel")


@router.post(
    "/jobs/{job_id}/approve",
    response_model=JobOut,
    responses={409: {"description": "The job is not awaiting approval"}},
)
def approve_job(
    job_id: int, request: Request, principal: Principal = require("jobs:approve")
) -> Any:
    """The second person's approval of an estate-wide job; it then starts."""
    return act(request, principal, job_id, "approve")


@router.post(
    "/jobs/{job_id}/reject",
    response_model=JobOut,
    responses={409: {"description": "The job is not awaiting approval"}},
)
def reject_job(
    job_id: int, body: DecisionIn, request: Request, principal: Principal = require("jobs:approve")
) -> Any:
    return act(request, principal, job_id, "reject", reason=body.reason)


@router.post(
    "/jobs/{job_id}/resume",
    response_model=JobOut,
    responses={409: {"description": "Only a paused rollout resumes"}},
)
def resume_job(job_id: int, request: Request, principal: Principal = require("jobs:launch")) -> Any:
    """Carry on a rollout that paused at its failure threshold."""
    return act(request, principal, job_id, "resume")


@router.post(
    "/jobs/{job_id}/abort",
    response_model=JobOut,
    responses={409: {"description": "Only a paused or waiting rollout can be aborted"}},
)
def abort_job(job_id: int, request: Request, principal: Principal = require("jobs:launch")) -> Any:
    """Give up on the remaining stages of a paused or waiting rollout."""
    return act(request, principal, job_id, "abort")


@router.post(
    "/jobs/{job_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={409: {"description": "The job is still running; rerun it once it has stopped"}},
)
def rerun_job(
    job_id: int, body: RerunIn, request: Request, principal: Principal = require("jobs:launch")
) -> Any:
    """A new job over this one's failed and/or unreachable devices."""
    return act(request, principal, job_id, "rerun", which=body.hosts)


@router.post("/jobs/{job_id}/retry-when-online", status_code=status.HTTP_202_ACCEPTED)
def retry_when_online(
    job_id: int, request: Request, principal: Principal = require("jobs:launch")
) -> dict[str, int]:
    """Queue the unreachable devices to run again as each comes back online."""
    ctx = get_context(request)
    try:
        with transaction(ctx.sessions) as session:
            job = visible_job(session, principal, job_id, lock=True)
            queued = lifecycle.retry_when_online(
                session=session, actor=principal.username, job=job, now=utcnow()
            )
    except service.JobRefused as exc:
        raise refusal(exc) from exc
    return {"queued": queued}
