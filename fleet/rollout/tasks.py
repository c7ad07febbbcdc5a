"""The daily rollout snapshot task."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery.schedules import crontab

from fleet.db import utcnow
from fleet.tasks.runtime import unit_of_work

log = logging.getLogger(__name__)

SNAPSHOT_DAILY = "estate.rollout.snapshot_daily"


def snapshot_daily(task: Any, day: str | None = None) -> int:
    """Write one snapshot per prison plan for `day` (ISO date, default today); idempotent."""
    # Imported here so loading the task registry never pulls in the rollout domain.
    from fleet.rollout.history import take_snapshots

    when = date.fromisoformat(day) if day else utcnow().date()
    with unit_of_work(task, day=when.isoformat()) as session:
        written = take_snapshots(session=session, day=when)
    log.info("rollout snapshot for %s: %d prison plan(s)", when, written)
    return written


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The beat entry: once a day near midnight UTC, so each row shows the whole day's state."""
    return {
        SNAPSHOT_DAILY: {
            "task": SNAPSHOT_DAILY,
            "schedule": crontab(hour=23, minute=50),
            # A run missed by hours is still worth doing before the day ends; later ones are not.
            "options": {"expires": 9 * 60},
        }
    }
