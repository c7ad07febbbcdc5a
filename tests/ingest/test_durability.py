"""Nothing is lost or doubled when the TSDB goes away or ingest is killed mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import DeviceState
from tests.ingest.conftest import (
    MQTT_URL,
    Publisher,
    add_devices,
    health,
    ingest_overrides,
    running_pipeline,
    state_of,
    unique,
    wait_for,
)
from tests.services.postgres import migrated_context
from tests.services.victoria import VictoriaServer, free_port


def test_tsdb_outage_spools_then_replays_in_order(
    pg_url: str, tmp_path: Path, own_victoria: VictoriaServer, root: str, publisher: Publisher
) -> None:
    ctx = migrated_context(
        pg_url, data_dir=tmp_path, tsdb_url=own_victoria.url, **ingest_overrides()
    )
    (device,) = add_devices(ctx, 1)
    base = time.time() - 100
    spool = tmp_path / "tsdb-spool"
    try:
        with running_pipeline(ctx, root, tsdb_retry_s=0.5) as running:
            publisher.send(device, "health", health(1, ts=base, battery=90))
            wait_for(lambda: running.metric("estate_ingest_tsdb_lines_total") == 1, what="line")
            own_victoria.stop()
            for seq in range(2, 7):
                publisher.send(device, "health", health(seq, ts=base + seq, battery=90 - seq))
            # State is still written and the reports acknowledged: the lines wait on disk.
            wait_for(lambda: state_of(ctx, device).seq == 6, what="state despite the outage")
            wait_for(lambda: running.metric("estate_ingest_tsdb_spool_files") >= 1, what="spool")
            assert list(spool.glob("*.lp"))
            assert running.metric("estate_ingest_tsdb_write_failures_total") >= 1
            own_victoria.start()
            wait_for(
                lambda: running.metric("estate_ingest_tsdb_spool_files") == 0,
                what="the spool replayed",
                timeout_s=15,
            )
        assert not list(spool.glob("*.lp"))
        own_victoria.wait_ingested(5)  # counted since the restart
        (series,) = own_victoria.export(f'{{__name__="device_health_battery",device="{device}"}}')
        assert series["timestamps"] == [int((base + s) * 1000) for s in [0, 2, 3, 4, 5, 6]]
        assert series["values"] == [90, 88, 87, 86, 85, 84]
    finally:
        ctx.close()


class IngestProcess:
    """`estate ingest` as a child process, so it can be killed like a crashed server."""

    def __init__(self, ctx: Context, root: str, log: Path) -> None:
        settings = ctx.settings
        self.env = {
            **os.environ,
            "ESTATE_PROFILE": "test",
            "ESTATE_DATABASE_URL": settings.effective_database_url,
            "ESTATE_MQTT_URL": MQTT_URL,
            "ESTATE_TSDB_URL": settings.tsdb_url,
            "ESTATE_DATA_DIR": str(settings.data_dir),
            "ESTATE_MQTT_SHARED_GROUP": settings.mqtt_shared_group,
            "ESTATE_INGEST_BATCH_MS": "50",
        }
        self.metrics_port = free_port()
        self.args = [
            sys.executable,
            "-c",
            "from fleet.cli import main; main()",
            "ingest",
            "--client-id",
            unique("ingest-kill-"),
            "--topic-root",
            root,
            "--session-expiry",
            "300",
            "--metrics-port",
            str(self.metrics_port),
        ]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(30)


class Stream:
    """Publishes seq 1..per_device for each device, round robin, pausable, at a steady rate."""

    def __init__(self, publisher: Publisher, devices: list[str], per_device: int, rate: float):
        self.publisher = publisher
        self.devices = devices
        self.per_device = per_device
        self.rate = rate
        self.sent = 0
        self.base = time.time() - 3600
        self.pause_at: int | None = None
        self.resume = threading.Event()
        self.infos: list[object] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def ts(self, seq: int) -> float:
        return self.base + seq

    def _run(self) -> None:
        started = time.monotonic()
        for seq in range(1, self.per_device + 1):
            for device in self.devices:
                if self.sent == self.pause_at:
                    self.resume.wait(60)
                info = self.publisher.raw(
                    f"estate/v1/dev/{device}/health",
                    health(seq, ts=self.ts(seq), battery=seq % 100, cpu=1),
                    wait=False,
                )
                self.infos.append(info)
                self.sent += 1
                delay = started + self.sent / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


@pytest.fixture
def watched_seqs(pg_tsdb: Context) -> Iterator[list[str]]:
    """Regressions of device_state.seq seen by polling while the test runs."""
    regressions: list[str] = []
    stop = threading.Event()
    last: dict[str, int] = {}

    def _watch() -> None:
        while not stop.wait(0.02):
            with transaction(pg_tsdb.sessions) as session:
                for device_id, seq in session.execute(
                    select(DeviceState.device_id, DeviceState.seq)
                ):
                    if seq < last.get(device_id, -1):
                        regressions.append(f"{device_id}: {last[device_id]} -> {seq}")
                    last[device_id] = seq

    thread = threading.Thread(target=_watch, daemon=True)
    thread.start()
    yield regressions
    stop.set()
    thread.join(5)


def test_sigkill_mid_stream_loses_and_doubles_nothing(
    pg_tsdb: Context,
    root: str,
    publisher: Publisher,
    victoria_server: VictoriaServer,
    tmp_path: Path,
    watched_seqs: list[str],
) -> None:
    devices = add_devices(pg_tsdb, 10)
    per_device = 200
    ingest = IngestProcess(pg_tsdb, root, tmp_path / "ingest.log")
    ingest.start()
    # A first report, repeated until ingest has subscribed (the same report is stored once).
    probe_ts = float(int(time.time()) - 7200)
    probe = health(0, ts=probe_ts, battery=0, cpu=1)

    def _probe_seen() -> bool:
        publisher.send(devices[0], "health", probe)
        return state_of(pg_tsdb, devices[0]).seq == 0

    wait_for(_probe_seen, timeout_s=30, what="ingest to start")
    stream = Stream(publisher, devices, per_device, rate=1000)
    stream.pause_at = 1200
    stream.thread.start()
    wait_for(lambda: stream.sent >= 600, what="600 reports sent")
    ingest.kill()
    seqs_at_kill = [state_of(pg_tsdb, d).seq for d in devices]
    assert min(seqs_at_kill) > 0
    assert max(seqs_at_kill) < per_device
    wait_for(lambda: stream.sent >= 1200, what="reports published while ingest is down")
    ingest.start()
    wait_for(lambda: state_of(pg_tsdb, devices[-1]).seq >= 120, timeout_s=30, what="the backlog")
    stream.resume.set()
    stream.thread.join(60)
    wait_for(
        lambda: all(state_of(pg_tsdb, d).seq == per_device for d in devices),
        timeout_s=30,
        what="every device's last report",
    )
    metrics = httpx.get(f"http://127.0.0.1:{ingest.metrics_port}/metrics", timeout=5).text
    assert 'estate_ingest_messages_written_total{channel="health"}' in metrics
    assert ingest.terminate() == 0  # SIGTERM: finishes the batch in hand and exits cleanly

    assert watched_seqs == []
    # Every report is in the TSDB exactly once: 200 per device, 201 for the probed device.
    victoria_server.settle()
    for index, device in enumerate(devices):
        expected = [int(stream.ts(seq) * 1000) for seq in range(1, per_device + 1)]
        if index == 0:
            expected.insert(0, int(probe_ts * 1000))
        assert _history_of(victoria_server, device, expected) == expected


def _history_of(server: VictoriaServer, device: str, expected: list[int]) -> list[int]:
    """The device's sample timestamps, re-read for a while until they match `expected`."""
    match = f'{{__name__="device_health_cpu",device="{device}"}}'
    deadline = time.monotonic() + 20
    while True:
        series = server.export(match)
        history = list(series[0]["timestamps"]) if series else []
        if history == expected or time.monotonic() > deadline:
            return history
        time.sleep(0.5)
