"""Command housekeeping: commands nobody answered in time become expired."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fleet.db import utcnow
from fleet.tasks.runtime import unit_of_work

log = logging.getLogger(__name__)

EXPIRE_COMMANDS = "estate.commands.expire"
EXPIRE_INTERVAL_S = 30


def expire_commands(task: Any) -> int:
    """Mark queued or delivered commands past their expiry as expired; return how many."""
    from fleet.commands.service import expire_overdue

    now = utcnow()
    with unit_of_work(task, now=now.isoformat()) as session:
        expired = expire_overdue(session=session, now=now)
    if expired:
        log.info("%d command(s) expired without a reply", expired)
    return expired


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The beat entry that runs the expiry; a missed run is superseded by the next one."""
    return {
        EXPIRE_COMMANDS: {
            "task": EXPIRE_COMMANDS,
            "schedule": timedelta(seconds=EXPIRE_INTERVAL_S),
            "options": {"expires": EXPIRE_INTERVAL_S},
        }
    }
