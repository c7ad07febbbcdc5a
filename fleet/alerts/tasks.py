"""Beat tasks: evaluate every rule, then send the notification digests that are due."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fleet.db import utcnow
from fleet.tasks.runtime import task_context, unit_of_work

log = logging.getLogger(__name__)

EVALUATE = "estate.alerts.evaluate"
NOTIFY = "estate.alerts.notify"
INTERVAL_S = 60


class NotificationsFailed(Exception):
    """Some digests could not be sent on any channel; they are retried on the next pass."""


def evaluate(task: Any) -> dict[str, object]:
    """One evaluation pass at the current time; repeating it changes nothing."""
    from fleet.alerts.evaluate import evaluate as run_pass

    now = utcnow()
    with unit_of_work(task, now=now.isoformat()) as session:
        result = run_pass(session=session, now=now)
    if result.opened or result.resolved:
        log.info(
            "alerts: %d opened, %d resolved in %.3f s",
            len(result.opened),
            len(result.resolved),
            result.seconds,
        )
    return result.as_dict()


def notify(task: Any) -> int:
    """Send each route's digest once its window has passed; returns digests sent."""
    from fleet.alerts import digest

    now = utcnow()
    ctx = task_context(task)
    with unit_of_work(task, now=now.isoformat()) as session:
        due = digest.claim_digests(session=session, now=now)
    unsent, partial = [], 0
    for item in due:
        sent, problems = digest.send(ctx.settings, item)
        for problem in problems:
            log.error("alert digest %s for %s: %s", item.id, item.prison_code, problem)
        if sent == 0:
            unsent.append(item)
        elif problems:
            partial += 1
    if unsent:
        with unit_of_work(task, releasing=[d.id for d in unsent]) as session:
            digest.release(session=session, digests=unsent)
    if unsent or partial:
        raise NotificationsFailed(
            f"{len(unsent)} digest(s) not sent and kept for the next pass; "
            f"{partial} reached only some of their channels"
        )
    return len(due)


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Both run every minute; a run nobody started in time is superseded by the next."""
    return {
        name: {
            "task": name,
            "schedule": timedelta(seconds=INTERVAL_S),
            "options": {"expires": INTERVAL_S},
        }
        for name in (EVALUATE, NOTIFY)
    }
