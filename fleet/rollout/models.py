"""Rollout programmes, the prisons planned in each, their milestones and daily snapshots."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, JsonDoc, UtcDateTime, utcnow

DEVICES_ENROLLED = "devices_enrolled"
# (key, name, days relative to the planned go-live) a new programme starts from.
DEFAULT_TEMPLATE: tuple[tuple[str, str, int], ...] = (
    ("site_survey", "Site survey", -56),
    ("network_ready", "Network ready", -42),
    ("devices_delivered", "Devices delivered", -28),
    (DEVICES_ENROLLED, "Devices enrolled", -14),
    ("staff_trained", "Staff trained", -7),
    ("go_live", "Go-live", 0),
    ("hypercare_exit", "Hypercare exit", 28),
)


class Programme(Base):
    __tablename__ = "rollout_programme"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    device_kinds: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    devices_per_cell: Mapped[int] = mapped_column(Integer, default=1)
    owner: Mapped[str] = mapped_column(String(200), default="")
    start_date: Mapped[date] = mapped_column(Date)
    target_date: Mapped[date] = mapped_column(Date)
    enrolment_threshold_pct: Mapped[float] = mapped_column(Float, default=95.0)
    gate_online_pct: Mapped[float] = mapped_column(Float, default=95.0)
    gate_days: Mapped[int] = mapped_column(Integer, default=5)
    # [{"key", "name", "offset_days"}]: milestones each new prison plan starts with.
    milestone_template: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PrisonPlan(Base):
    __tablename__ = "rollout_plan"
    __table_args__ = (UniqueConstraint("programme_id", "prison_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("rollout_programme.id", ondelete="CASCADE"), index=True
    )
    prison_code: Mapped[str] = mapped_column(ForeignKey("prison.code"), index=True)
    wave: Mapped[int] = mapped_column(Integer, default=1)
    planned_go_live: Mapped[date] = mapped_column(Date)
    # Entered by a person; None means derived from the cells in the location tree.
    expected_devices: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Milestone(Base):
    __tablename__ = "rollout_milestone"
    __table_args__ = (UniqueConstraint("plan_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rollout_plan.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str] = mapped_column(String(200), default="")
    due_date: Mapped[date | None] = mapped_column(Date)
    done_date: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    # Who completed it: a person's username, or "measured" when the devices showed it.
    done_by: Mapped[str] = mapped_column(String(64), default="")
    # Raised on every change; an edit naming an older version is refused, never merged.
    version: Mapped[int] = mapped_column(Integer, default=1)


class PlanSnapshot(Base):
    """One row per plan per day: what the devices showed when the daily job ran."""

    __tablename__ = "rollout_snapshot"

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("rollout_plan.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    expected: Mapped[int] = mapped_column(Integer, default=0)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    online: Mapped[int] = mapped_column(Integer, default=0)
    healthy: Mapped[int] = mapped_column(Integer, default=0)
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
