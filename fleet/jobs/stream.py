"""A job's output as Server-Sent Events: new events from the database until the job ends."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
from fastapi.sse import format_sse_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fleet.db import transaction
from fleet.jobs import queries
from fleet.jobs.models import FINAL_JOB_STATUSES, Job
from fleet.jobs.schemas import EventOut

POLL_S = 0.5
BATCH = 500
KEEPALIVE_S = 15.0
# A stream ends after this long even while the job runs; the browser reconnects with
# Last-Event-ID, so a forgotten tab never pins a worker thread's polling for hours.
STREAM_LIMIT_S = 300.0
RETRY_MS = 2000
GONE = "gone"


@dataclass(frozen=True)
class Batch:
    status: str
    events: list[EventOut]


def read_batch(sessions: sessionmaker[Session], job_id: int, after_id: int) -> Batch:
    """The job's status, then its events after `after_id`, in one short transaction."""
    with transaction(sessions) as session:
        # Status first: every event written before the job ended is then in the read below.
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None:
            return Batch(GONE, [])
        events = queries.events_of(session=session, job_id=job_id, after_id=after_id, limit=BATCH)
    return Batch(status, events)


def resume_from(last_event_id: str | None, after: int) -> int:
    """Where to carry on: the browser's Last-Event-ID on a reconnect, else `after`."""
    if last_event_id and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return after


def _status(status: str) -> bytes:
    return format_sse_event(event="status", data_str=json.dumps({"status": status}))


async def job_events(
    request: Request,
    sessions: sessionmaker[Session],
    job_id: int,
    after_id: int,
    *,
    poll_s: float = POLL_S,
    limit_s: float = STREAM_LIMIT_S,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[bytes]:
    """Output events as they are stored; a status event on each change; `end` when it ends.

    Each poll borrows a connection on a worker thread and gives it back, so an open stream
    holds no database connection while it waits."""
    yield format_sse_event(retry=RETRY_MS, comment=f"job {job_id}")
    started = last_sent = clock()
    status = ""
    while True:
        batch = await run_in_threadpool(read_batch, sessions, job_id, after_id)
        if batch.status != status:
            status = batch.status
            yield _status(status)
            last_sent = clock()
        for event in batch.events:
            yield format_sse_event(
                event="output", id=str(event.id), data_str=event.model_dump_json()
            )
            after_id = event.id
            last_sent = clock()
        if len(batch.events) == BATCH:
            continue
        if status in FINAL_JOB_STATUSES or status == GONE:
            yield format_sse_event(event="end", data_str=json.dumps({"status": status}))
            return
        if clock() - started >= limit_s or await request.is_disconnected():
            return
        if clock() - last_sent >= KEEPALIVE_S:
            yield b": keep-alive\n\n"
            last_sent = clock()
        await anyio.sleep(poll_s)
