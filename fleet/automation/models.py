"""Desired configuration per device (what was asked, what the device last said) and device tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, JsonDoc, UtcDateTime, utcnow

REPORT_STATUSES = ("applied", "failed")


class DesiredConfig(Base):
    """The signed, versioned document on the device's retained config topic."""

    __tablename__ = "desired_config"
    __table_args__ = (Index("ix_desired_config_version", "version"),)

    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    doc: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The device's last config/reported message: the version it handled and how it went.
    reported_version: Mapped[int] = mapped_column(BigInteger, default=0)
    reported_status: Mapped[str] = mapped_column(String(16), default="")
    reported_error: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeviceTag(Base):
    """A free label on a device (e.g. `education`, `pilot`), used to group it in inventories."""

    __tablename__ = "device_tag"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("device.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
