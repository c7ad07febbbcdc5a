"""The API's /metrics counts the estate from the database: by prison, wing, kind and state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from fleet.estate.service import generate_locations, location_by_path
from fleet.settings import Settings
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    url = (
        f"sqlite:///{tmp_path / 'estate.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    context = migrated_context(url, data_dir=tmp_path)
    yield context
    context.close()


def add(
    ctx: Context,
    device_id: str,
    *,
    kind: str = "tablet",
    where: str | None = None,
    lifecycle: str = "enrolled",
    online: bool = False,
    health: str = "ok",
) -> None:
    with transaction(ctx.sessions) as session:
        location = location_by_path(session=session, path=where) if where else None
        session.add(
            Device(
                id=device_id,
                serial=f"SN-{device_id}",
                kind=kind,
                prison_code=device_id[:3],
                location_id=location.id if location else None,
                lifecycle=lifecycle,
            )
        )
        session.flush()
        session.add(DeviceState(device_id=device_id, online=online, health=health))


def scrape(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with running_api(settings) as base:
        response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_devices_are_counted_by_wing_kind_and_state(ctx: Context) -> None:
    with transaction(ctx.sessions) as session:
        generate_locations(session=session, prison_code="MDI", wings=2, landings=1, cells=2)
    add(ctx, "MDI-1", where="MDI-1-1-001", online=True)
    add(ctx, "MDI-2", where="MDI-1-1", online=True, health="warning")
    add(ctx, "MDI-3", where="MDI-1", health="critical")
    add(ctx, "MDI-4", kind="laptop", where="MDI-2-1-002", online=True)
    add(ctx, "MDI-5", lifecycle="registered")
    add(ctx, "LEI-1", kind="in_cell_phone")

    samples = scrape(ctx.settings)

    assert value(samples, "estate_devices_inventory_ok") == 1
    wing1 = {"prison": "MDI", "wing": "MDI-1", "kind": "tablet"}
    assert value(samples, "estate_devices_enrolled", **wing1) == 3
    assert value(samples, "estate_devices_online", **wing1) == 2
    assert value(samples, "estate_devices_health", **wing1, health="ok") == 1
    assert value(samples, "estate_devices_health", **wing1, health="warning") == 1
    assert value(samples, "estate_devices_health", **wing1, health="critical") == 1
    assert value(samples, "estate_devices_health", **wing1, health="unknown") == 0
    laptops = {"prison": "MDI", "wing": "MDI-2", "kind": "laptop"}
    assert value(samples, "estate_devices_online", **laptops) == 1
    unplaced = {"prison": "LEI", "wing": "unplaced", "kind": "in_cell_phone"}
    assert value(samples, "estate_devices_enrolled", **unplaced) == 1
    assert value(samples, "estate_devices_online", **unplaced) == 0

    tablets = {"prison": "MDI", "kind": "tablet"}
    assert value(samples, "estate_devices", **tablets, lifecycle="enrolled") == 3
    assert value(samples, "estate_devices", **tablets, lifecycle="registered") == 1
    assert value(samples, "estate_devices", **tablets, lifecycle="retired") == 0
    assert (
        value(samples, "estate_devices_enrolled", prison="MDI", wing="unplaced", kind="tablet")
        is None
    ), "a registered device is not counted as enrolled"


def test_metrics_are_served_when_the_database_is_not(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "estate.db"
    settings = Settings(database_url=f"sqlite:///{missing}", profile="test", data_dir=tmp_path)

    samples = scrape(settings)

    assert value(samples, "estate_devices_inventory_ok") == 0
    assert not any(name == "estate_devices_enrolled" for name, _ in samples)
