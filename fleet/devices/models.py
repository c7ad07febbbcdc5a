"""Devices, their one hot state row, identities, enrolment tokens, events and samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, JsonDoc, UtcDateTime, utcnow

DEVICE_KINDS = ("in_cell_phone", "tablet", "laptop", "kiosk")
LIFECYCLES = ("registered", "enrolled", "retired", "revoked")
HEALTH_LEVELS = ("ok", "warning", "critical", "unknown")

BigId = BigInteger().with_variant(Integer, "sqlite")


class Device(Base):
    __tablename__ = "device"
    __table_args__ = (
        Index("ix_device_prison_kind", "prison_code", "kind"),
        # One prison's devices in id order: the device list's default page without a sort.
        Index("ix_device_prison_id", "prison_code", "id"),
    )

    # Also the device's broker username, so restricted to [A-Za-z0-9_-].
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"), index=True)
    lifecycle: Mapped[str] = mapped_column(String(16), default="registered", index=True)
    hostname: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeviceState(Base):
    """Latest known state; written in bulk by ingest, newest (boot, seq) wins."""

    __tablename__ = "device_state"
    __table_args__ = (
        Index("ix_device_state_online_last_seen", "online", "last_seen"),
        # The device list sorts by these with the id as tie-breaker, walking the index in order.
        Index("ix_device_state_last_seen_device", "last_seen", "device_id"),
        Index("ix_device_state_battery_device", "battery", "device_id"),
    )

    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    boot: Mapped[int] = mapped_column(BigInteger, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_report_ts: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Timestamp of the state message (birth, will, shutdown) that set `state`; with `boot`
    # it orders state messages so a late will never overrides a newer birth.
    state_ts: Mapped[datetime | None] = mapped_column(UtcDateTime)
    agent_version: Mapped[str] = mapped_column(String(32), default="")
    config_version: Mapped[int] = mapped_column(BigInteger, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    health: Mapped[str] = mapped_column(String(16), default="unknown", index=True)
    battery: Mapped[float | None] = mapped_column(Float)
    # The system Python the agent found for Ansible modules; NULL until one is reported.
    python_interpreter: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Credential(Base):
    """A broker identity issued to a device; the secret is never stored here."""

    __tablename__ = "credential"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EnrolmentToken(Base):
    __tablename__ = "enrolment_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeviceEvent(Base):
    """What happened to a device over time: online, offline, lost, enrolled, moved, retired."""

    __tablename__ = "device_event"
    __table_args__ = (Index("ix_device_event_device_ts", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"))
    ts: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class HealthSample(Base):
    """Health history when no TSDB is configured; (device, seq) makes writes idempotent."""

    __tablename__ = "health_sample"
    __table_args__ = (Index("ix_health_sample_device_ts", "device_id", "ts"),)

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
