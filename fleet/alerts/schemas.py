"""Alert API requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from fleet.alerts.kinds import KINDS, VERSION_PATTERN, threshold_problem

RuleKindName = Literal[
    "offline",
    "battery_low",
    "storage_high",
    "temperature_high",
    "agent_outdated",
    "config_drift",
    "flapping",
]
Severity = Literal["info", "warning", "critical"]
DeviceKind = Literal["in_cell_phone", "tablet", "laptop", "kiosk"]
PrisonCode = str
LOCATION_PREFIX = r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$"
CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    kind: RuleKindName
    severity: Severity = "warning"
    threshold: float | None = Field(
        default=None,
        description="Minutes (offline), percent (battery_low, storage_high), degrees C "
        "(temperature_high), versions behind (config_drift) or transitions an hour (flapping).",
    )
    min_version: str | None = Field(
        default=None,
        validate_default=True,
        max_length=32,
        description="agent_outdated: the lowest acceptable version",
    )
    prisons: list[PrisonCode] = Field(default_factory=list, max_length=200)
    device_kinds: list[DeviceKind] = Field(default_factory=list, max_length=4)
    location_prefix: str | None = Field(default=None, max_length=64, pattern=LOCATION_PREFIX)
    tag: str | None = Field(
        default=None, max_length=40, pattern=r"^[a-z0-9_]+$", description="Only devices tagged so"
    )
    group_min: int = Field(
        default=3, ge=2, le=10_000, description="Devices on one landing that make one alert"
    )
    enabled: bool = True

    @field_validator("threshold")
    @classmethod
    def _threshold_fits_kind(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        # Left out, a kind's default threshold applies (see rules.create_rule).
        if kind in KINDS and value is not None and (problem := threshold_problem(kind, value)):
            raise ValueError(problem)
        return value

    @field_validator("min_version")
    @classmethod
    def _version_fits_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind == "agent_outdated":
            if not value:
                raise ValueError("An agent out of date rule needs min_version, e.g. 1.4.0.")
            if not VERSION_PATTERN.match(value):
                raise ValueError(f"{value!r} is not a version like 1.4.0.")
        elif value is not None and kind in KINDS:
            raise ValueError("Only an agent out of date rule takes min_version; remove it.")
        return value


class RuleOut(BaseModel):
    id: int
    name: str
    kind: str
    severity: str
    threshold: float | None
    min_version: str | None
    prisons: list[str]
    device_kinds: list[str]
    location_prefix: str | None
    tag: str | None
    group_min: int
    enabled: bool
    version: int
    description: str
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class RuleList(BaseModel):
    items: list[RuleOut]


class AlertOut(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    kind: str
    severity: str
    status: str
    summary: str
    prison_code: str
    device_id: str | None
    location: str | None
    devices: list[str]
    fault_reference: str | None
    value: float | None
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


class AlertList(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None = None
    quiet: list[QuietOut] = Field(default_factory=list)


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(min_length=1, max_length=1000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=300)


class ActedOut(BaseModel):
    changed: list[int]
    unchanged: list[int]


class QuietIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prison_code: PrisonCode = Field(min_length=2, max_length=8)
    kind: Literal["scheduled", "ad_hoc"]
    reason: str = Field(min_length=1, max_length=200)
    rule_kinds: list[RuleKindName] = Field(default_factory=list, max_length=7)
    days: list[int] = Field(
        default_factory=list, max_length=7, description="Scheduled: weekdays it starts on, 0=Mon"
    )
    start_time: str | None = Field(default=None, pattern=CLOCK, description="Scheduled: 22:00")
    end_time: str | None = Field(default=None, pattern=CLOCK, description="Scheduled: 06:30")
    starts_at: datetime | None = Field(default=None, description="Ad hoc: when it begins")
    ends_at: datetime | None = Field(default=None, description="Ad hoc: when it ends")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        bad = [d for d in value if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"{bad[0]} is not a weekday; use 0 (Monday) to 6 (Sunday).")
        return sorted(set(value))


class QuietOut(BaseModel):
    id: int
    prison_code: str
    kind: str
    reason: str
    rule_kinds: list[str]
    days: list[int]
    start_time: str | None
    end_time: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_by: str
    created_at: datetime
    active: bool
    until: datetime | None
    label: str


class QuietList(BaseModel):
    items: list[QuietOut]


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prison_code: PrisonCode = Field(min_length=2, max_length=8)
    min_severity: Severity = "warning"
    email_to: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://\S+$")
    digest_minutes: int = Field(default=15, ge=0, le=24 * 60)


class RouteOut(BaseModel):
    id: int
    prison_code: str
    min_severity: str
    email_to: str | None
    webhook_url: str | None
    digest_minutes: int
    created_by: str
    last_sent_at: datetime | None


class RouteList(BaseModel):
    items: list[RouteOut]


AlertList.model_rebuild()
