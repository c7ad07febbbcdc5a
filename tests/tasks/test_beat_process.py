"""A real `estate beat` process sends the silent-device sweep to Redis on its interval."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from fleet.tasks.app import DEFAULT_QUEUE
from fleet.tasks.devices import SWEEP_SILENT
from tests.deploy.processes import estate_env, running_estate

REDIS_URL = "redis://127.0.0.1:6379/15"


def _sent_by(client: redis.Redis, pid: int) -> list[str]:
    """Messages in the default queue that this beat process sent (others may share the queue)."""
    origin = f"gen{pid}@"
    raws: list[Any] = client.lrange(DEFAULT_QUEUE, 0, -1)
    return [
        raw.decode()
        for raw in raws
        if json.loads(raw)["headers"].get("origin", "").startswith(origin)
    ]


def test_beat_sends_the_sweep_on_its_interval(tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    schedule = tmp_path / "beat" / "schedule"
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(tmp_path),
        ESTATE_CELERY_BROKER_URL=REDIS_URL,
        ESTATE_SWEEP_INTERVAL_S="1",
    )
    pid = 0
    try:
        args = ["beat", "--schedule-file", str(schedule)]
        with running_estate(args, env, tmp_path / "beat.log") as beat:
            pid = beat.process.pid
            sent: list[str] = []
            deadline = time.monotonic() + 20
            while len(sent) < 2 and time.monotonic() < deadline and not beat.exited():
                time.sleep(0.25)
                sent = _sent_by(client, pid)
            log = beat.output()
        assert len(sent) >= 2, f"beat sent {len(sent)} sweep(s) in 20 s; its log:\n{log}"
        headers = [json.loads(raw)["headers"] for raw in sent]
        assert {h["task"] for h in headers} == {SWEEP_SILENT}
        assert all(h["expires"] for h in headers), "an unrun sweep must expire, not pile up"
        assert list(schedule.parent.iterdir()), "beat keeps its schedule in --schedule-file"
    finally:
        if pid:  # leave nothing this beat sent for another test's worker to pick up
            for raw in _sent_by(client, pid):
                client.lrem(DEFAULT_QUEUE, 1, raw)
        client.close()
