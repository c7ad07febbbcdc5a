"""`estate bench pages` at a small scale: seeds, signs in, and times every page it knows."""

from __future__ import annotations

from sqlalchemy import func, select

from fleet.bench.pages import run_pages_bench
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from fleet.settings import Settings


def test_pages_bench_seeds_the_estate_and_times_each_page(pg_url: str) -> None:
    settings = Settings(database_url=pg_url, profile="test")
    lines: list[str] = []
    timings = run_pages_bench(settings, prisons=3, devices=300, requests=5, progress=lines.append)
    assert [t.page for t in timings] == [
        "Estate overview",
        "Estate overview, sorted",
        "Prison page",
        "Device list, filtered",
        "Device list, search",
        "Device page",
    ]
    assert all(0 < t.p50_ms <= t.p95_ms for t in timings)
    assert all(t.requests == 5 for t in timings)
    assert any(line.startswith("devices: 300/300") for line in lines)
    ctx = Context(settings)
    try:
        with transaction(ctx.sessions) as session:
            devices = session.scalar(select(func.count()).select_from(Device))
            states = session.scalar(select(func.count()).select_from(DeviceState))
            prisons = session.scalar(select(func.count(func.distinct(Device.prison_code))))
        assert devices == 300
        assert prisons == 3
        assert 0 < (states or 0) <= 300  # registered devices have not reported yet
    finally:
        ctx.close()
    again = run_pages_bench(settings, prisons=3, devices=300, requests=5, progress=lines.append)
    assert len(again) == 6
    assert "reusing the 300 bench devices already in the database" in lines
