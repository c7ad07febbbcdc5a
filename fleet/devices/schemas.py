"""Devices as the API shows and accepts them, and the health-history time range."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fleet.estate.schemas import Crumb

DeviceKind = Literal["in_cell_phone", "tablet", "laptop", "kiosk"]
Lifecycle = Literal["registered", "enrolled", "retired", "revoked"]
Health = Literal["ok", "warning", "critical", "unknown"]
Sort = Literal[
    "id", "-id", "last_seen", "-last_seen", "battery", "-battery", "prison", "-prison", "kind",
    "-kind",
]  # fmt: skip


# Letters and digits in '-'-separated parts, any case (stored upper case).
LOCATION_PATTERN = r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+$"


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:/-]+$",
        description="Manufacturer serial number; unique across the estate",
    )
    kind: DeviceKind = Field(description="What the device is")
    prison_code: str = Field(min_length=2, max_length=8, description="Prison it belongs to")
    location: str | None = Field(
        default=None,
        max_length=64,
        pattern=LOCATION_PATTERN,
        description="Location path in that prison, e.g. MDI-1-1-001",
    )


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(
        min_length=3,
        max_length=64,
        pattern=LOCATION_PATTERN,
        description="Location path to move the device to, e.g. MDI-1-1-001",
    )


class RetireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=3, max_length=500, description="Why the device leaves service, for the audit"
    )


class DeviceItem(BaseModel):
    id: str = Field(description="Device id, also its broker username")
    serial: str
    kind: DeviceKind
    prison_code: str
    location: str | None = Field(description="Location path, null when not placed")
    lifecycle: Lifecycle
    online: bool = Field(description="Connected to the broker now")
    state: str = Field(description="Last state reported: online, offline, lost or unknown")
    last_seen: datetime | None = Field(description="When anything was last heard from it")
    health: Health = Field(description="Health worked out from its latest report")
    battery: float | None = Field(description="Battery percentage in the latest report")
    agent_version: str | None = Field(description="Agent version it last reported")
    config_version: int | None = Field(description="Configuration version it has applied")


class DevicePageOut(BaseModel):
    items: list[DeviceItem]
    count: int = Field(
        description="Devices matching the filters, across all pages; counting stops at "
        "10,000 (see count_capped)"
    )
    count_capped: bool = Field(
        default=False,
        description="true: more devices than count match (shown as e.g. '10,000+'); narrow "
        "the filters for an exact figure",
    )
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at end")


class DeviceEventOut(BaseModel):
    ts: datetime
    kind: str = Field(description="online, offline, lost, enrolled, moved, retired, ...")
    detail: dict[str, Any]


class AuditEntryOut(BaseModel):
    id: int
    ts: datetime
    actor: str
    action: str
    detail: dict[str, Any]


class DeviceDetailOut(DeviceItem):
    hostname: str
    created_at: datetime
    enrolled_at: datetime | None
    retired_at: datetime | None
    boot: int | None = Field(description="Boot counter of the latest session")
    seq: int | None = Field(description="Sequence number of the latest health report")
    last_report_ts: datetime | None = Field(description="Device's own time of that report")
    metrics: dict[str, Any] = Field(description="Latest metrics reported (battery, cpu, ...)")
    breadcrumb: list[Crumb] = Field(description="Prison > wing > landing > cell")
    events: list[DeviceEventOut] = Field(description="Most recent events, newest first")
    audit: list[AuditEntryOut] = Field(description="Most recent audit entries, newest first")


class HealthPoint(BaseModel):
    ts: datetime = Field(description="Start of the step this value averages")
    value: float


class HealthHistoryOut(BaseModel):
    device_id: str
    start: datetime
    end: datetime
    step_s: int = Field(description="Seconds between points")
    series: dict[str, list[HealthPoint]] = Field(description="Per metric, points in time order")


_RELATIVE = re.compile(r"^-(\d+)([smhdw])$")
_STEP = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
NICE_STEPS_S = (30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
TARGET_POINTS = 300
MAX_POINTS = 11_000


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC if no offset), 'now', or relative to now like -24h or -7d."""
    text = text.strip()
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(seconds=int(relative[1]) * _UNIT_S[relative[2]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use ISO 8601 like 2025-01-31T08:00:00Z, or -24h, -30m, -7d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_step(text: str) -> int:
    """A step like 30s, 5m, 1h or 1d, in seconds."""
    found = _STEP.match(text.strip())
    if not found or int(found[1]) == 0:
        raise ValueError(f"{text!r} is not a step; use a number and a unit, like 30s, 5m or 1h")
    return int(found[1]) * _UNIT_S[found[2]]


def default_step(span_s: float) -> int:
    """The smallest round step giving at most about TARGET_POINTS points."""
    for step in NICE_STEPS_S:
        if span_s / step <= TARGET_POINTS:
            return step
    return int(span_s // TARGET_POINTS) + 1
