"""Birth, will and shutdown messages; late wills; the sweeper for silent devices."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import DeviceEvent, DeviceState
from fleet.ingest.service import mark_silent_devices
from tests.ingest.conftest import (
    Publisher,
    add_devices,
    health,
    ingest_overrides,
    running_pipeline,
    state,
    state_of,
    wait_for,
)
from tests.services.postgres import migrated_context


def events_of(ctx: Context, device_id: str) -> list[tuple[str, dict[str, object]]]:
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(DeviceEvent.kind, DeviceEvent.detail)
            .where(DeviceEvent.device_id == device_id)
            .order_by(DeviceEvent.id)
        )
        return [(kind, detail) for kind, detail in rows]


def test_late_will_from_an_older_boot_is_ignored(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    (device,) = add_devices(sql_only, 1)
    now = time.time()
    with running_pipeline(sql_only, root) as running:
        publisher.send(device, "state", state("online", boot=3, ts=now - 30))
        wait_for(lambda: state_of(sql_only, device).state == "online", what="the birth")
        # The will of boot 2 arrives after boot 3's birth (broker noticed the old session late).
        publisher.send(device, "state", state("lost", boot=2, ts=now - 20))
        wait_for(lambda: running.rejected("stale_state") == 1, what="the late will counted")
        assert state_of(sql_only, device).online is True
        # Boot 3's own will does take the device down.
        # (its timestamp is from connect time, a little before the birth's)
        publisher.send(device, "state", state("lost", boot=3, ts=now - 31))
        wait_for(lambda: state_of(sql_only, device).state == "lost", what="the real will")
        publisher.send(device, "state", state("online", boot=4, ts=now - 5))
        wait_for(lambda: state_of(sql_only, device).boot == 4, what="the next birth")

    row = state_of(sql_only, device)
    assert (row.online, row.state, row.agent_version) == (True, "online", "1.0.0")
    assert [kind for kind, _ in events_of(sql_only, device)] == ["online", "lost", "online"]
    assert running.rejected("stale_state") == 1


def test_health_after_shutdown_does_not_revive_but_newer_health_does(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    (device,) = add_devices(sql_only, 1)
    now = time.time()
    with running_pipeline(sql_only, root):
        publisher.send(device, "state", state("online", boot=1, ts=now - 60))
        publisher.send(device, "state", state("offline", boot=1, ts=now - 30))
        wait_for(lambda: state_of(sql_only, device).state == "offline", what="the shutdown")
        publisher.send(device, "health", health(1, ts=now - 40))  # sent before the shutdown
        wait_for(lambda: state_of(sql_only, device).seq == 1, what="the old report")
        assert state_of(sql_only, device).online is False
        publisher.send(device, "health", health(2, ts=now - 1))
        wait_for(lambda: state_of(sql_only, device).online, what="a fresh report")
    assert [kind for kind, _ in events_of(sql_only, device)] == ["online", "offline", "online"]


def test_sweeper_marks_silent_devices_lost_once(sql_only: Context) -> None:
    silent, fresh, offline = add_devices(sql_only, 3)
    now = utcnow()
    with transaction(sql_only.sessions) as session:
        for device_id, online, seen in [
            (silent, True, now - timedelta(seconds=600)),
            (fresh, True, now - timedelta(seconds=10)),
            (offline, False, now - timedelta(seconds=600)),
        ]:
            session.execute(
                update(DeviceState)
                .where(DeviceState.device_id == device_id)
                .values(online=online, state="online" if online else "offline", last_seen=seen)
            )
    with transaction(sql_only.sessions) as session:
        assert mark_silent_devices(session=session, now=now, offline_after_s=180) == 1
    with transaction(sql_only.sessions) as session:
        assert mark_silent_devices(session=session, now=now, offline_after_s=180) == 0

    row = state_of(sql_only, silent)
    assert (row.online, row.state) == (False, "lost")
    assert state_of(sql_only, fresh).online is True
    assert state_of(sql_only, offline).state == "offline"
    ((kind, detail),) = events_of(sql_only, silent)
    assert kind == "silent"
    assert detail["offline_after_s"] == 180
    assert events_of(sql_only, fresh) == []


def test_ingest_runs_the_sweeper(
    pg_url: str, tmp_path: Path, root: str, publisher: Publisher
) -> None:
    overrides = ingest_overrides(sweep_interval_s=1, offline_after_s=10)
    ctx = migrated_context(pg_url, data_dir=tmp_path, **overrides)
    (device,) = add_devices(ctx, 1)
    birth = state("online", boot=1, ts=time.time() - 60)
    try:
        with running_pipeline(ctx, root) as running:
            publisher.send(device, "state", birth)
            wait_for(lambda: state_of(ctx, device).online, what="the device online")
            with transaction(ctx.sessions) as session:
                session.execute(
                    update(DeviceState)
                    .where(DeviceState.device_id == device)
                    .values(last_seen=utcnow() - timedelta(seconds=60))
                )
            wait_for(lambda: not state_of(ctx, device).online, what="the sweeper")
            wait_for(
                lambda: running.metric("estate_ingest_devices_marked_silent_total") == 1,
                what="the sweep counted",
            )
            # The broker handing the old (retained) birth out again does not revive it...
            publisher.send(device, "state", birth)
            wait_for(lambda: running.rejected("stale_state") == 1, what="the old birth ignored")
            assert state_of(ctx, device).state == "lost"
            # ...a report made after the sweep does.
            publisher.send(device, "health", health(1))
            wait_for(lambda: state_of(ctx, device).online, what="the device back")
        kinds = [kind for kind, _ in events_of(ctx, device)]
        assert kinds == ["online", "silent", "online"]
    finally:
        ctx.close()
