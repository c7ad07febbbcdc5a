"""Alert rules, the alerts they raise, quiet windows and where notifications go."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, JsonDoc, UtcDateTime, utcnow
from fleet.devices.models import DeviceEvent

RULE_KINDS = (
    "offline",
    "battery_low",
    "storage_high",
    "temperature_high",
    "agent_outdated",
    "config_drift",
    "flapping",
)
SEVERITIES = ("info", "warning", "critical")
STATUSES = ("firing", "acknowledged", "resolved")
OPEN_STATUSES = ("firing", "acknowledged")
WINDOW_KINDS = ("scheduled", "ad_hoc")

# The flapping rule counts a device's online/offline transitions in the last hour across the
# whole estate; without this index that is a scan of every device event ever recorded.
Index("ix_device_event_kind_ts", DeviceEvent.kind, DeviceEvent.ts)


class AlertRule(Base):
    """A condition over device state, scoped to prisons, device kinds and a place."""

    __tablename__ = "alert_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(10), default="warning")
    # Minutes, percent, degrees C, versions behind or transitions per hour, by kind.
    threshold: Mapped[float | None] = mapped_column(Float)
    min_version: Mapped[str | None] = mapped_column(String(32))
    prisons: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # empty: every prison
    device_kinds: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # empty: every kind
    location_prefix: Mapped[str | None] = mapped_column(String(64))
    tag: Mapped[str | None] = mapped_column(String(40))  # only devices carrying this tag
    # This many devices under one landing firing together become one alert on the landing.
    group_min: Mapped[int] = mapped_column(Integer, default=3)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Alert(Base):
    """One open-or-closed alert for a device, or for a landing when several fire together."""

    __tablename__ = "alert"
    __table_args__ = (
        # At most one open alert per rule and subject: evaluation inserts with ON CONFLICT.
        Index(
            "uq_alert_open_subject",
            "rule_id",
            "subject",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
            sqlite_where=text("status <> 'resolved'"),
        ),
        Index("ix_alert_status_prison_opened", "status", "prison_code", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rule.id"), index=True)
    # "device:<id>" or "place:<location id>"
    subject: Mapped[str] = mapped_column(String(80))
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"))
    fault_id: Mapped[int | None] = mapped_column(ForeignKey("fault.id"))
    kind: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="firing")
    summary: Mapped[str] = mapped_column(String(500))
    devices: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    value: Mapped[float | None] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When its devices or measured value last changed.
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(300))


class QuietWindow(Base):
    """A time when a prison's devices are expected to misbehave, so named rules stay silent."""

    __tablename__ = "quiet_window"
    __table_args__ = (Index("ix_quiet_window_prison_archived", "prison_code", "archived_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"))
    kind: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(200))
    rule_kinds: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # empty: every rule
    # Scheduled: weekdays (0 = Monday) the window starts on, and local wall-clock times.
    days: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    start_time: Mapped[str | None] = mapped_column(String(5))
    end_time: Mapped[str | None] = mapped_column(String(5))
    # Ad hoc: an absolute span.
    starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    archived_by: Mapped[str | None] = mapped_column(String(100))


class AlertRoute(Base):
    """Where a prison's alerts of at least some severity go, and how long a digest gathers."""

    __tablename__ = "alert_route"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), index=True)
    min_severity: Mapped[str] = mapped_column(String(10), default="warning")
    email_to: Mapped[str | None] = mapped_column(String(320))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    digest_minutes: Mapped[int] = mapped_column(Integer, default=15)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AlertNotice(Base):
    """An alert told down a route, in which digest; unique so each alert goes once per route."""

    __tablename__ = "alert_notice"
    __table_args__ = (UniqueConstraint("route_id", "alert_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("alert_route.id"))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    digest: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
