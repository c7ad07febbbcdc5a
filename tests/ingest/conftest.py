"""Ingest tests: real PostgreSQL (or SQLite), the local Mosquitto, a real VictoriaMetrics.

Each test isolates itself on the shared broker with its own topic root, shared-subscription
group and device ids, so tests (and other users of the broker) never see each other's reports.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from fleet.ingest.metrics import IngestMetrics
from fleet.ingest.pipeline import IngestPipeline, PipelineOptions
from tests.services.postgres import migrated_context

MQTT_HOST = os.environ.get("ESTATE_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("ESTATE_TEST_MQTT_PORT", "1883"))
MQTT_URL = f"mqtt://{MQTT_HOST}:{MQTT_PORT}"
PRISON = "MDI"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def ingest_overrides(**overrides: Any) -> dict[str, Any]:
    """Settings overrides every ingest test shares (fast batches, isolated shared group)."""
    base: dict[str, Any] = {
        "mqtt_url": MQTT_URL,
        "mqtt_shared_group": unique("g"),
        "ingest_batch_ms": 50,
    }
    base.update(overrides)
    return base


def add_devices(
    ctx: Context, count: int, *, prefix: str | None = None, lifecycle: str = "enrolled"
) -> list[str]:
    """Create devices in PRISON with an empty state row; returns their ids."""
    prefix = prefix or unique("t")
    ids = [f"{prefix}-{i:03d}" for i in range(count)]
    with transaction(ctx.sessions) as session:
        for device_id in ids:
            session.add(
                Device(
                    id=device_id,
                    serial=f"SN-{device_id}",
                    kind="tablet",
                    prison_code=PRISON,
                    lifecycle=lifecycle,
                )
            )
        session.flush()
        for device_id in ids:
            session.add(DeviceState(device_id=device_id))
    return ids


def state_of(ctx: Context, device_id: str) -> DeviceState:
    with transaction(ctx.sessions) as session:
        row = session.scalars(select(DeviceState).where(DeviceState.device_id == device_id)).one()
        session.expunge(row)
        return row


def wait_for(check: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def health(seq: int, ts: float | None = None, **metrics: float) -> bytes:
    return orjson.dumps(
        {"seq": seq, "ts": time.time() if ts is None else ts, "metrics": metrics or {"cpu": 5}}
    )


def state(name: str, boot: int, ts: float | None = None) -> bytes:
    return orjson.dumps(
        {"state": name, "boot": boot, "agent": "1.0.0", "ts": time.time() if ts is None else ts}
    )


class Publisher:
    """A plain MQTT 5 client publishing under a topic root, waiting for each PUBACK."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=unique("pub-"),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect(MQTT_HOST, MQTT_PORT)
        self.client.loop_start()

    def send(self, device_id: str, channel: str, payload: bytes, *, wait: bool = True) -> None:
        self.raw(f"estate/v1/dev/{device_id}/{channel}", payload, wait=wait)

    def raw(self, topic: str, payload: bytes, *, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(self.root + topic, payload, qos=1)
        if wait:
            info.wait_for_publish(10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class RunningPipeline:
    pipeline: IngestPipeline
    registry: CollectorRegistry
    root: str

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def rejected(self, reason: str) -> float:
        return self.metric("estate_ingest_messages_rejected_total", reason=reason)


@contextmanager
def running_pipeline(ctx: Context, root: str, **options: Any) -> Iterator[RunningPipeline]:
    """An IngestPipeline on a thread, subscribed under `root`, stopped gracefully after."""
    registry = CollectorRegistry()
    pipeline = IngestPipeline(
        ctx,
        PipelineOptions(
            client_id=unique("ingest-"),
            shared=True,
            topic_root=root,
            session_expiry_s=60,
            **options,
        ),
        metrics=IngestMetrics(registry),
    )
    errors: list[BaseException] = []

    def _run() -> None:
        try:
            pipeline.run()
        except BaseException as exc:
            errors.append(exc)
            raise

    thread = threading.Thread(target=_run, name="ingest-under-test", daemon=True)
    thread.start()
    if not pipeline.wait_ready(10):
        pipeline.stop()
        pytest.fail(f"ingest did not subscribe on {MQTT_URL} within 10s")
    try:
        yield RunningPipeline(pipeline, registry, root)
    finally:
        pipeline.stop()
        thread.join(30)
        assert not thread.is_alive(), "ingest did not stop within 30s of stop()"
        assert not errors, f"ingest thread failed: {errors[0]!r}"


@pytest.fixture
def root() -> str:
    """A topic root no other test (or broker user) publishes under."""
    return unique("test-") + "/"


@pytest.fixture
def publisher(root: str) -> Iterator[Publisher]:
    pub = Publisher(root)
    yield pub
    pub.close()


@pytest.fixture
def pg_tsdb(pg_url: str, tmp_path: Path, victoria: str) -> Iterator[Context]:
    """PostgreSQL at head plus the session's VictoriaMetrics."""
    ctx = migrated_context(pg_url, data_dir=tmp_path, tsdb_url=victoria, **ingest_overrides())
    yield ctx
    ctx.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_only(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    """No TSDB: health history in health_sample, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'estate.db'}"
        ctx = migrated_context(url, data_dir=tmp_path, **ingest_overrides())
        yield ctx
        ctx.close()
        return
    pg_url = request.getfixturevalue("pg_url")
    ctx = migrated_context(pg_url, data_dir=tmp_path, **ingest_overrides())
    yield ctx
    ctx.close()


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
