"""The benchmark's footprint in the stores: its devices, and counting their health history."""

from __future__ import annotations

import time

import httpx
import orjson
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import ProgrammingError

from fleet.bench.database import BenchError
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceEvent, DeviceState, HealthSample
from fleet.estate.models import Prison
from fleet.ingest.directory import LOOKUP_CHUNK
from fleet.settings import Settings

INDEX_DELAY_S = 15.0


def chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + LOOKUP_CHUNK] for i in range(0, len(ids), LOOKUP_CHUNK)]


def create_devices(ctx: Context, ids: list[str], prison: str) -> None:
    with transaction(ctx.sessions) as session:
        try:
            known = session.get(Prison, prison)
        except ProgrammingError as exc:
            raise BenchError(
                "the configured database has no Estate schema: run `estate db upgrade` "
                "with the same ESTATE_DATABASE_URL first"
            ) from exc
        if known is None:
            raise BenchError(f"prison {prison} is not in the database: run `estate db upgrade`")
        session.execute(
            insert(Device),
            [
                {"id": d, "serial": f"SN-{d}", "kind": "tablet", "prison_code": prison}
                | {"lifecycle": "enrolled", "hostname": d}
                for d in ids
            ],
        )
        session.execute(insert(DeviceState), [{"device_id": d} for d in ids])


def remove_devices(ctx: Context, ids: list[str]) -> None:
    with transaction(ctx.sessions) as session:
        for chunk in chunks(ids):
            for table in (DeviceEvent, HealthSample, DeviceState):
                session.execute(delete(table).where(table.device_id.in_(chunk)))
            session.execute(delete(Device).where(Device.id.in_(chunk)))


def count_history(
    settings: Settings, ctx: Context, ids: list[str], *, warm_ts: float, expected: int
) -> int:
    """Distinct reports (the warm-up report excluded) that reached the health history."""
    if not settings.tsdb_url:
        with transaction(ctx.sessions) as session:
            return sum(
                session.scalar(
                    select(func.count()).where(
                        HealthSample.device_id.in_(chunk), HealthSample.seq >= 1
                    )
                )
                or 0
                for chunk in chunks(ids)
            )
    base = settings.tsdb_url.rstrip("/")
    _settle_victoria(base)
    # VictoriaMetrics makes new series searchable some seconds after storing their samples,
    # and an export before then caches the partial answer for a while: wait, then re-ask
    # until the count stops moving.
    time.sleep(INDEX_DELAY_S)
    deadline = time.monotonic() + 90
    previous, unchanged = -1, 0
    while True:
        counted = _export_count(base, ids[0].rsplit("-", 1)[0], int(warm_ts * 1000))
        if counted >= expected or time.monotonic() > deadline:
            return counted
        unchanged = unchanged + 1 if counted == previous else 0
        if unchanged >= 3:
            return counted
        previous = counted
        time.sleep(5.0)


def _export_count(base: str, prefix: str, skip_ms: int) -> int:
    response = httpx.post(
        f"{base}/api/v1/export",
        data={"match[]": f'{{__name__="device_health_cpu",device=~"{prefix}-.+"}}'},
        timeout=120,
    )
    response.raise_for_status()
    total = 0
    for line in response.content.splitlines():
        if line.strip():
            stamps = set(orjson.loads(line)["timestamps"])
            stamps.discard(skip_ms)
            total += len(stamps)
    return total


def _settle_victoria(base: str, timeout_s: float = 60.0) -> None:
    """Wait until VictoriaMetrics has stored and indexed everything it was sent."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        added, pending = 0.0, 0.0
        for line in text.splitlines():
            if line.startswith("vm_rows_added_to_storage_total"):
                added = float(line.rsplit(" ", 1)[1])
            elif line.startswith("vm_pending_rows{"):
                pending += float(line.rsplit(" ", 1)[1])
        if added == previous and pending == 0:
            return
        previous = added
        time.sleep(2.0)


def delete_series(settings: Settings, prefix: str) -> None:
    """Drop the benchmark's series from VictoriaMetrics (raises httpx.HTTPError)."""
    httpx.post(
        settings.tsdb_url.rstrip("/") + "/api/v1/admin/tsdb/delete_series",
        data={"match[]": f'{{device=~"{prefix}-.+"}}'},
        timeout=30,
    ).raise_for_status()
