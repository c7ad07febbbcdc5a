"""Request and response bodies for remote actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.devices.schemas import DeviceKind, Health


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(
        min_length=1,
        max_length=32,
        description="reboot, restart_agent, lock, collect_diagnostics, refresh_config or ping",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="collect_diagnostics takes log_lines (0-50)"
    )


class CommandOut(BaseModel):
    id: str
    device_id: str
    action: str
    params: dict[str, Any]
    requested_by: str
    status: str = Field(description="queued, delivered, done, failed, rejected or expired")
    output: str = Field(description="The device's own output or reason")
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


class CommandListOut(BaseModel):
    items: list[CommandOut]


class DeviceFilter(BaseModel):
    """Which enrolled devices a bulk command is for; the same filters as the device list."""

    model_config = ConfigDict(extra="forbid")

    prison: list[str] = Field(default_factory=list, description="Prison codes")
    kind: DeviceKind | None = None
    online: bool | None = None
    health: Health | None = None
    wing: str | None = Field(default=None, max_length=40, description="e.g. MDI-1")
    landing: str | None = Field(default=None, max_length=40, description="e.g. MDI-1-2")
    q: str | None = Field(default=None, max_length=100, description="Text in id, serial, place")


class BulkCommandRequest(CommandRequest):
    filter: DeviceFilter = Field(default_factory=DeviceFilter)
    confirmation: str | None = Field(
        default=None,
        max_length=2000,
        description="Omit to see how many devices match; send the returned token to queue them",
    )


class BulkPreviewOut(BaseModel):
    action: str
    matched: int
    confirmation: str = Field(description="Send back within the expiry to queue the commands")
    expires_at: datetime


class BulkQueuedOut(BaseModel):
    queued: int
    items: list[CommandOut]
