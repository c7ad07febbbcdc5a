"""Faults, their timeline, targets and notification routes as the API shows and accepts them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    UrlConstraints,
    ValidationInfo,
    field_validator,
)

Category = Literal[
    "in_cell_telephony", "in_cell_device", "power_electrical", "network_point", "heating",
    "plumbing", "door_lock_cell_bell", "fire_safety", "other",
]  # fmt: skip
Priority = Literal["P1", "P2", "P3", "P4"]
Status = Literal[
    "reported", "triaged", "assigned", "in_progress", "on_hold", "cleared", "closed", "cancelled"
]  # fmt: skip
Action = Literal[
    "triaged", "assigned", "in_progress", "on_hold", "cleared", "closed", "cancelled", "reopened"
]  # fmt: skip
HoldReason = Literal[
    "awaiting_parts", "awaiting_access", "awaiting_security_clearance", "contractor_scheduled",
    "other",
]  # fmt: skip
Sort = Literal[
    "reported_at", "-reported_at", "priority", "-priority", "due_clear_at", "-due_clear_at",
    "reference", "-reference",
]  # fmt: skip

LOCATION_PATTERN = r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+$"
NOTE_MAX = 2000


class FaultCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(
        max_length=64,
        pattern=LOCATION_PATTERN,
        description="Location code of any place in the prison, e.g. MDI-1-1-001 or MDI-1",
    )
    category: Category
    priority: Priority = Field(description="P1 (most urgent) to P4")
    description: str = Field(min_length=1, max_length=4000, description="What is wrong")
    device: str | None = Field(
        default=None, max_length=64, description="Device id, if the fault is on one device"
    )
    team: str | None = Field(
        default=None, max_length=200, description="Team or contractor the fault is for"
    )
    blocks_rollout: bool = Field(
        default=False, description="The fault stops devices being rolled out in this prison"
    )


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Action = Field(description="Where the fault should go next")
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    reason: HoldReason | None = Field(default=None, description="Required to put on hold")
    resolution: str | None = Field(
        default=None, max_length=NOTE_MAX, description="Required to clear: what was done"
    )
    version: int | None = Field(
        default=None, ge=1, description="The version you loaded; refused with 409 if stale"
    )
    assignee: str | None = Field(
        default=None,
        max_length=64,
        description="Username to assign the fault to (when assigning); you if left out",
    )


class MoveRefusedOut(BaseModel):
    detail: str
    status: Status = Field(description="Where the fault is now")
    allowed: list[Action] = Field(description="Moves allowed from here")


class FaultEventOut(BaseModel):
    ts: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str | None
    detail: dict[str, Any]


class AttachmentOut(BaseModel):
    id: str
    content_type: str
    size: int
    filename: str
    uploaded_by: str
    created_at: datetime
    url: str


class FaultItem(BaseModel):
    id: int
    reference: str
    prison_code: str
    location: str
    device: str | None
    category: Category
    priority: Priority
    status: Status
    description: str
    reporter: str
    team: str | None
    assignee: str | None
    hold_reason: str | None
    resolution: str | None
    reported_at: datetime
    due_respond_at: datetime
    due_clear_at: datetime
    responded_at: datetime | None
    cleared_at: datetime | None
    closed_at: datetime | None
    paused: bool
    at_risk: bool
    breached: bool
    recurring: bool
    source: Literal["staff", "fleet"]
    blocks_rollout: bool
    version: int


class DevicesBackOut(BaseModel):
    online: int = Field(description="Devices at or beneath the place that are online now")
    total: int


class FaultDetailOut(FaultItem):
    next: list[str] = Field(description="Moves allowed from the current status")
    timeline: list[FaultEventOut]
    attachments: list[AttachmentOut]
    devices: DevicesBackOut | None = Field(
        description="For faults raised from the fleet: whether the devices have come back"
    )


class FaultPageOut(BaseModel):
    items: list[FaultItem]
    count: int = Field(
        description="Faults matching the filters, across all pages; counting stops at "
        "10,000 (see count_capped)"
    )
    count_capped: bool = Field(
        default=False,
        description="true: more faults than count match (shown as e.g. '10,000+'); narrow "
        "the filters for an exact figure",
    )
    next_cursor: str | None


class RecurringOut(BaseModel):
    location: str
    prison_code: str
    category: Category
    count: int
    references: list[str]


class TargetOut(BaseModel):
    category: Category
    priority: Priority
    respond_minutes: int
    clear_minutes: int
    customised: bool


class TargetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    priority: Priority
    respond_minutes: int = Field(gt=0, le=365 * 24 * 60)
    clear_minutes: int = Field(gt=0, le=365 * 24 * 60)

    @field_validator("clear_minutes")
    @classmethod
    def _clear_after_respond(cls, value: int, info: ValidationInfo) -> int:
        respond = info.data.get("respond_minutes")
        if respond is not None and value < respond:
            raise ValueError(f"must be at least respond_minutes ({respond})")
        return value


class NotificationRouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_to: str | None = Field(
        default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", description="One address"
    )
    webhook_url: Annotated[HttpUrl, UrlConstraints(max_length=500)] | None = Field(
        default=None, description="Receives a JSON POST; at most 500 characters"
    )


class NotificationRouteOut(BaseModel):
    prison_code: str
    email_to: str | None
    webhook_url: str | None
