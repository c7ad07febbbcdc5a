"""What people do to a job once launched: approve, cancel, resume, abort, rerun, retry."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fleet.devices.models import DeviceState
from fleet.jobs.inventory import InventoryBuilder, mqtt_inventory
from fleet.jobs.models import FINAL_JOB_STATUSES, Job, JobHost, JobStage
from fleet.jobs.service import JobRefused, audit_job, create_job
from fleet.jobs.staging import PlannedStage
from fleet.jobs.targets import Target

# A running job whose worker has not checked in for this long is taken as dead.
HEARTBEAT_STALE_S = 120
# A job sent to the workers this long ago and still not started is sent again.
REDISPATCH_AFTER_S = 60
RERUN_STATUSES = {
    "failed": ("failed",),
    "unreachable": ("unreachable",),
    "failed_and_unreachable": ("failed", "unreachable"),
}


def _close_pending(session: Session, job: Job, host_status: str, now: datetime) -> None:
    session.execute(
        update(JobHost)
        .where(JobHost.job_id == job.id, JobHost.status.in_(("pending", "running")))
        .values(status=host_status, updated_at=now)
    )
    session.execute(
        update(JobStage)
        .where(JobStage.job_id == job.id, JobStage.status.in_(("pending", "running")))
        .values(status="cancelled" if host_status == "cancelled" else "skipped", finished_at=now)
    )


def _finish(session: Session, job: Job, status: str, explanation: str, now: datetime) -> None:
    job.status = status
    job.explanation = explanation
    job.finished_at = now
    job.next_stage_at = None


def approve(*, session: Session, actor: str, job: Job, now: datetime) -> Job:
    """A second person lets an estate-wide job start; the launcher cannot approve their own."""
    if job.status != "awaiting_approval":
        raise JobRefused(409, f"job {job.id} is {job.status}, not awaiting approval")
    if actor == job.launched_by:
        raise JobRefused(
            403, "you launched this job, so another person with approval rights must approve it"
        )
    job.status = "queued"
    job.approved_by = actor
    job.approved_at = now
    audit_job(session, actor, "approve", job, launched_by=job.launched_by)
    return job


def reject(*, session: Session, actor: str, job: Job, reason: str, now: datetime) -> Job:
    if job.status != "awaiting_approval":
        raise JobRefused(409, f"job {job.id} is {job.status}, not awaiting approval")
    _close_pending(session, job, "skipped", now)
    _finish(session, job, "rejected", f"Rejected by {actor}: {reason or 'no reason given'}", now)
    audit_job(session, actor, "reject", job, reason=reason)
    return job


def cancel(*, session: Session, actor: str, job: Job, now: datetime) -> Job:
    """A running job is flagged (its worker stops it); one not yet running ends at once."""
    if job.status in FINAL_JOB_STATUSES:
        raise JobRefused(409, f"job {job.id} has already ended ({job.status})")
    if job.status == "running":
        job.cancel_requested = True
    else:
        _close_pending(session, job, "cancelled", now)
        _finish(session, job, "cancelled", f"Cancelled by {actor} before it ran further", now)
    audit_job(session, actor, "cancel", job)
    return job


def resume(*, session: Session, actor: str, job: Job, now: datetime) -> Job:
    if job.status != "paused":
        raise JobRefused(409, f"job {job.id} is {job.status}; only a paused rollout resumes")
    job.status = "queued"
    job.next_stage_at = now
    job.explanation = f"Resumed by {actor}"
    audit_job(session, actor, "resume", job)
    return job


def abort(*, session: Session, actor: str, job: Job, now: datetime) -> Job:
    if job.status not in ("paused", "baking", "queued"):
        raise JobRefused(409, f"job {job.id} is {job.status}; abort a paused or waiting rollout")
    _close_pending(session, job, "skipped", now)
    _finish(session, job, "aborted", f"Aborted by {actor}; the remaining stages did not run", now)
    audit_job(session, actor, "abort", job)
    return job


def _child_job(
    session: Session,
    actor: str,
    job: Job,
    hosts: list[JobHost],
    origin: str,
    now: datetime,
    inventory_builder: InventoryBuilder,
) -> Job:
    targets = [Target(h.device_id, h.prison_code, "", None) for h in hosts]
    ids = [t.device_id for t in targets]
    return create_job(
        session=session,
        actor=actor,
        name=job.name,
        playbook=job.playbook,
        template_id=job.template_id,
        selector={"device_ids": ids},
        variables=job.variables,
        options={
            "forks": job.forks,
            "timeout_s": job.timeout_s,
            "check_mode": job.check_mode,
            "rollout": {},
        },
        stages=[PlannedStage(f"Devices from job {job.id} ({len(ids)} devices)", ids)],
        targets=targets,
        # A subset of a job that already started was approved with it, if it needed to be.
        needs_approval=False,
        estate_wide=False,
        now=now,
        inventory_builder=inventory_builder,
        parent=job,
        origin=origin,
    )


def rerun(
    *,
    session: Session,
    actor: str,
    job: Job,
    which: str,
    now: datetime,
    inventory_builder: InventoryBuilder = mqtt_inventory,
) -> Job:
    """A new job over this job's failed (and/or unreachable) hosts."""
    if job.status not in FINAL_JOB_STATUSES and job.status != "paused":
        raise JobRefused(409, f"job {job.id} is still {job.status}; rerun it once it has stopped")
    statuses = RERUN_STATUSES[which]
    hosts = list(
        session.scalars(
            select(JobHost)
            .where(JobHost.job_id == job.id, JobHost.status.in_(statuses))
            .order_by(JobHost.device_id)
        )
    )
    if not hosts:
        raise JobRefused(422, f"job {job.id} has no {' or '.join(statuses)} hosts", "hosts")
    return _child_job(session, actor, job, hosts, "rerun_failed", now, inventory_builder)


