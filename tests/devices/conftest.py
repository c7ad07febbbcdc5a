"""A device estate seeded once per module, on PostgreSQL and on SQLite, served by the real API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import DEVICE_KINDS, HEALTH_LEVELS
from fleet.estate.service import location_by_path
from tests.estate.factories import Api, add_device, api_for, seed_locations, sqlite_context
from tests.services.postgres import create_database, drop_database, migrated_context

BASE_TIME = datetime(2025, 1, 6, 8, 0, 0, 123456, tzinfo=UTC)
MDI_CELLS = [f"MDI-{w}-{ln}-{c:03d}" for w in (1, 2) for ln in (1, 2) for c in (1, 2, 3)]
LEI_CELLS = ["LEI-1-1-001", "LEI-1-1-002"]


@dataclass
class Fleet:
    api: Api
    devices: list[dict[str, Any]]  # what was seeded, as the list endpoint should show it


def seed_devices(ctx: Context) -> list[dict[str, Any]]:
    """140 devices with every combination the filters and sorts care about, ties and nulls."""
    seeded = []
    with transaction(ctx.sessions) as session:
        for i in range(140):
            prison = "MDI" if i < 100 else "LEI"
            cells = MDI_CELLS if prison == "MDI" else LEI_CELLS
            location = None if i % 11 == 0 else cells[i % len(cells)]
            lifecycle = "registered" if i % 9 == 0 else ("retired" if i % 17 == 0 else "enrolled")
            reported = lifecycle != "registered"
            online = reported and i % 3 != 0
            battery = None if i % 5 == 0 else float((i % 7) * 10)
            last_seen = None if i % 8 == 0 else BASE_TIME + timedelta(minutes=i % 13)
            health = HEALTH_LEVELS[i % 4]
            device = add_device(
                session,
                prison=prison,
                kind=DEVICE_KINDS[i % 4],
                location=location,
                lifecycle=lifecycle,
                serial=f"SER{i:04d}" if i != 42 else "Special-Serial_42",
                online=online if reported else None,
                health=health,
                battery=battery if reported else None,
                last_seen=last_seen if reported else None,
                metrics={"battery": battery or 0.0, "cpu": 12.5},
            )
            place = location_by_path(session=session, path=location) if location else None
            seeded.append(
                {
                    "id": device.id,
                    "serial": device.serial,
                    "kind": device.kind,
                    "prison_code": prison,
                    "location": place.path if place else None,
                    "lifecycle": lifecycle,
                    "online": online,
                    "health": health if reported else "unknown",
                    "battery": battery if reported else None,
                    "last_seen": last_seen if reported else None,
                }
            )
    return seeded


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    directory: Path = tmp_path_factory.mktemp("fleet")
    url = None
    if request.param == "postgresql":
        url = create_database()
        ctx = migrated_context(url, data_dir=directory)
    else:
        ctx = sqlite_context(directory)
    try:
        seed_locations(ctx)
        devices = seed_devices(ctx)
        with api_for(ctx) as api:
            yield Fleet(api, devices)
    finally:
        ctx.close()
        if url:
            drop_database(url)


@pytest.fixture
def api(pg_context: Context) -> Iterator[Api]:
    """A fresh PostgreSQL estate (MDI and LEI laid out, no devices) for tests that write."""
    seed_locations(pg_context)
    with api_for(pg_context) as client:
        yield client
