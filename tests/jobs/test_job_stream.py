"""A job's output as Server-Sent Events from the real server: order, resuming, the end, access."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from fleet.db import transaction, utcnow
from fleet.jobs import lifecycle, stream
from fleet.jobs.events import EventRecorder
from fleet.jobs.inventory import mqtt_inventory
from fleet.jobs.models import Job
from fleet.jobs.service import PLAYBOOKS_DIR
from tests.estate.factories import Api, api_for
from tests.jobs.support import launch, make_template, seed_devices
from tests.services.postgres import migrated_context


@dataclass
class Jobs:
    api: Api
    mdi: int
    lei: int


@dataclass
class Message:
    event: str = "message"
    data: Any = None
    id: str | None = None
    comments: list[str] = field(default_factory=list)


@pytest.fixture
def jobs(pg_url: str, tmp_path: Path) -> Iterator[Jobs]:
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:9")
    try:
        seed_devices(ctx, {"MDI": 2, "LEI": 1})
        template = make_template(ctx, playbook="reboot.yml", root=PLAYBOOKS_DIR)
        ids = [
            launch(
                ctx,
                template,
                selector={"prisons": [prison]},
                inventory_builder=mqtt_inventory,
                root=PLAYBOOKS_DIR,
            )
            for prison in ("MDI", "LEI")
        ]
        with api_for(ctx) as api:
            yield Jobs(api, *ids)
    finally:
        ctx.close()


def _write(api: Api, job_id: int, *lines: str, first: int = 1) -> None:
    recorder = EventRecorder(api.ctx.sessions, job_id=job_id, stage=0)
    for counter, line in enumerate(lines, start=first):
        recorder.on_event({"event": "verbose", "counter": counter, "stdout": line})
    recorder.flush()


def _cancel(api: Api, job_id: int) -> None:
    with transaction(api.ctx.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        lifecycle.cancel(session=session, actor="someone", job=job, now=utcnow())


def _messages(response: httpx.Response) -> Iterator[Message]:
    message = Message()
    for line in response.iter_lines():
        if not line:
            if message.data is not None or message.comments:
                yield message
            message = Message()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            message.comments.append(value)
        elif name == "event":
            message.event = value
        elif name == "data":
            message.data = json.loads(value)
        elif name == "id":
            message.id = value


def _open(
    api: Api, job_id: int, prisons: tuple[str, ...] = (), headers: dict[str, str] | None = None
) -> Any:
    return api.client.stream(
        "GET",
        f"/jobs/{job_id}/events",
        headers={**api.auth("it-support", prisons), **(headers or {})},
        timeout=httpx.Timeout(15),
    )


def test_output_streams_in_order_then_the_stream_ends_with_the_job(jobs: Jobs) -> None:
    _write(jobs.api, jobs.mdi, "PLAY [Reboot]", "TASK [Wait]")
    with _open(jobs.api, jobs.mdi) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        messages = _messages(response)
        assert next(messages).comments == [f"job {jobs.mdi}"]
        first = next(messages)
        assert (first.event, first.data) == ("status", {"status": "queued"})
        seen = [next(messages), next(messages)]
        assert [m.data["stdout"] for m in seen] == ["PLAY [Reboot]", "TASK [Wait]"]
        assert all(m.event == "output" for m in seen)

        _write(jobs.api, jobs.mdi, "ok: [MDI-1]", first=3)
        later = next(messages)
        assert later.data["stdout"] == "ok: [MDI-1]"
        assert int(later.id or 0) > int(seen[-1].id or 0)

        _cancel(jobs.api, jobs.mdi)
        rest = list(messages)
    assert [(m.event, m.data) for m in rest] == [
        ("status", {"status": "cancelled"}),
        ("end", {"status": "cancelled"}),
    ]


def test_a_reconnect_resumes_after_last_event_id(jobs: Jobs) -> None:
    _write(jobs.api, jobs.mdi, "one", "two", "three")
    _cancel(jobs.api, jobs.mdi)
    with _open(jobs.api, jobs.mdi) as response:
        everything = [m for m in _messages(response) if m.event == "output"]
    assert [m.data["stdout"] for m in everything] == ["one", "two", "three"]

    with _open(jobs.api, jobs.mdi, headers={"Last-Event-ID": everything[0].id or ""}) as response:
        resumed = list(_messages(response))
    assert [m.data["stdout"] for m in resumed if m.event == "output"] == ["two", "three"]
    assert resumed[-1].event == "end"

    # The page's own starting point is a query; a reconnect's Last-Event-ID wins over it.
    url = f"/jobs/{jobs.mdi}/events?after={everything[2].id}"
    with jobs.api.client.stream(
        "GET", url, headers={**jobs.api.auth("it-support"), "Last-Event-ID": everything[1].id or ""}
    ) as response:
        outputs = [m.data["stdout"] for m in _messages(response) if m.event == "output"]
    assert outputs == ["three"]


def test_a_finished_job_streams_what_is_left_and_ends_at_once(jobs: Jobs) -> None:
    _cancel(jobs.api, jobs.lei)
    started = time.monotonic()
    with _open(jobs.api, jobs.lei) as response:
        kinds = [m.event for m in _messages(response)]
    assert kinds == ["message", "status", "end"]
    assert time.monotonic() - started < 5


def test_open_streams_hold_no_database_transaction(jobs: Jobs, pg_url: str) -> None:
    streams = [_open(jobs.api, jobs.mdi) for _ in range(3)]
    readers = []
    try:
        for opened in streams:
            response = opened.__enter__()
            messages = _messages(response)
            next(messages)
            assert next(messages).event == "status"
            readers.append(messages)
        # A stream that kept its transaction between polls would show here, its last
        # statement the read of job events; other parts of the app are left out.
        held: list[str] = []
        for _ in range(6):
            time.sleep(0.25)
            with transaction(jobs.api.ctx.sessions) as session:
                held += session.scalars(
                    text(
                        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state LIKE 'idle in transaction%' AND query LIKE '%job_event%'"
                    )
                ).all()
        assert held == []
    finally:
        for opened in streams:
            opened.__exit__(None, None, None)


def test_polling_stops_when_the_client_goes_away(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[int] = []
    real_read = stream.read_batch

    def counted(*args: Any) -> stream.Batch:
        polls.append(1)
        return real_read(*args)

    monkeypatch.setattr(stream, "read_batch", counted)
    with _open(jobs.api, jobs.mdi) as response:
        messages = _messages(response)
        next(messages)
        next(messages)
        time.sleep(1.2)
    assert len(polls) >= 2, "the stream polls while the client listens"
    time.sleep(1.5)
    settled = len(polls)
    time.sleep(1.5)
    assert len(polls) == settled, "no more polls once the client has gone"


def test_access_is_checked_like_the_job_page(jobs: Jobs) -> None:
    with _open(jobs.api, jobs.lei, prisons=("MDI",)) as response:
        assert response.status_code == 404
    facilities = jobs.api.get(f"/jobs/{jobs.mdi}/events", role="facilities")
    assert facilities.status_code == 403
    anonymous = jobs.api.client.get(f"/jobs/{jobs.mdi}/events", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/sign-in")
    with _open(jobs.api, 999_999) as response:
        assert response.status_code == 404
