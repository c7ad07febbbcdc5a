"""Ansible job templates, the jobs launched from them, their stages, hosts and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, JsonDoc, UtcDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")

# awaiting_approval -> queued -> running <-> baking -> successful | failed
#                                  |-> paused -> queued (resume) | aborted
# cancelled from anywhere before the end; rejected by the approver.
JOB_STATUSES = (
    "awaiting_approval",
    "queued",
    "running",
    "baking",
    "paused",
    "successful",
    "failed",
    "cancelled",
    "aborted",
    "rejected",
)
FINAL_JOB_STATUSES = frozenset({"successful", "failed", "cancelled", "aborted", "rejected"})
STAGE_STATUSES = ("pending", "running", "successful", "failed", "cancelled", "skipped")
HOST_STATUSES = ("pending", "running", "ok", "failed", "unreachable", "cancelled", "skipped")


class JobTemplate(Base):
    """A playbook with the devices it targets, its variables and how it runs."""

    __tablename__ = "job_template"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Relative to the playbooks directory, e.g. "reboot.yml".
    playbook: Mapped[str] = mapped_column(String(200))
    selector: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    variables_schema: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    forks: Mapped[int] = mapped_column(Integer, default=10)
    timeout_s: Mapped[int] = mapped_column(Integer, default=1800)
    check_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    rollout: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Job(Base):
    """One launch of a playbook against a frozen set of devices."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_status_next_stage", "status", "next_stage_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("job_template.id", ondelete="SET NULL"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"), index=True)
    # launch, rerun_failed or retry_online
    origin: Mapped[str] = mapped_column(String(20), default="launch")
    name: Mapped[str] = mapped_column(String(200))
    playbook: Mapped[str] = mapped_column(String(200))
    selector: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    forks: Mapped[int] = mapped_column(Integer, default=10)
    timeout_s: Mapped[int] = mapped_column(Integer, default=1800)
    check_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    rollout: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    explanation: Mapped[str] = mapped_column(Text, default="")
    # Every prison a target sits in: who may see the job follows from these.
    prison_codes: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    estate_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    launched_by: Mapped[str] = mapped_column(String(100))
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The inventory exactly as the run saw it, and its SHA-256, for audit and reruns.
    inventory: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    inventory_sha256: Mapped[str] = mapped_column(String(64), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str] = mapped_column(String(200), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_stage_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When a run was last sent to the workers (or is due to arrive), so the sweep re-sends a
    # lost one without piling up copies behind a busy worker.
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class JobStage(Base):
    """One step of a staged rollout: the canary, then each wave."""

    __tablename__ = "job_stage"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(120))
    device_ids: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class JobHost(Base):
    """What one device did in a job."""

    __tablename__ = "job_host"
    __table_args__ = (
        UniqueConstraint("job_id", "device_id"),
        Index("ix_job_host_retry_online", "retry_when_online", "retried_by_job_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), index=True)
    prison_code: Mapped[str] = mapped_column(String(8))
    stage: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    ok: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    # Queued to run again when the device's next birth shows it online.
    retry_when_online: Mapped[bool] = mapped_column(Boolean, default=False)
    retried_by_job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class JobEvent(Base):
    """One ansible-runner event, in the order the run produced it."""

    __tablename__ = "job_event"
    __table_args__ = (
        UniqueConstraint("job_id", "stage", "counter"),
        Index("ix_job_event_job_id_id", "job_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    stage: Mapped[int] = mapped_column(Integer, default=0)
    counter: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(60))
    host: Mapped[str | None] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(300), default="")
    stdout: Mapped[str] = mapped_column(Text, default="")
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
