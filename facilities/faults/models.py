"""Faults, their timeline, attachments, per-prison numbering, targets and notification routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from facilities.faults.workflow import OPEN_STATUSES
from fleet.db import Base, JsonDoc, UtcDateTime, utcnow

CATEGORIES = (
    "in_cell_telephony",
    "in_cell_device",
    "power_electrical",
    "network_point",
    "heating",
    "plumbing",
    "door_lock_cell_bell",
    "fire_safety",
    "other",
)
PRIORITIES = ("P1", "P2", "P3", "P4")
_OPEN_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_STATUSES))
_PERIOD_REPORT_COLUMNS = (
    "prison_code", "category", "location_id", "status", "responded_at", "due_respond_at",
    "cleared_at", "due_clear_at", "paused_since",
)  # fmt: skip


class FaultCounter(Base):
    """The last fault number given out in a prison; bumped with UPDATE ... RETURNING."""

    __tablename__ = "fault_counter"

    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class FaultTarget(Base):
    """An override of the default respond/clear times for one category x priority."""

    __tablename__ = "fault_target"
    __table_args__ = (UniqueConstraint("category", "priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(2))
    respond_minutes: Mapped[int] = mapped_column(Integer)
    clear_minutes: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Fault(Base):
    __tablename__ = "fault"
    __table_args__ = (
        UniqueConstraint("prison_code", "number"),
        # A form resubmitted after a dropped response carries the same key: one fault, not two.
        UniqueConstraint("reporter", "idempotency_key"),
        Index("ix_fault_prison_status", "prison_code", "status"),
        Index("ix_fault_location_category", "location_id", "category", "reported_at"),
        # The few faults still open out of a long history: counted per prison and category by
        # the reports and the place tree, listed by the open-faults page.
        Index(
            "ix_fault_open",
            "prison_code",
            "category",
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
        # Time to clear over a period reads only this index.
        Index(
            "ix_fault_cleared_at",
            "cleared_at",
            postgresql_include=["prison_code", "category", "reported_at"],
        ),
        # SLA compliance and recurrences over a period read only this index.
        Index(
            "ix_fault_reported_cover",
            "reported_at",
            postgresql_include=list(_PERIOD_REPORT_COLUMNS),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"))
    number: Mapped[int] = mapped_column(Integer)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), default="reported")
    description: Mapped[str] = mapped_column(Text)
    reporter: Mapped[str] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(200))
    # The person working the fault, set when it is assigned; "my assigned faults" lists by it.
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    hold_reason: Mapped[str | None] = mapped_column(String(32))
    resolution: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    due_respond_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_clear_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set while on hold for a reason that stops the clock; the pause is added to the due times.
    paused_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)
    at_risk_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    # "staff" when a person reported it, "fleet" when raised from devices falling silent.
    source: Mapped[str] = mapped_column(String(8), default="staff")
    blocks_rollout: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FaultEvent(Base):
    """One entry of a fault's timeline: who moved it, when, from where to where, and why."""

    __tablename__ = "fault_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fault_id: Mapped[int] = mapped_column(ForeignKey("fault.id"), index=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class FaultAttachment(Base):
    """A stored file; `storage_key` names it in the storage backend, never the client's name."""

    __tablename__ = "fault_attachment"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fault_id: Mapped[int] = mapped_column(ForeignKey("fault.id"), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(200))
    uploaded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FaultNotificationRoute(Base):
    """Where a prison's SLA warnings go: an email address and/or a webhook (e.g. Teams)."""

    __tablename__ = "fault_notification_route"

    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), primary_key=True)
    email_to: Mapped[str | None] = mapped_column(String(320))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
