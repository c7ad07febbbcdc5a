"""A row locked by another connection, to show a request waiting on it stalls nothing else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Select, text

from fleet.context import Context
from tests.e2e.harness import wait_for

PROMPT_S = 1.0  # an idle server answers in milliseconds; a stalled one not until the lock goes


@contextmanager
def row_held(ctx: Context, rows: Select[Any]) -> Iterator[None]:
    """Hold `SELECT ... FOR UPDATE` on `rows` in an open transaction until the block ends."""
    with ctx.engine.connect() as holder:
        assert holder.execute(rows.with_for_update()).first() is not None, "nothing to lock"
        yield
        holder.rollback()


def waiting_on_locks(ctx: Context) -> int:
    """How many sessions of this database are waiting on a lock right now."""
    with ctx.engine.connect() as probe:
        return int(
            probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@dataclass(frozen=True)
class WhileHeld:
    other: httpx.Response | None  # None when the server did not answer while the row was held
    other_seconds: float
    still_waiting: bool  # the held-up request had not finished when the other was answered
    answer: httpx.Response  # the held-up request's answer once the row was let go


def send_while_row_held(
    ctx: Context,
    rows: Select[Any],
    send: Callable[[], httpx.Response],
    other: Callable[[], httpx.Response],
) -> WhileHeld:
    """Send a request that must wait on a held row; meanwhile ask the server something else."""
    with ThreadPoolExecutor(1) as pool:
        with row_held(ctx, rows):
            pending = pool.submit(send)
            wait_for(lambda: waiting_on_locks(ctx) > 0, 10, "the request to wait on the row")
            started = time.monotonic()
            try:
                answered: httpx.Response | None = other()
            except httpx.TimeoutException:
                answered = None
            took = time.monotonic() - started
            still_waiting = not pending.done()
        return WhileHeld(answered, took, still_waiting, pending.result(timeout=30))
