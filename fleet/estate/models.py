"""Prisons and the location tree inside each (wing > landing > cell, plus rooms)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, UtcDateTime, utcnow

LOCATION_KINDS = ("wing", "landing", "cell", "room")


class Prison(Base):
    __tablename__ = "prison"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Location(Base):
    __tablename__ = "location"
    __table_args__ = (Index("ix_location_prison_kind", "prison_code", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"), index=True)
    # Full code such as MDI-1-1-001; unique across the estate and what people type.
    path: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
