"""Celery tasks for jobs: run one job, and the sweep that starts, retries and reaps jobs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fleet.db import utcnow
from fleet.tasks.runtime import task_context, unit_of_work

log = logging.getLogger(__name__)

RUN_JOB = "estate.jobs.run"
SWEEP_JOBS = "estate.jobs.sweep"
SWEEP_INTERVAL_S = 15


def run_job(task: Any, job_id: int) -> str:
    """Run the job's due stages; a job another worker already holds is left alone."""
    from fleet.jobs.runner import drive

    ctx = task_context(task)
    try:
        status = drive(ctx, job_id)
    except Exception:
        log.exception("job %d: the run failed outside ansible-runner", job_id)
        raise
    if status == "baking":
        _schedule_next_stage(task, job_id)
    return status


def _schedule_next_stage(task: Any, job_id: int) -> None:
    from fleet.jobs.models import Job

    # In-process (eager) tasks cannot wait: the sweep starts the stage once it is due.
    if task.app.eager:
        return
    with unit_of_work(task, job_id=job_id) as session:
        job = session.get(Job, job_id)
        due = job.next_stage_at if job else None
        if job is not None:
            job.dispatched_at = due
    if due is not None:
        countdown = max(0.0, (due - utcnow()).total_seconds())
        task.app.tasks[RUN_JOB].apply_async(args=[job_id], countdown=countdown)


def sweep_jobs(task: Any) -> dict[str, int]:
    """Reap jobs whose worker died, start queued online retries, and kick due jobs."""
    from fleet.jobs import lifecycle

    now = utcnow()
    with unit_of_work(task, now=now.isoformat()) as session:
        reaped = lifecycle.reap_dead(session=session, now=now)
        retries = lifecycle.start_online_retries(session=session, now=now)
        due = lifecycle.due_jobs(session=session, now=now)
    for job_id in due:
        task.app.tasks[RUN_JOB].apply_async(args=[job_id])
    if reaped or retries or due:
        log.info(
            "jobs sweep: %d reaped (%s), %d online retries, %d started",
            len(reaped),
            reaped,
            len(retries),
            len(due),
        )
    return {"reaped": len(reaped), "retries": len(retries), "started": len(due)}


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The sweep runs often; a missed run is superseded by the next one."""
    return {
        SWEEP_JOBS: {
            "task": SWEEP_JOBS,
            "schedule": timedelta(seconds=SWEEP_INTERVAL_S),
            "options": {"expires": SWEEP_INTERVAL_S},
        }
    }
