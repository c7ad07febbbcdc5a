"""The jobs tasks under Celery on PostgreSQL: the sweep reaps, retries and starts due jobs."""

from __future__ import annotations

from datetime import timedelta

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.jobs.execution import claim_next_stage
from fleet.jobs.models import Job
from fleet.jobs.tasks import RUN_JOB, SWEEP_JOBS
from fleet.tasks.app import make_celery
from tests.jobs.support import job_and_hosts, launch, make_template, seed_devices


def test_the_sweep_marks_a_job_whose_worker_died_as_failed(pg_context: Context) -> None:
    seed_devices(pg_context, {"MDI": 2})
    job_id = launch(pg_context, make_template(pg_context))
    with transaction(pg_context.sessions) as session:
        claim_next_stage(
            session=session, job_id=job_id, worker="gone:1", now=utcnow() - timedelta(minutes=5)
        )
    app = make_celery(pg_context.settings)
    try:
        swept = app.tasks[SWEEP_JOBS].delay().get(timeout=30)
    finally:
        app.close_context()

    assert swept == {"reaped": 1, "retries": 0, "started": 0}
    job, hosts = job_and_hosts(pg_context, job_id)
    assert job.status == "failed"
    assert {h.status for h in hosts.values()} == {"failed"}


def test_running_a_job_another_worker_holds_changes_nothing(pg_context: Context) -> None:
    seed_devices(pg_context, {"MDI": 1})
    job_id = launch(pg_context, make_template(pg_context))
    with transaction(pg_context.sessions) as session:
        assert claim_next_stage(session=session, job_id=job_id, worker="other:1", now=utcnow())
    app = make_celery(pg_context.settings)
    try:
        status = app.tasks[RUN_JOB].delay(job_id).get(timeout=30)
    finally:
        app.close_context()

    assert status == "running"
    with transaction(pg_context.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.worker == "other:1"
