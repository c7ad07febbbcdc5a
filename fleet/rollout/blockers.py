"""What blocks a prison's rollout: overdue milestones, blocking faults and any other source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities.faults.models import Fault
from facilities.faults.workflow import OPEN_STATUSES
from fleet.rollout.models import Milestone


@dataclass(frozen=True)
class Blocker:
    kind: str  # "milestone" or "fault"
    title: str
    since: date | None
    reference: str


class BlockerSource(Protocol):
    """Anything that can name what blocks rollout at a prison."""

    def blockers(
        self, *, session: Session, prison_codes: Sequence[str]
    ) -> dict[str, list[Blocker]]: ...


def overdue_milestones(milestones: Sequence[Milestone], today: date) -> list[Milestone]:
    return [m for m in milestones if m.done_date is None and m.due_date and m.due_date < today]


def milestone_blockers(milestones: Sequence[Milestone], today: date) -> list[Blocker]:
    return [
        Blocker(
            "milestone", f"{m.name} overdue since {m.due_date}", m.due_date, f"milestone:{m.id}"
        )
        for m in overdue_milestones(milestones, today)
    ]


class FaultBlockers:
    """Open facilities faults at the prison that were reported as blocking the rollout."""

    def blockers(
        self, *, session: Session, prison_codes: Sequence[str]
    ) -> dict[str, list[Blocker]]:
        found: dict[str, list[Blocker]] = {code: [] for code in prison_codes}
        if not prison_codes:
            return found
        stmt = (
            select(Fault.prison_code, Fault.reference, Fault.description, Fault.reported_at)
            .where(
                Fault.prison_code.in_(prison_codes),
                Fault.blocks_rollout.is_(True),
                Fault.status.in_(OPEN_STATUSES),
            )
            .order_by(Fault.reported_at, Fault.id)
        )
        for code, reference, description, reported_at in session.execute(stmt):
            summary = (description or "fault").splitlines()[0][:120]
            found[code].append(
                Blocker(
                    "fault",
                    f"fault {reference}: {summary}",
                    reported_at.date() if reported_at is not None else None,
                    f"fault:{reference}",
                )
            )
        return found


DEFAULT_SOURCES: tuple[BlockerSource, ...] = (FaultBlockers(),)


def external_blockers(
    *,
    session: Session,
    prison_codes: Sequence[str],
    sources: Sequence[BlockerSource] = DEFAULT_SOURCES,
) -> dict[str, list[Blocker]]:
    """Blockers per prison from every source, in source order."""
    found: dict[str, list[Blocker]] = {code: [] for code in prison_codes}
    for source in sources:
        for code, items in source.blockers(session=session, prison_codes=prison_codes).items():
            found.setdefault(code, []).extend(items)
    return found
