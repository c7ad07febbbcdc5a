"""Reading jobs back: history within a caseload, one job with its stages, hosts and events."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from fleet.jobs.models import Job, JobEvent, JobHost, JobStage
from fleet.jobs.schemas import EventOut, HostOut, JobOut, StageOut


def within_scope(scope: Sequence[str] | None) -> ColumnElement[bool] | None:
    """Jobs whose every host is in the caseload (None: no restriction)."""
    if scope is None:
        return None
    outside = exists().where(JobHost.job_id == Job.id, JobHost.prison_code.not_in(scope))
    return ~outside


def list_jobs(
    *,
    session: Session,
    scope: Sequence[str] | None,
    status: Sequence[str] = (),
    before_id: int | None = None,
    limit: int = 50,
) -> list[Job]:
    """Newest first; `before_id` continues from the previous page."""
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    visible = within_scope(scope)
    if visible is not None:
        stmt = stmt.where(visible)
    if status:
        stmt = stmt.where(Job.status.in_(status))
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    return list(session.scalars(stmt))


def stages_of(*, session: Session, job_id: int) -> list[StageOut]:
    rows = session.scalars(
        select(JobStage).where(JobStage.job_id == job_id).order_by(JobStage.position)
    )
    return [
        StageOut(
            position=s.position,
            label=s.label,
            devices=len(s.device_ids),
            status=s.status,
            started_at=s.started_at,
            finished_at=s.finished_at,
        )
        for s in rows
    ]


def host_counts(*, session: Session, job_id: int) -> dict[str, int]:
    rows = session.execute(
        select(JobHost.status, func.count())
        .where(JobHost.job_id == job_id)
        .group_by(JobHost.status)
    )
    return {status: int(count) for status, count in rows}


SECRET_KEYS = re.compile(r"(psk|passphrase|password|secret|token|private_key)$", re.IGNORECASE)
MASK = "********"


def masked(value: Any) -> Any:
    """Variables as shown back to people: values under secret-sounding names hidden."""
    if isinstance(value, dict):
        return {k: MASK if SECRET_KEYS.search(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def job_out(*, session: Session, job: Job, detail: bool = True) -> JobOut:
    out = JobOut.model_validate(job, from_attributes=True)
    out.variables = masked(job.variables)
    if detail:
        out.stages = stages_of(session=session, job_id=job.id)
        out.hosts = host_counts(session=session, job_id=job.id)
    return out


def hosts_of(*, session: Session, job_id: int, status: str | None = None) -> list[HostOut]:
    stmt = (
        select(JobHost).where(JobHost.job_id == job_id).order_by(JobHost.stage, JobHost.device_id)
    )
    if status:
        stmt = stmt.where(JobHost.status == status)
    return [HostOut.model_validate(h, from_attributes=True) for h in session.scalars(stmt)]


def events_of(
    *, session: Session, job_id: int, after_id: int = 0, limit: int = 500
) -> list[EventOut]:
    rows = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return [EventOut.model_validate(e, from_attributes=True) for e in rows]


def awaiting_approval(*, session: Session, scope: Sequence[str] | None) -> list[Job]:
    return list_jobs(session=session, scope=scope, status=("awaiting_approval",), limit=200)


def artifacts_of(folder: Path) -> list[dict[str, Any]]:
    """Files a job fetched from devices, relative to its artifacts directory."""
    if not folder.is_dir():
        return []
    return [
        {"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    ]


def artifact_file(folder: Path, relative: str) -> Path | None:
    """The artifact at `relative`, or None if it is missing or would leave the folder."""
    try:
        candidate = (folder / relative).resolve()
        inside = candidate.is_relative_to(folder.resolve()) and candidate.is_file()
    except (OSError, ValueError):  # a NUL byte or an over-long name is simply not a file here
        return None
    return candidate if inside else None
