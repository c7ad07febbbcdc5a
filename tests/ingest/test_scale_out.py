"""Two `estate ingest` processes in one shared subscription split the stream exactly."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import DeviceState, HealthSample
from tests.ingest.conftest import (
    Publisher,
    add_devices,
    health,
    ingest_overrides,
    state_of,
    wait_for,
)
from tests.ingest.test_durability import IngestProcess, _history_of
from tests.services.postgres import migrated_context
from tests.services.victoria import VictoriaServer

RECEIVED = 'estate_ingest_messages_received_total{channel="health"}'
LINES = "estate_ingest_tsdb_lines_total"
STALE = 'estate_ingest_messages_rejected_total{reason="stale_seq"}'


def _counters(process: IngestProcess) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=5).text
    wanted = {RECEIVED, LINES, STALE}
    values = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


def _settled(processes: list[IngestProcess]) -> list[dict[str, float]]:
    """Each process's counters once two readings half a second apart agree."""
    readings = [_counters(p) for p in processes]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = [_counters(p) for p in processes]
        if again == readings:
            return again
        readings = again
    pytest.fail(f"ingest counters still moving after 30s: {readings}")


def _start_both(
    ctx: Context, root: str, tmp_path: Path, publisher: Publisher, device: str
) -> tuple[list[IngestProcess], float]:
    """Two ingest processes in the context's shared group; returns them and the probe's ts."""
    processes = [IngestProcess(ctx, root, tmp_path / f"ingest-{n}.log") for n in (1, 2)]
    for n, process in enumerate(processes, 1):
        process.env["ESTATE_DATA_DIR"] = str(tmp_path / f"ingest-{n}")  # a TSDB spool each
        process.start()
    # The same old report, repeated until both have subscribed and had a share of it.
    probe_ts = float(int(time.time()) - 7200)
    probe = health(0, ts=probe_ts, cpu=1)

    def _both_receiving() -> bool:
        publisher.send(device, "health", probe)
        try:
            return all(_counters(p)[RECEIVED] > 0 for p in processes)
        except httpx.HTTPError:
            return False  # not serving /metrics yet

    try:
        # Generous: two interpreters starting on a busy two-core machine.
        wait_for(_both_receiving, timeout_s=60, what="both ingest processes to receive reports")
    except BaseException:
        _stop_all(processes)
        raise
    return processes, probe_ts


def _stop_all(processes: list[IngestProcess]) -> list[int | None]:
    """SIGTERM each (exit code), or SIGKILL one that does not stop within 30s (None)."""
    exits: list[int | None] = []
    for process in processes:
        try:
            exits.append(process.terminate())
        except subprocess.TimeoutExpired:
            process.kill()
            exits.append(None)
    return exits


def _stream(publisher: Publisher, devices: list[str], per_device: int, base: float) -> int:
    infos = [
        publisher.raw(f"estate/v1/dev/{d}/health", health(seq, ts=base + seq, cpu=seq), wait=False)
        for seq in range(1, per_device + 1)
        for d in devices
    ]
    for info in infos:
        info.wait_for_publish(30)
    return len(infos)


def _delivered(
    before: list[dict[str, float]], after: list[dict[str, float]], key: str
) -> list[int]:
    return [int(a[key] - b[key]) for a, b in zip(after, before, strict=True)]


def test_two_processes_split_the_load_with_nothing_lost_or_doubled(
    pg_tsdb: Context,
    root: str,
    publisher: Publisher,
    victoria_server: VictoriaServer,
    tmp_path: Path,
) -> None:
    devices = add_devices(pg_tsdb, 20)
    per_device = 60
    processes, probe_ts = _start_both(pg_tsdb, root, tmp_path, publisher, devices[0])
    try:
        before = _settled(processes)
        base = time.time() - 3600
        published = _stream(publisher, devices, per_device, base)
        wait_for(
            lambda: all(state_of(pg_tsdb, d).seq == per_device for d in devices),
            timeout_s=30,
            what="every device's last report in device_state",
        )
        after = _settled(processes)
    finally:
        exits = _stop_all(processes)
    assert exits == [0, 0]

    received = _delivered(before, after, RECEIVED)
    assert sum(received) == published == 1200  # each report went to exactly one process
    assert min(received) >= published // 5, f"the broker did not split the load: {received}"
    assert sum(_delivered(before, after, LINES)) == published  # one TSDB line per report
    assert _delivered(before, after, STALE) == [0, 0]  # no redelivery, no out-of-order write

    victoria_server.settle()
    probe_ms = int(probe_ts * 1000)
    for index, device in enumerate(devices):
        expected = [int((base + seq) * 1000) for seq in range(1, per_device + 1)]
        if index == 0:
            expected.insert(0, probe_ms)
        assert _history_of(victoria_server, device, expected) == expected


def test_two_processes_without_a_tsdb_keep_every_sample_once(
    pg_url: str, tmp_path: Path, root: str, publisher: Publisher
) -> None:
    ctx = migrated_context(pg_url, data_dir=tmp_path, **ingest_overrides())
    try:
        devices = add_devices(ctx, 10)
        per_device = 50
        processes, _probe_ts = _start_both(ctx, root, tmp_path, publisher, devices[0])
        try:
            before = _settled(processes)
            published = _stream(publisher, devices, per_device, time.time() - 3600)
            wait_for(
                lambda: all(state_of(ctx, d).seq == per_device for d in devices),
                timeout_s=30,
                what="every device's last report in device_state",
            )
            after = _settled(processes)
        finally:
            exits = _stop_all(processes)
        assert exits == [0, 0]
        received = _delivered(before, after, RECEIVED)
        assert sum(received) == published == 500
        assert min(received) >= published // 5, f"the broker did not split the load: {received}"
        with transaction(ctx.sessions) as session:
            samples = session.scalar(
                select(func.count()).select_from(HealthSample).where(HealthSample.seq >= 1)
            )
            seqs = dict(session.execute(select(DeviceState.device_id, DeviceState.seq)).all())
        assert samples == published
        assert seqs == dict.fromkeys(devices, per_device)
    finally:
        ctx.close()