def retry_when_online(*, session: Session, actor: str, job: Job, now: datetime) -> int:
    """Queue this job's unreachable hosts to run again when each comes back online."""
    result = session.execute(
        update(JobHost)
        .where(
            JobHost.job_id == job.id,
            JobHost.status == "unreachable",
            JobHost.retry_when_online.is_(False),
            JobHost.retried_by_job_id.is_(None),
        )
        .values(retry_when_online=True, updated_at=now)
    )
    marked = int(getattr(result, "rowcount", 0) or 0)
    if not marked:
        raise JobRefused(422, f"job {job.id} has no unreachable hosts left to retry", "hosts")
    audit_job(session, actor, "retry_when_online", job, hosts=marked)
    return int(marked)


def start_online_retries(
    *, session: Session, now: datetime, inventory_builder: InventoryBuilder = mqtt_inventory
) -> list[Job]:
    """One new job per parent for queued hosts whose device has since come online."""
    rows = session.scalars(
        select(JobHost)
        .join(DeviceState, DeviceState.device_id == JobHost.device_id)
        .where(
            JobHost.retry_when_online.is_(True),
            JobHost.retried_by_job_id.is_(None),
            DeviceState.online.is_(True),
        )
        .order_by(JobHost.job_id, JobHost.device_id)
        .with_for_update(of=JobHost, skip_locked=True)
    )
    by_job: dict[int, list[JobHost]] = defaultdict(list)
    for host in rows:
        by_job[host.job_id].append(host)
    started = []
    for job_id, hosts in by_job.items():
        parent = session.get(Job, job_id)
        assert parent is not None
        child = _child_job(session, "estate", parent, hosts, "retry_online", now, inventory_builder)
        for host in hosts:
            host.retried_by_job_id = child.id
        started.append(child)
    return started


def reap_dead(*, session: Session, now: datetime, stale_s: int = HEARTBEAT_STALE_S) -> list[int]:
    """Mark running jobs whose worker stopped checking in as failed; return their ids."""
    cutoff = now - timedelta(seconds=stale_s)
    dead = list(
        session.scalars(
            select(Job)
            .where(Job.status == "running", Job.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        )
    )
    for job in dead:
        _close_pending(session, job, "failed", now)
        _finish(
            session,
            job,
            "failed",
            f"The worker running this job ({job.worker or 'unknown'}) stopped responding; "
            "rerun the failed hosts",
            now,
        )
        audit_job(session, "estate", "reaped", job, worker=job.worker)
    return [job.id for job in dead]


def due_jobs(*, session: Session, now: datetime, grace_s: int = REDISPATCH_AFTER_S) -> list[int]:
    """Jobs to send to the workers again: due, and not sent in the last `grace_s` seconds.

    Each is marked as sent now, so a busy worker's queue does not fill with copies."""
    sent_before = now - timedelta(seconds=grace_s)
    last_sent = func.coalesce(Job.dispatched_at, Job.created_at)
    rows = list(
        session.scalars(
            select(Job)
            .where(
                Job.status.in_(("queued", "baking")),
                or_(Job.next_stage_at.is_(None), Job.next_stage_at <= now),
                last_sent <= sent_before,
            )
            .with_for_update(skip_locked=True)
        )
    )
    for job in rows:
        job.dispatched_at = now
    return [job.id for job in rows]
