"""Handing a job to whatever runs it: a Celery worker, or a thread in the embedded demo."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.jobs.models import Job
from fleet.jobs.tasks import RUN_JOB

log = logging.getLogger(__name__)


class JobDispatcher:
    """Sends `estate.jobs.run`; with the in-process broker (no worker) runs the job in a thread."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._celery: Any = None
        self._stop = threading.Event()
        self.threads: list[threading.Thread] = []

    @property
    def in_process(self) -> bool:
        from fleet.tasks.app import IN_PROCESS_BROKER

        return self.ctx.settings.celery_broker_url == IN_PROCESS_BROKER

    def start(self, job_id: int) -> None:
        if self.in_process:
            thread = threading.Thread(
                target=self._run_here, args=(job_id,), name=f"job-{job_id}", daemon=True
            )
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
            return
        if self._celery is None:
            from fleet.tasks.app import make_celery

            self._celery = make_celery(self.ctx.settings, context=self.ctx)
        self._celery.send_task(RUN_JOB, args=[job_id])

    def _run_here(self, job_id: int) -> None:
        """Stage after stage, waiting out bake times, until the job stops or the app closes."""
        from fleet.jobs.runner import drive

        try:
            while not self._stop.is_set():
                if drive(self.ctx, job_id) != "baking":
                    return
                with transaction(self.ctx.sessions) as session:
                    job = session.get(Job, job_id)
                    due = job.next_stage_at if job else None
                if due is None:
                    return
                self._stop.wait(max(0.0, (due - utcnow()).total_seconds()))
        except Exception:
            # The top of a thread: nobody above to re-raise to; the job is reaped as failed.
            log.exception("job %d failed in the in-process runner", job_id)

    def close(self, timeout: float = 30) -> None:
        """Stop waiting on bake times and let running stages finish."""
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout)
