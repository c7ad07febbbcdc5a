"""The Celery application, built from settings by `make_celery` (never at import time)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery, current_app
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
)

from fleet.alerts import tasks as alerts_tasks
from fleet.commands import tasks as commands_tasks
from fleet.context import Context
from fleet.jobs import tasks as jobs_tasks
from fleet.ops.logging import set_log_context
from fleet.ops.multiprocess import forget_process
from fleet.rollout import tasks as rollout_tasks
from fleet.settings import Settings
from fleet.tasks import devices
from fleet.tasks.metrics import TASK_METRICS

IN_PROCESS_BROKER = "memory://"
DEFAULT_QUEUE = "estate"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """How one task is registered; `idempotent` tasks are acknowledged only once they finish."""

    name: str
    run: Any
    idempotent: bool


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(devices.SWEEP_SILENT, devices.sweep_silent, idempotent=True),
    TaskSpec(rollout_tasks.SNAPSHOT_DAILY, rollout_tasks.snapshot_daily, idempotent=True),
    TaskSpec(commands_tasks.EXPIRE_COMMANDS, commands_tasks.expire_commands, idempotent=True),
    # Not acknowledged late: a job claims its stage, and a dead worker's job is reaped as failed
    # rather than replayed on devices.
    TaskSpec(jobs_tasks.RUN_JOB, jobs_tasks.run_job, idempotent=False),
    TaskSpec(jobs_tasks.SWEEP_JOBS, jobs_tasks.sweep_jobs, idempotent=True),
    TaskSpec(alerts_tasks.EVALUATE, alerts_tasks.evaluate, idempotent=True),
    # Claims are committed before sending, so a redelivered run never repeats a digest.
    TaskSpec(alerts_tasks.NOTIFY, alerts_tasks.notify, idempotent=True),
)


class EstateCelery(Celery):
    """A Celery app carrying the platform's settings and one Context per process."""

    def __init__(self, settings: Settings, *, context: Context | None = None) -> None:
        super().__init__("estate", set_as_current=False)
        self.settings = settings
        self._context = context

    @property
    def eager(self) -> bool:
        return bool(self.conf.task_always_eager)

    @property
    def context(self) -> Context:
        """This process's Context, built on first use."""
        if self._context is None:
            self._context = Context(self.settings)
        return self._context

    def start_process_context(self) -> None:
        """Give a freshly forked worker process its own Context (and database pool)."""
        inherited, self._context = self._context, None
        if inherited is not None and "engine" in inherited.__dict__:
            # The parent's pooled connections belong to the parent: forget them, never close them.
            inherited.engine.dispose(close=False)
        self._context = Context(self.settings)
        log.info("worker process %d has its own database pool", os.getpid())

    def close_context(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.close()


def make_celery(settings: Settings, *, context: Context | None = None) -> EstateCelery:
    """The Celery app for these settings; with the memory:// broker tasks run in-process.

    Pass `context` to share an existing Context (the embedded demo does) instead of building one.
    """
    eager = settings.celery_broker_url == IN_PROCESS_BROKER
    app = EstateCelery(settings, context=context)
    app.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=settings.celery_result_backend or None,
        task_always_eager=eager,
        task_eager_propagates=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_default_queue=DEFAULT_QUEUE,
        # Late acknowledgement is only safe one task at a time per child.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_expires=timedelta(days=1),
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        beat_schedule={
            devices.SWEEP_SILENT: {
                "task": devices.SWEEP_SILENT,
                "schedule": timedelta(seconds=settings.sweep_interval_s),
                # A sweep nobody ran in time is superseded by the next one: never queue a backlog.
                "options": {"expires": settings.sweep_interval_s},
            },
            **rollout_tasks.beat_schedule(),
            **commands_tasks.beat_schedule(),
            **jobs_tasks.beat_schedule(),
            **alerts_tasks.beat_schedule(),
        },
    )
    for spec in TASKS:
        app.task(
            name=spec.name,
            bind=True,
            acks_late=spec.idempotent,
            reject_on_worker_lost=spec.idempotent,
        )(spec.run)
    # Imported here: facilities is a package of its own that builds on the control plane.
    from facilities.faults import tasks as fault_tasks

    fault_tasks.register(app)
    return app


@worker_process_init.connect
def _start_worker_process(**_: object) -> None:
    app = current_app._get_current_object()
    if isinstance(app, EstateCelery):
        app.start_process_context()


@worker_process_shutdown.connect
def _stop_worker_process(**_: object) -> None:
    app = current_app._get_current_object()
    if isinstance(app, EstateCelery):
        app.close_context()
    forget_process(os.getpid())


def _is_estate_task(task: Any) -> bool:
    return isinstance(getattr(task, "app", None), EstateCelery)


@task_prerun.connect
def _task_started(task_id: str, task: Any, **_: object) -> None:
    if _is_estate_task(task):
        # The task's log lines carry its id as job_id, whichever pool process runs it.
        set_log_context(job_id=task_id, task_name=task.name)
        TASK_METRICS.started(task_id)


@task_postrun.connect
def _task_finished(task_id: str, task: Any, **_: object) -> None:
    if _is_estate_task(task):
        TASK_METRICS.finished(task_id, task.name)
        set_log_context(job_id=None, task_name=None)


@task_failure.connect
def _task_failed(sender: Any = None, **_: object) -> None:
    if _is_estate_task(sender):
        TASK_METRICS.failed(sender.name)
