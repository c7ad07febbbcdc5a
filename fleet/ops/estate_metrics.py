"""The device estate as Prometheus gauges, counted from the database on every scrape.

Rollout and overview dashboards read these: devices in the register by lifecycle, and the
enrolled ones by wing with how many are online and how healthy they are. One grouped query per
scrape keeps the cost flat however many devices there are.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import HEALTH_LEVELS, LIFECYCLES, Device, DeviceState
from fleet.estate.models import Location

log = logging.getLogger(__name__)

UNPLACED = "unplaced"


@dataclass(frozen=True)
class InventoryGroup:
    """Devices sharing prison, wing, kind, lifecycle, online flag and health level."""

    prison: str
    wing: str
    kind: str
    lifecycle: str
    online: bool
    health: str
    devices: int


def device_inventory(*, session: Session) -> list[InventoryGroup]:
    """Every device counted by prison, wing, kind, lifecycle, online and health, in one query."""
    place, parent, grandparent = aliased(Location), aliased(Location), aliased(Location)
    # Devices sit in a cell, on a landing or in a wing; the wing is whichever of those is one.
    wing = case(
        (place.kind == "wing", place.path),
        (parent.kind == "wing", parent.path),
        (grandparent.kind == "wing", grandparent.path),
        else_=UNPLACED,
    )
    online = func.coalesce(DeviceState.online, False)
    health = func.coalesce(DeviceState.health, "unknown")
    query = (
        select(
            Device.prison_code,
            wing,
            Device.kind,
            Device.lifecycle,
            online,
            health,
            func.count(),
        )
        .select_from(Device)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .outerjoin(place, place.id == Device.location_id)
        .outerjoin(parent, parent.id == place.parent_id)
        .outerjoin(grandparent, grandparent.id == parent.parent_id)
        .group_by(Device.prison_code, wing, Device.kind, Device.lifecycle, online, health)
    )
    return [
        InventoryGroup(prison, wing_path, kind, lifecycle, bool(is_online), level, count)
        for prison, wing_path, kind, lifecycle, is_online, level, count in session.execute(query)
    ]


def inventory_metrics(groups: list[InventoryGroup]) -> list[Metric]:
    """The gauge families for one inventory snapshot."""
    registered: Counter[tuple[str, ...]] = Counter()
    enrolled: Counter[tuple[str, ...]] = Counter()
    online: Counter[tuple[str, ...]] = Counter()
    health: Counter[tuple[str, ...]] = Counter()
    for group in groups:
        # Zeros are reported too, so "none awaiting enrolment" reads 0, not "no data".
        for lifecycle in LIFECYCLES:
            registered[(group.prison, group.kind, lifecycle)] += 0
        registered[(group.prison, group.kind, group.lifecycle)] += group.devices
        if group.lifecycle != "enrolled":
            continue
        where = (group.prison, group.wing, group.kind)
        enrolled[where] += group.devices
        for level in HEALTH_LEVELS:
            health[(*where, level)] += 0
        health[(*where, group.health)] += group.devices
        online[where] += group.devices if group.online else 0

    families: list[tuple[GaugeMetricFamily, Counter[tuple[str, ...]]]] = [
        (
            GaugeMetricFamily(
                "estate_devices",
                "Devices in the register, by prison, kind and lifecycle.",
                labels=["prison", "kind", "lifecycle"],
            ),
            registered,
        ),
        (
            GaugeMetricFamily(
                "estate_devices_enrolled",
                "Enrolled devices, by prison, wing and kind.",
                labels=["prison", "wing", "kind"],
            ),
            enrolled,
        ),
        (
            GaugeMetricFamily(
                "estate_devices_online",
                "Enrolled devices connected to the broker now, by prison, wing and kind.",
                labels=["prison", "wing", "kind"],
            ),
            online,
        ),
        (
            GaugeMetricFamily(
                "estate_devices_health",
                "Enrolled devices by their latest health level (ok, warning, critical, unknown).",
                labels=["prison", "wing", "kind", "health"],
            ),
            health,
        ),
    ]
    metrics: list[Metric] = []
    for family, counts in families:
        for labels, value in sorted(counts.items()):
            family.add_metric(list(labels), value)
        metrics.append(family)
    return metrics


class EstateInventoryCollector(Collector):
    """Counts the estate from the database each time /metrics is scraped."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "estate_devices_inventory_ok",
            "1 when the device inventory was read from the database on this scrape, else 0.",
        )
        try:
            with transaction(self.ctx.sessions) as session:
                groups = device_inventory(session=session)
        except Exception:  # the API's own metrics must still be served when the database is not
            log.exception("device inventory for /metrics could not be read from the database")
            ok.add_metric([], 0)
            yield ok
            return
        ok.add_metric([], 1)
        yield ok
        yield from inventory_metrics(groups)

    def describe(self) -> Iterator[Metric]:
        # Without a database at registration time, describe nothing rather than query.
        return iter(())
