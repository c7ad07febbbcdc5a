"""Daily snapshots per prison plan, the programme burn-up and what changed since a day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet.audit.service import record
from fleet.db import utcnow
from fleet.rollout import counts as counting
from fleet.rollout import measure
from fleet.rollout.models import DEVICES_ENROLLED, Milestone, PlanSnapshot, PrisonPlan, Programme

# The burn-up covers at most about three years, ending at the day asked for.
BURNUP_MAX_DAYS = 1100


def take_snapshots(*, session: Session, day: date) -> int:
    """Record every plan's counts for `day` (replacing that day's row) and return how many.

    Also completes each plan's "devices enrolled" milestone once the enrolment threshold is met.
    """
    written = 0
    for programme in session.scalars(select(Programme).order_by(Programme.id)):
        plans = list(
            session.scalars(select(PrisonPlan).where(PrisonPlan.programme_id == programme.id))
        )
        codes = [p.prison_code for p in plans]
        cells = counting.cell_counts(session=session, prison_codes=codes)
        counts = counting.live_counts(
            session=session, prison_codes=codes, kinds=programme.device_kinds
        )
        rows = []
        for plan in plans:
            expected, _ = measure.expected_devices(plan, programme, cells.get(plan.prison_code, 0))
            live = counts.get(plan.prison_code, counting.LiveCounts())
            rows.append(
                {
                    "plan_id": plan.id,
                    "day": day,
                    "expected": expected,
                    "enrolled": live.enrolled,
                    "online": live.online,
                    "healthy": live.healthy,
                    "taken_at": utcnow(),
                }
            )
            _complete_enrolment(session, programme, plan, live.enrolled, expected, day)
        if rows:
            _upsert(session, rows)
            written += len(rows)
    session.flush()
    return written


def _upsert(session: Session, rows: list[dict[str, object]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(PlanSnapshot).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["plan_id", "day"],
        set_={
            name: getattr(stmt.excluded, name)
            for name in ("expected", "enrolled", "online", "healthy", "taken_at")
        },
    )
    session.execute(stmt)


def _complete_enrolment(
    session: Session,
    programme: Programme,
    plan: PrisonPlan,
    enrolled: int,
    expected: int,
    day: date,
) -> None:
    if expected <= 0 or enrolled * 100 < programme.enrolment_threshold_pct * expected:
        return
    milestone = session.scalars(
        select(Milestone).where(Milestone.plan_id == plan.id, Milestone.key == DEVICES_ENROLLED)
    ).first()
    if milestone is not None and milestone.done_date is None:
        milestone.done_date = day
        milestone.done_by = "measured"
        milestone.note = milestone.note or f"{enrolled} of {expected} devices enrolled"
        milestone.version += 1
        record(
            session=session,
            actor="measured",
            action="rollout.milestone.measured",
            target_type="milestone",
            target_id=str(milestone.id),
            prison_code=plan.prison_code,
            detail={"day": day.isoformat(), "enrolled": enrolled, "expected": expected},
        )


@dataclass(frozen=True)
class BurnupPoint:
    day: date
    prisons_live: int
    prisons_planned_live: int
    devices_enrolled: int
    devices_expected: int


def burnup(
    *,
    session: Session,
    programme: Programme,
    plans: Sequence[PrisonPlan],
    until: date,
    days: int = BURNUP_MAX_DAYS,
) -> list[BurnupPoint]:
    """Per day from the programme start (or first snapshot) to `until`, at most `days` days.

    A prison counts as live on a day when that day and the gate_days - 1 before it each had a
    snapshot at or above the gate, as `measure.gate` judges it; one pass per plan.
    """
    earliest = until - timedelta(days=min(days, BURNUP_MAX_DAYS) - 1)
    gate_pct, gate_days = programme.gate_online_pct, programme.gate_days
    # The gate on the first day shown looks back over the days before it. Plain rows, walked
    # once: a whole programme's history is a hundred thousand of them.
    rows = (
        session.connection()
        .execute(
            select(
                PlanSnapshot.plan_id,
                PlanSnapshot.day,
                PlanSnapshot.expected,
                PlanSnapshot.enrolled,
                PlanSnapshot.online,
            )
            .where(
                PlanSnapshot.plan_id.in_([p.id for p in plans]),
                PlanSnapshot.day >= earliest - timedelta(days=gate_days),
                PlanSnapshot.day <= until,
            )
            .order_by(PlanSnapshot.plan_id, PlanSnapshot.day)
        )
        .all()
    )
    first = min((row[1] for row in rows), default=programme.start_date)
    start = max(earliest, min(programme.start_date, first))
    span = (until - start).days + 1
    if span <= 0:
        return []
    origin = start.toordinal()
    live, planned = [0] * span, [0] * span
    enrolled, expected = [0] * span, [0] * span
    streak, previous, current_plan = 0, -2, None
    for plan_id, day, want, have, online in rows:
        ordinal = day.toordinal()
        if plan_id != current_plan:
            streak, previous, current_plan = 0, -2, plan_id
        # measure.share_pct inline: this loop runs once per snapshot row.
        met = want > 0 and round(100.0 * online / want, 1) >= gate_pct
        streak = (streak + 1 if ordinal - previous == 1 else 1) if met else 0
        previous = ordinal
        index = ordinal - origin
        if index >= 0:
            enrolled[index] += have
            expected[index] += want
            live[index] += gate_days > 0 and streak >= gate_days
    # Plans planned to be live by each day: count go-lives per day, then a running total.
    for plan in plans:
        first_day = max(0, plan.planned_go_live.toordinal() - origin)
        if first_day < span:
            planned[first_day] += 1
    for index in range(1, span):
        planned[index] += planned[index - 1]
    return [
        BurnupPoint(start + timedelta(days=i), live[i], planned[i], enrolled[i], expected[i])
        for i in range(span)
    ]


@dataclass(frozen=True)
class Change:
    plan: PrisonPlan
    since: date
    then: measure.DaySnapshot | None
    now: measure.DaySnapshot | None
    live_then: bool
    live_now: bool
    milestones_completed: list[str]


def changes_since(
    *, session: Session, programme: Programme, plans: Sequence[PrisonPlan], since: date, today: date
) -> list[Change]:
    """Per plan: the snapshot on or before `since` against the latest one, and milestones done."""
    ids = [p.id for p in plans]
    history = measure.snapshots_for(session=session, plan_ids=ids, since=date.min, until=today)
    done = select(Milestone).where(Milestone.plan_id.in_(ids), Milestone.done_date > since)
    completed: dict[int, list[str]] = {pid: [] for pid in ids}
    for milestone in session.scalars(done.order_by(Milestone.done_date, Milestone.position)):
        completed[milestone.plan_id].append(milestone.name)
    found = []
    for plan in plans:
        snaps = history[plan.id]
        before = [s for s in snaps if s.day <= since]
        found.append(
            Change(
                plan=plan,
                since=since,
                then=before[-1] if before else None,
                now=snaps[-1] if snaps else None,
                live_then=measure.gate(before, programme, since).live,
                live_now=measure.gate(snaps, programme, today).live,
                milestones_completed=completed[plan.id],
            )
        )
    return found
