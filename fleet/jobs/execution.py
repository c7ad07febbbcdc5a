"""The database side of running a job: claim the next stage, record its outcome, decide next."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fleet.jobs.models import Job, JobHost, JobStage
from fleet.jobs.schemas import Rollout
from fleet.jobs.service import audit_job
from fleet.jobs.staging import over_threshold


@dataclass(frozen=True)
class HostResult:
    status: str  # ok, failed, unreachable, cancelled
    ok: int = 0
    changed: int = 0
    failures: int = 0
    skipped: int = 0
    message: str = ""


@dataclass
class StageOutcome:
    """How one ansible-runner run ended and what each host did."""

    runner_status: str  # successful, failed, canceled, timeout, error
    hosts: dict[str, HostResult] = field(default_factory=dict)
    problem: str = ""
    # The playbook reached its recap: a host missing from it was not matched by any play.
    recap: bool = False


def claim_next_stage(
    *, session: Session, job_id: int, worker: str, now: datetime
) -> JobStage | None:
    """Take the job's next pending stage if the job is due; None if another worker has it."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status.in_(("queued", "baking")),
            or_(Job.next_stage_at.is_(None), Job.next_stage_at <= now),
        )
        .values(status="running", worker=worker, heartbeat_at=now, next_stage_at=None)
    )
    if not getattr(result, "rowcount", 0):
        return None
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    job.started_at = job.started_at or now
    stage = session.scalars(
        select(JobStage)
        .where(JobStage.job_id == job_id, JobStage.status == "pending")
        .order_by(JobStage.position)
        .limit(1)
    ).first()
    if stage is None:
        _conclude(session, job, now)
        return None
    stage.status = "running"
    stage.started_at = now
    session.execute(
        update(JobHost)
        .where(JobHost.job_id == job_id, JobHost.stage == stage.position)
        .values(status="running", updated_at=now)
    )
    return stage


def heartbeat(*, session: Session, job_id: int, now: datetime) -> bool:
    """Note that the worker is alive; return whether cancellation was asked for."""
    cancel = session.execute(
        update(Job).where(Job.id == job_id).values(heartbeat_at=now).returning(Job.cancel_requested)
    ).scalar_one_or_none()
    return bool(cancel)


def _apply_hosts(session: Session, stage: JobStage, outcome: StageOutcome, now: datetime) -> None:
    if outcome.recap:
        missing, reason = "skipped", "no play in the playbook applies to this device"
    else:
        missing = "cancelled" if outcome.runner_status == "canceled" else "failed"
        reason = outcome.problem or f"no result from the run ({outcome.runner_status})"
    hosts = session.scalars(
        select(JobHost).where(JobHost.job_id == stage.job_id, JobHost.stage == stage.position)
    )
    for host in hosts:
        result = outcome.hosts.get(host.device_id)
        if result is None:
            host.status = missing
            host.message = host.message or reason
        else:
            host.status = result.status
            host.ok, host.changed = result.ok, result.changed
            host.failures, host.skipped = result.failures, result.skipped
            host.message = result.message
        host.updated_at = now


def _host_counts(session: Session, job_id: int) -> dict[str, int]:
    rows = session.execute(
        select(JobHost.status, func.count())
        .where(JobHost.job_id == job_id)
        .group_by(JobHost.status)
    )
    return {status: int(count) for status, count in rows}


def _conclude(session: Session, job: Job, now: datetime) -> None:
    counts = _host_counts(session, job.id)
    bad = counts.get("failed", 0) + counts.get("unreachable", 0)
    job.status = "failed" if bad else "successful"
    job.explanation = (
        f"{bad} of {sum(counts.values())} devices failed or were unreachable"
        if bad
        else f"All {sum(counts.values())} devices succeeded"
    )
    job.finished_at = now
    job.next_stage_at = None


def _close_rest(session: Session, job: Job, host_status: str, now: datetime) -> None:
    session.execute(
        update(JobHost)
        .where(JobHost.job_id == job.id, JobHost.status == "pending")
        .values(status=host_status, updated_at=now)
    )
    session.execute(
        update(JobStage)
        .where(JobStage.job_id == job.id, JobStage.status == "pending")
        .values(status="skipped" if host_status == "skipped" else host_status, finished_at=now)
    )


def finish_stage(*, session: Session, stage_id: int, outcome: StageOutcome, now: datetime) -> str:
    """Record a stage's outcome and move the job on; returns the job's new status."""
    stage = session.get(JobStage, stage_id)
    assert stage is not None
    job = session.get(Job, stage.job_id, populate_existing=True)
    assert job is not None
    _apply_hosts(session, stage, outcome, now)
    session.flush()
    stage_counts = dict(
        session.execute(
            select(JobHost.status, func.count())
            .where(JobHost.job_id == job.id, JobHost.stage == stage.position)
            .group_by(JobHost.status)
        ).all()
    )
    stage.finished_at = now
    if outcome.runner_status == "canceled":
        stage.status = "cancelled"
        _close_rest(session, job, "cancelled", now)
        job.status, job.finished_at = "cancelled", now
        job.explanation = "Cancelled while running; the devices still working were told to stop"
        return job.status
    stage.status = (
        "failed"
        if stage_counts.get("failed") or stage_counts.get("unreachable")
        else ("successful")
    )
    if outcome.runner_status in ("timeout", "error"):
        _close_rest(session, job, "skipped", now)
        job.status, job.finished_at = "failed", now
        job.explanation = (
            f"The run stopped after its {job.timeout_s} s timeout"
            if outcome.runner_status == "timeout"
            else f"The run could not start: {outcome.problem}"
        )
        return job.status
    pending = session.scalar(
        select(func.count()).where(JobStage.job_id == job.id, JobStage.status == "pending")
    )
    if not pending:
        _conclude(session, job, now)
        return job.status
    rollout = Rollout.model_validate(job.rollout or {})
    counts = _host_counts(session, job.id)
    failed = counts.get("failed", 0) + counts.get("unreachable", 0)
    finished = sum(n for s, n in counts.items() if s not in ("pending", "running"))
    if over_threshold(
        failed=failed, finished=finished, threshold_pct=rollout.failure_threshold_pct
    ):
        job.status = "paused"
        job.explanation = (
            f"Paused after {stage.label}: {failed} of {finished} devices failed or were "
            f"unreachable ({failed * 100 / finished:.0f}%), above the "
            f"{rollout.failure_threshold_pct:g}% threshold. Resume or abort."
        )
        audit_job(
            session, "estate", "paused", job, failed=failed, finished=finished, stage=stage.position
        )
        return job.status
    job.status = "baking" if rollout.bake_s else "queued"
    job.next_stage_at = now + timedelta(seconds=rollout.bake_s)
    job.explanation = (
        f"{stage.label} done; the next stage starts after {rollout.bake_s} s of bake time"
        if rollout.bake_s
        else f"{stage.label} done"
    )
    return job.status
