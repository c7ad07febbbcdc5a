"""`estate ingest` and `estate beat` write JSON log lines when ESTATE_LOG_FORMAT=json."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from fleet.context import Context
from fleet.tasks.app import DEFAULT_QUEUE
from tests.deploy.processes import EstateProcess, estate_env, running_estate

REDIS_URL = "redis://127.0.0.1:6379/15"
MQTT_URL = "mqtt://127.0.0.1:1883"


def _json_lines_once(process: EstateProcess, wanted: str, timeout_s: float = 30) -> list[Any]:
    """Every JSON line the process wrote, once one of them contains `wanted`."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = process.output(lines=500).splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        if any(wanted in record["message"] for record in records):
            return records
        if process.exited() or time.monotonic() > deadline:
            pytest.fail(f"no JSON log line containing {wanted!r}:\n{process.output()}")
        time.sleep(0.2)


def test_ingest_logs_json(pg_context: Context, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(tmp_path),
        ESTATE_DATABASE_URL=pg_context.settings.database_url,
        ESTATE_MQTT_URL=MQTT_URL,
        ESTATE_MQTT_SHARED_GROUP=f"ops-logs-{tag}",
        ESTATE_LOG_FORMAT="json",
    )
    # A topic root of its own, so it never takes reports meant for another test's ingest.
    args = ["ingest", "--client-id", f"ops-logs-{tag}", "--topic-root", f"ops-{tag}/"]
    args += ["--session-expiry", "0"]
    with running_estate(args, env, tmp_path / "ingest.log") as ingest:
        records = _json_lines_once(ingest, "ingest starting")
    started = next(r for r in records if "ingest starting" in r["message"])
    assert started["logger"] == "fleet.ingest.cli"
    assert started["process"] == ingest.process.pid
    assert {"ts", "level", "logger", "message", "process"} <= set(started)


def test_beat_logs_json(tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(tmp_path),
        ESTATE_CELERY_BROKER_URL=REDIS_URL,
        ESTATE_SWEEP_INTERVAL_S="3600",  # starts and logs, but sends nothing while tested
        ESTATE_LOG_FORMAT="json",
    )
    args = ["beat", "--schedule-file", str(tmp_path / "beat" / "schedule")]
    pid = 0
    try:
        with running_estate(args, env, tmp_path / "beat.log") as beat:
            pid = beat.process.pid
            records = _json_lines_once(beat, "beat: Starting")
    finally:
        if pid:
            _remove_sent_by(client, pid)
        client.close()
    starting = next(r for r in records if "beat: Starting" in r["message"])
    assert starting["logger"] == "celery.beat"
    assert starting["level"] == "INFO"


def _remove_sent_by(client: redis.Redis, pid: int) -> None:
    """Leave nothing this beat sent for another test's worker to pick up."""
    raws: list[Any] = client.lrange(DEFAULT_QUEUE, 0, -1)
    for raw in raws:
        if json.loads(raw)["headers"].get("origin", "").startswith(f"gen{pid}@"):
            client.lrem(DEFAULT_QUEUE, 1, raw)
