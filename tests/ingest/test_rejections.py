"""Bad input is counted by reason, dead-lettered, and never stops the pipeline or touches state."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, HealthSample
from fleet.ingest.models import DeadLetter
from tests.ingest.conftest import (
    Publisher,
    add_devices,
    health,
    ingest_overrides,
    running_pipeline,
    state_of,
    wait_for,
)
from tests.services.postgres import migrated_context


def dead_letters(ctx: Context) -> list[tuple[str, str, bytes]]:
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(DeadLetter.reason, DeadLetter.topic, DeadLetter.payload).order_by(DeadLetter.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_bad_reports_are_counted_dead_lettered_and_harmless(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    device, retired = add_devices(sql_only, 2)
    with transaction(sql_only.sessions) as session:
        session.get_one(Device, retired).lifecycle = "retired"
    now = time.time()
    bad = {
        "malformed_json": (device, b'{"seq": 1, "ts": '),
        "wrong_type": (device, orjson.dumps({"seq": "9", "ts": now, "metrics": {}})),
        "too_large": (device, orjson.dumps({"seq": 9, "ts": now, "metrics": {}, "x": "a" * 70000})),
        "unknown_device": ("no-such-device-x1", health(9)),
        "future_timestamp": (device, health(9, ts=now + 3600)),
        "bad_device_id": ("bad.device!", health(9)),
        "device_not_active": (retired, health(9)),
    }
    with running_pipeline(sql_only, root) as running:
        publisher.send(device, "health", health(5, ts=now - 10, battery=90))
        wait_for(lambda: state_of(sql_only, device).seq == 5, what="the good report")
        for device_id, payload in bad.values():
            publisher.send(device_id, "health", payload)
        publisher.send(device, "health", health(4, ts=now - 20, battery=1))  # seq went backwards
        publisher.send(device, "health", health(6, ts=now - 5, battery=80))
        wait_for(lambda: state_of(sql_only, device).seq == 6, what="the pipeline to carry on")
        wait_for(
            lambda: running.metric("estate_ingest_messages_written_total", channel="health") == 3,
            what="the counters to settle",
        )
        counted = {reason: running.rejected(reason) for reason in [*bad, "stale_seq"]}

    assert counted == dict.fromkeys([*bad, "stale_seq"], 1.0)
    letters = dead_letters(sql_only)
    assert sorted(reason for reason, _, _ in letters) == sorted(bad)
    by_reason = {reason: (topic, payload) for reason, topic, payload in letters}
    assert by_reason["malformed_json"] == (f"estate/v1/dev/{device}/health", b'{"seq": 1, "ts": ')
    assert len(by_reason["too_large"][1]) == 4096  # kept truncated
    row = state_of(sql_only, device)
    assert (row.seq, row.battery) == (6, 80.0)  # the stale report never reached latest state
    with transaction(sql_only.sessions) as session:
        seqs = session.scalars(
            select(HealthSample.seq).where(HealthSample.device_id == device).order_by("seq")
        )
        assert list(seqs) == [4, 5, 6]  # but it is history, kept once
    assert state_of(sql_only, retired).seq == -1


def test_topic_outside_the_protocol_is_refused(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    (device,) = add_devices(sql_only, 1)
    with running_pipeline(sql_only, root) as running:
        # Matches the subscription's single-level wildcard, but is no device id at all.
        publisher.raw("estate/v1/dev/a b c/health", health(1))
        publisher.send(device, "health", health(1))
        wait_for(lambda: state_of(sql_only, device).seq == 1, what="the good report")
        wait_for(lambda: running.rejected("bad_device_id") == 1, what="the bad topic counted")
    assert [reason for reason, _, _ in dead_letters(sql_only)] == ["bad_device_id"]


def test_dead_letter_store_stays_bounded(
    tmp_path: object, pg_url: str, root: str, publisher: Publisher
) -> None:
    ctx = migrated_context(pg_url, data_dir=tmp_path, **ingest_overrides(dead_letter_max=10))
    try:
        with running_pipeline(ctx, root) as running:
            for n in range(25):
                publisher.send(f"ghost-{n:02d}", "health", health(n))
            wait_for(lambda: running.rejected("unknown_device") == 25, what="25 refusals")
            wait_for(lambda: running.metric("estate_ingest_dead_letters_total") == 25, what="DLs")
        with transaction(ctx.sessions) as session:
            assert session.scalar(select(func.count()).select_from(DeadLetter)) == 10
            kept = session.scalars(select(DeadLetter.topic).order_by(DeadLetter.id))
            assert list(kept) == [f"estate/v1/dev/ghost-{n:02d}/health" for n in range(15, 25)]
    finally:
        ctx.close()
