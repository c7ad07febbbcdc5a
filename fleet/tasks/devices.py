"""Device housekeeping tasks."""

from __future__ import annotations

import logging
from typing import Any

from fleet.db import utcnow
from fleet.tasks.runtime import task_context, unit_of_work

log = logging.getLogger(__name__)

SWEEP_SILENT = "estate.devices.sweep_silent"


def sweep_silent(task: Any) -> int:
    """Mark devices silent for longer than offline_after_s as offline; return how many."""
    # Imported here so loading the task registry never pulls in the ingest pipeline.
    from fleet.ingest.service import mark_silent_devices

    offline_after_s = task_context(task).settings.offline_after_s
    now = utcnow()
    with unit_of_work(task, now=now.isoformat(), offline_after_s=offline_after_s) as session:
        marked = mark_silent_devices(session=session, now=now, offline_after_s=offline_after_s)
    if marked:
        log.info("%d device(s) silent for over %ds marked offline", marked, offline_after_s)
    return marked
