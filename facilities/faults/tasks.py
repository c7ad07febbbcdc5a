"""The SLA beat task: mark faults at risk or breached, then notify once the marks are stored."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery

from facilities.faults import fleet_raised, notify, sla
from fleet.db import utcnow
from fleet.tasks.runtime import task_context, unit_of_work

log = logging.getLogger(__name__)

CHECK_SLA = "estate.faults.check_sla"
RAISE_FROM_FLEET = "estate.faults.raise_from_fleet"
CHECK_INTERVAL = timedelta(minutes=1)


def check_sla(task: Any) -> int:
    """One pass over open faults; returns how many were newly marked."""
    now = utcnow()
    with unit_of_work(task, now=now.isoformat()) as session:
        changes = sla.check(session=session, now=now)
        prisons = {c.prison_code for c in changes}
        routes = {code: notify.route_for(session=session, prison_code=code) for code in prisons}
    # Notified only after the marks are committed, so a rollback never leaves a false alarm.
    if changes:
        log.info("%d fault(s) newly at risk or breached", len(changes))
        notify.deliver(task_context(task).settings, routes, changes)
    return len(changes)


def raise_from_fleet(task: Any) -> list[str]:
    """Raise faults for places whose devices fell silent; returns the new references."""
    silent_after = timedelta(seconds=task_context(task).settings.fault_silent_after_s)
    now = utcnow()
    with unit_of_work(task, now=now.isoformat(), silent_after=str(silent_after)) as session:
        raised = fleet_raised.raise_from_fleet(session=session, now=now, silent_after=silent_after)
        references = [fault.reference for fault in raised]
    return references


def register(app: Celery) -> None:
    """Add the fault tasks and their beat entries to an estate Celery app."""
    for name, run in ((CHECK_SLA, check_sla), (RAISE_FROM_FLEET, raise_from_fleet)):
        # Not shared: Celery would otherwise add the task to every app built later in the process.
        app.task(name=name, bind=True, shared=False, acks_late=True, reject_on_worker_lost=True)(
            run
        )
        app.conf.beat_schedule[name] = {
            "task": name,
            "schedule": CHECK_INTERVAL,
            # A run nobody started in time is superseded by the next one: never queue a backlog.
            "options": {"expires": int(CHECK_INTERVAL.total_seconds())},
        }
