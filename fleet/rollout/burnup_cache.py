"""The overview page's recent burn-up, kept until the snapshots or plans behind it change."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet.rollout.history import BurnupPoint, burnup
from fleet.rollout.models import PlanSnapshot, PrisonPlan, Programme

Key = tuple[object, ...]


class RecentBurnups:
    """Burn-ups per programme view; one is reused while its snapshot rows stay the same.

    Snapshots change once a day (the daily job, or a re-run), but the overview draws the last
    90 days on every view: walking some 11,000 snapshot rows was a third of the page's time at
    120 prisons. The count and newest `taken_at` of the rows it covers (one index range read)
    tell whether any was written since, since every upsert stamps `taken_at`.
    """

    MAX_ENTRIES = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Key, tuple[tuple[int, datetime | None], list[BurnupPoint]]] = {}

    def get(
        self,
        *,
        session: Session,
        programme: Programme,
        plans: Sequence[PrisonPlan],
        until: date,
        days: int,
    ) -> list[BurnupPoint]:
        ids = [p.id for p in plans]
        key: Key = (
            str(session.get_bind().engine.url),
            programme.id,
            programme.start_date,
            programme.gate_online_pct,
            programme.gate_days,
            until,
            days,
            tuple(sorted((p.id, p.planned_go_live) for p in plans)),
        )
        covered = until - timedelta(days=days + programme.gate_days)
        rows, newest = session.execute(
            select(func.count(), func.max(PlanSnapshot.taken_at)).where(
                PlanSnapshot.plan_id.in_(ids), PlanSnapshot.day >= covered
            )
        ).one()
        marker = (int(rows), newest)
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == marker:
            return list(hit[1])
        points = burnup(session=session, programme=programme, plans=plans, until=until, days=days)
        with self._lock:
            self._entries[key] = (marker, points)
            while len(self._entries) > self.MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]
        return list(points)


RECENT_BURNUPS = RecentBurnups()
