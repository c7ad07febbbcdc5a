"""Request and response bodies for desired configuration, drift and device tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DesiredConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc: dict[str, Any] = Field(
        description="Settings the device applies: health_interval_s, apps_allowed, kiosk, wifi"
    )


class DesiredConfigOut(BaseModel):
    device_id: str
    version: int = Field(description="Desired version; each change adds one")
    doc: dict[str, Any]
    updated_by: str
    updated_at: datetime
    published_at: datetime | None = Field(description="When the broker took it; null: not yet")
    applied_version: int = Field(description="The version the device says it has applied")
    drift: str = Field(description="in_sync, pending (not applied yet) or failed")
    error: str = Field(description="The device's reason when it refused the desired version")
    reported_at: datetime | None
    changed: bool = Field(default=False, description="Whether this request made a new version")


class DriftCounts(BaseModel):
    in_sync: int
    pending: int
    failed: int


class DriftSummaryOut(BaseModel):
    total: DriftCounts = Field(description="Devices with a desired configuration, by drift")
    prisons: dict[str, DriftCounts] = Field(description="The same, per prison code")


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(
        max_length=20,
        description="Lower-case labels of letters, digits and _ (at most 40 characters each)",
    )


class TagsOut(BaseModel):
    device_id: str
    tags: list[str]
