"""Programmes, prison plans, milestones and measured progress as the API shows and accepts them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DeviceKind = Literal["in_cell_phone", "tablet", "laptop", "kiosk"]
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
# Rollout dates are plans for this century; anything else is a typing slip.
PlanDate = Annotated[date, Field(ge=EARLIEST, le=LATEST)]


class TemplateItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    name: str = Field(min_length=1, max_length=200)
    offset_days: int = Field(
        ge=-365,
        le=365,
        description="Due this many days from the planned go-live (negative: before)",
    )


class ProgrammeFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: str = Field("", max_length=4000)
    owner: str = Field("", max_length=200)
    devices_per_cell: int = Field(1, ge=1, le=20, description="Devices expected in each cell")
    enrolment_threshold_pct: float = Field(
        95.0,
        ge=0,
        le=100,
        description="Share of expected devices enrolled that completes "
        "the 'devices enrolled' milestone",
    )
    gate_online_pct: float = Field(
        95.0, ge=0, le=100, description="Share of expected devices online each day for the gate"
    )
    gate_days: int = Field(5, ge=1, le=90, description="Consecutive days the gate must hold")


class ProgrammeCreate(ProgrammeFields):
    name: str = Field(min_length=1, max_length=200)
    device_kinds: list[DeviceKind] = Field(min_length=1)
    start_date: PlanDate
    target_date: PlanDate
    milestone_template: list[TemplateItem] | None = Field(
        None, description="Milestones each prison plan starts with; the standard seven if omitted"
    )


class ProgrammeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    owner: str | None = Field(None, max_length=200)
    device_kinds: list[DeviceKind] | None = Field(None, min_length=1)
    devices_per_cell: int | None = Field(None, ge=1, le=20)
    start_date: PlanDate | None = None
    target_date: PlanDate | None = None
    enrolment_threshold_pct: float | None = Field(None, ge=0, le=100)
    gate_online_pct: float | None = Field(None, ge=0, le=100)
    gate_days: int | None = Field(None, ge=1, le=90)
    milestone_template: list[TemplateItem] | None = None


class ProgrammeOut(BaseModel):
    id: int
    name: str
    description: str
    owner: str
    device_kinds: list[str]
    devices_per_cell: int
    start_date: date
    target_date: date
    enrolment_threshold_pct: float
    gate_online_pct: float
    gate_days: int
    milestone_template: list[TemplateItem]
    prisons: int = Field(description="Prison plans you can see in this programme")


class ProgrammeList(BaseModel):
    items: list[ProgrammeOut]
    count: int


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prison_code: str = Field(min_length=1, max_length=8)
    wave: int = Field(1, ge=1, le=100)
    planned_go_live: PlanDate
    expected_devices: int | None = Field(
        None, ge=0, le=100_000, description="Omit to derive from cells x devices per cell"
    )


class PlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wave: int | None = Field(None, ge=1, le=100)
    planned_go_live: PlanDate | None = None
    expected_devices: int | None = Field(
        None, ge=0, le=100_000, description="null derives it from the location tree again"
    )


class MilestoneOut(BaseModel):
    id: int
    key: str
    name: str
    owner: str
    due_date: date | None
    done_date: date | None
    done_by: str
    note: str
    overdue: bool
    version: int


class MilestoneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    version: int = Field(ge=1, description="The version you read; a newer one answers 409")
    owner: str | None = Field(None, max_length=200)
    due_date: PlanDate | None = None
    done_date: PlanDate | None = None
    note: str | None = Field(None, max_length=4000)


class DayShareOut(BaseModel):
    day: date
    online_pct: float | None = Field(description="Share of expected devices online; null: no data")


class ProgressOut(BaseModel):
    expected: int
    expected_source: Literal["entered", "cells"]
    enrolled: int
    online_now: int
    healthy_now: int
    counted_at: datetime = Field(
        description="When the now figures were counted; a whole programme's may be seconds old"
    )
    enrolled_pct: float
    online_pct_now: float
    online_last_7_days: list[DayShareOut]
    online_last_14_days: list[DayShareOut]


class GateOut(BaseModel):
    live: bool
    qualifying_days: int
    required_days: int
    online_pct: float


class BlockerOut(BaseModel):
    kind: str
    title: str
    since: date | None
    reference: str


class PlanOut(BaseModel):
    id: int
    programme_id: int
    prison_code: str
    prison_name: str
    wave: int
    planned_go_live: date
    forecast_go_live: date | None
    progress: ProgressOut
    gate: GateOut
    rag: Literal["green", "amber", "red"]
    rag_reasons: list[str]
    blockers: list[BlockerOut]
    next_milestone: MilestoneOut | None
    milestones: list[MilestoneOut]


class PlanList(BaseModel):
    items: list[PlanOut]
    count: int


class BurnupDay(BaseModel):
    day: date
    prisons_live: int
    prisons_planned_live: int = Field(description="Plans whose planned go-live is on or before")
    devices_enrolled: int
    devices_expected: int


class Burnup(BaseModel):
    programme_id: int
    days: list[BurnupDay]


class PlanChange(BaseModel):
    prison_code: str
    since: date
    enrolled_then: int | None
    enrolled_now: int
    online_then: int | None
    online_now: int
    expected_then: int | None
    expected_now: int
    live_then: bool
    live_now: bool
    milestones_completed: list[str]


class ChangeList(BaseModel):
    programme_id: int
    since: date
    items: list[PlanChange]
