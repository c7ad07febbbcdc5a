"""Remote actions sent to devices and what became of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, JsonDoc, UtcDateTime, utcnow

ACTIONS = ("reboot", "restart_agent", "lock", "collect_diagnostics", "refresh_config", "ping")
STATUSES = ("queued", "delivered", "done", "failed", "rejected", "expired")
FINAL_STATUSES = frozenset({"done", "failed", "rejected", "expired"})


class DeviceCommand(Base):
    __tablename__ = "device_command"
    __table_args__ = (
        Index("ix_device_command_device_created", "device_id", "created_at"),
        Index("ix_device_command_status_expires", "status", "expires_at"),
    )

    # Also the signed envelope's id, which the device echoes in its reply.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"))
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    requested_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    output: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
