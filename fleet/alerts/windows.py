"""Managing quiet windows: checked for sense, scoped to the caseload, audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from fleet.alerts.models import QuietWindow
from fleet.alerts.quiet import active_until, label, live_windows
from fleet.alerts.rules import RuleRefused
from fleet.alerts.schemas import QuietIn, QuietOut
from fleet.audit.service import record
from fleet.estate.models import Prison


def window_out(window: QuietWindow, now: datetime) -> QuietOut:
    on, until = active_until(window, now)
    return QuietOut(
        id=window.id,
        prison_code=window.prison_code,
        kind=window.kind,
        reason=window.reason,
        rule_kinds=list(window.rule_kinds),
        days=list(window.days),
        start_time=window.start_time,
        end_time=window.end_time,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        created_by=window.created_by,
        created_at=window.created_at,
        active=on,
        until=until if on else None,
        label=label(window, until, now) if on else "",
    )


def _problem(data: QuietIn, now: datetime) -> tuple[tuple[str, ...], str] | None:
    if data.kind == "scheduled":
        for name in ("start_time", "end_time"):
            if getattr(data, name) is None:
                return ("body", name), f"A scheduled window needs {name}, like 22:00."
        if data.start_time == data.end_time:
            return ("body", "end_time"), "end_time must differ from start_time."
        if data.starts_at or data.ends_at:
            return ("body", "starts_at"), "A scheduled window uses days and times, not dates."
        return None
    if data.start_time or data.end_time or data.days:
        return ("body", "start_time"), "An ad hoc window uses starts_at and ends_at, not times."
    for name in ("starts_at", "ends_at"):
        value = getattr(data, name)
        if value is not None and value.tzinfo is None:
            return ("body", name), f"{name} needs a time zone, e.g. 2026-11-26T22:00:00Z."
    start = data.starts_at or now
    if data.ends_at is not None and data.ends_at <= now:
        return ("body", "ends_at"), "is already past; a window must end in the future."
    if data.ends_at is not None and data.ends_at <= start:
        return ("body", "ends_at"), "must be after starts_at."
    return None


def create_window(
    *,
    session: Session,
    actor: str,
    data: QuietIn,
    caseload: Sequence[str] | None,
    now: datetime,
) -> QuietWindow:
    code = data.prison_code.upper()
    if session.get(Prison, code) is None:
        raise RuleRefused(
            422,
            f"{data.prison_code!r} is not a prison code in the estate.",
            ("body", "prison_code"),
        )
    if caseload and code not in caseload:
        raise RuleRefused(
            422,
            f"{code} is not in your caseload; choose one of your prisons.",
            ("body", "prison_code"),
        )
    if problem := _problem(data, now):
        raise RuleRefused(422, problem[1], problem[0])
    window = QuietWindow(
        prison_code=code,
        kind=data.kind,
        reason=data.reason.strip(),
        rule_kinds=sorted(set(data.rule_kinds)),
        days=data.days,
        start_time=data.start_time,
        end_time=data.end_time,
        starts_at=(data.starts_at or now) if data.kind == "ad_hoc" else None,
        ends_at=data.ends_at,
        created_by=actor,
        created_at=now,
    )
    session.add(window)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="quiet_window.created",
        target_type="quiet_window",
        target_id=str(window.id),
        prison_code=code,
        detail=data.model_dump(mode="json"),
    )
    return window


def list_windows(
    *, session: Session, caseload: Sequence[str] | None, now: datetime
) -> list[QuietWindow]:
    return live_windows(session=session, now=now, prisons=caseload or None)


def end_window(*, session: Session, actor: str, window: QuietWindow, now: datetime) -> None:
    """End an ad hoc window now, or remove a scheduled one."""
    window.archived_at, window.archived_by = now, actor
    if window.kind == "ad_hoc" and (window.ends_at is None or window.ends_at > now):
        window.ends_at = now
    record(
        session=session,
        actor=actor,
        action="quiet_window.ended",
        target_type="quiet_window",
        target_id=str(window.id),
        prison_code=window.prison_code,
        detail={"reason": window.reason},
    )
    session.flush()
