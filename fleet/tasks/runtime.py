"""What every task body uses: the process's Context and one logged unit of work."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from fleet.context import Context
from fleet.db import transaction

log = logging.getLogger(__name__)


def task_context(task: Any) -> Context:
    """The Context of the process running this task (built once per process by the app)."""
    context: Context = task.app.context
    return context


@contextmanager
def unit_of_work(task: Any, **details: object) -> Iterator[Session]:
    """One transaction for a task; a failure is logged with the task's identity and re-raised."""
    try:
        with transaction(task_context(task).sessions) as session:
            yield session
    except Exception:
        log.exception(
            "task %s failed (id=%s, %s)",
            task.name,
            getattr(task.request, "id", None),
            ", ".join(f"{key}={value!r}" for key, value in details.items()) or "no arguments",
        )
        raise
