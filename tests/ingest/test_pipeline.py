"""Reports flow from Mosquitto into device_state and the time series (TSDB or health_sample)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import DeviceEvent, HealthSample
from fleet.ingest.history import query_health
from tests.ingest.conftest import (
    PRISON,
    Publisher,
    add_devices,
    health,
    running_pipeline,
    state_of,
    utc,
    wait_for,
)
from tests.services.victoria import VictoriaServer


def test_health_report_updates_state_and_tsdb(
    pg_tsdb: Context, root: str, publisher: Publisher, victoria_server: VictoriaServer
) -> None:
    (device,) = add_devices(pg_tsdb, 1)
    sent_at = time.time() - 1
    samples_before = victoria_server.rows_added()
    with running_pipeline(pg_tsdb, root) as running:
        started = time.monotonic()
        publisher.send(device, "health", health(7, ts=sent_at, battery=15.0, cpu=12.5, storage=40))
        row = wait_for(
            lambda: (s := state_of(pg_tsdb, device)).seq == 7 and s,
            timeout_s=2.0,
            what="device_state to show seq 7",
        )
        assert time.monotonic() - started < 2.0
        wait_for(
            lambda: running.metric("estate_ingest_messages_written_total", channel="health") == 1,
            what="the report counted as written",
        )

    assert row.online is True
    assert row.state == "online"
    assert row.metrics == {"battery": 15.0, "cpu": 12.5, "storage": 40.0}
    assert row.battery == 15.0
    assert row.health == "warning"  # battery under 20 %
    assert row.last_report_ts == utc(sent_at)
    assert row.last_seen is not None
    assert row.last_seen >= row.last_report_ts
    with transaction(pg_tsdb.sessions) as session:
        kinds = session.scalars(select(DeviceEvent.kind).where(DeviceEvent.device_id == device))
        assert list(kinds) == ["online"]

    victoria_server.wait_ingested(samples_before + 3)
    series = victoria_server.export(f'{{__name__="device_health_battery",device="{device}"}}')
    assert len(series) == 1
    assert series[0]["metric"] == {
        "__name__": "device_health_battery",
        "device": device,
        "prison": PRISON,
        "kind": "tablet",
    }
    assert series[0]["values"] == [15.0]
    assert series[0]["timestamps"] == [int(sent_at * 1000)]
    assert victoria_server.sample_count(f'{{__name__=~"device_health_.+",device="{device}"}}') == 3


def test_history_from_tsdb_averages_each_step(
    pg_tsdb: Context, root: str, publisher: Publisher, victoria_server: VictoriaServer
) -> None:
    (device,) = add_devices(pg_tsdb, 1)
    samples_before = victoria_server.rows_added()
    base = float(int(time.time()) // 60 * 60 - 600)  # a whole minute, ten minutes ago
    with running_pipeline(pg_tsdb, root) as running:
        for seq, (offset, battery) in enumerate([(5, 80), (20, 60), (65, 50)], start=1):
            publisher.send(device, "health", health(seq, ts=base + offset, battery=battery))
        wait_for(
            lambda: running.metric("estate_ingest_tsdb_lines_total") >= 3,
            what="three lines in the TSDB",
        )
    victoria_server.wait_ingested(samples_before + 3)
    with transaction(pg_tsdb.sessions) as session:
        series = query_health(
            pg_tsdb.settings,
            session=session,
            device_id=device,
            start=utc(base),
            end=utc(base + 120),
            step_s=60,
        )
    assert series["battery"] == [(utc(base + 60), 70.0), (utc(base + 120), 50.0)]


def test_samples_kept_in_sql_without_tsdb(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    (device,) = add_devices(sql_only, 1)
    base = float(int(time.time()) // 60 * 60 - 600)
    with running_pipeline(sql_only, root) as running:
        for seq, (offset, battery) in enumerate([(5, 80), (20, 60), (65, 50)], start=1):
            report = health(seq, ts=base + offset, battery=battery, cpu=5)
            publisher.send(device, "health", report)
        wait_for(lambda: state_of(sql_only, device).seq == 3, what="seq 3 in device_state")
        # The broker redelivering an old report adds nothing to history.
        publisher.send(device, "health", health(2, ts=base + 20, battery=60, cpu=5))
        wait_for(lambda: running.rejected("stale_seq") == 1, what="the stale report counted")

    with transaction(sql_only.sessions) as session:
        rows = session.execute(
            select(HealthSample.seq, HealthSample.ts, HealthSample.metrics)
            .where(HealthSample.device_id == device)
            .order_by(HealthSample.seq)
        ).all()
        assert [(seq, ts, metrics["battery"]) for seq, ts, metrics in rows] == [
            (1, utc(base + 5), 80.0),
            (2, utc(base + 20), 60.0),
            (3, utc(base + 65), 50.0),
        ]
        series = query_health(
            sql_only.settings,
            session=session,
            device_id=device,
            start=utc(base),
            end=utc(base + 120),
            step_s=60,
        )
    assert series["battery"] == [(utc(base + 60), 70.0), (utc(base + 120), 50.0)]
    assert series["cpu"] == [(utc(base + 60), 5.0), (utc(base + 120), 5.0)]


def test_many_devices_in_one_batch_are_written_in_bulk(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    devices = add_devices(sql_only, 50)
    with running_pipeline(sql_only, root) as running:
        for seq in (1, 2):
            for device in devices:
                publisher.send(device, "health", health(seq, battery=50 + seq), wait=False)
        wait_for(
            lambda: running.metric("estate_ingest_messages_written_total", channel="health") == 100,
            what="100 reports written",
        )
        batches = running.metric("estate_ingest_batch_size_count")
    assert batches < 100  # batched, not one write per message
    with transaction(sql_only.sessions) as session:
        count = session.scalar(
            select(func.count())
            .select_from(HealthSample)
            .where(HealthSample.device_id.in_(devices))
        )
    assert count == 100
    assert {state_of(sql_only, d).seq for d in devices} == {2}


def test_history_refuses_too_many_points(sql_only: Context) -> None:
    start = utc(time.time() - 86400 * 30)
    with (
        transaction(sql_only.sessions) as session,
        pytest.raises(ValueError, match=r"more than 11,000: use a step of at least 236 s"),
    ):
        query_health(
            sql_only.settings,
            session=session,
            device_id="x",
            start=start,
            end=start + timedelta(days=30),
            step_s=60,
        )
