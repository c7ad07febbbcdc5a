"""What blocks a prison's rollout: overdue milestones plus faults from pluggable sources."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from fleet.rollout.models import Milestone

log = logging.getLogger(__name__)

FAULTS_MODULE = "facilities.faults.models"


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
    """Open facilities faults flagged as blocking rollout; nothing while faults cannot say so."""

    NEEDED = ("id", "prison_code", "blocks_rollout")

    def __init__(self) -> None:
        self._columns: dict[str, set[str]] = {}

    def _fault_table(self, session: Session) -> Any | None:
        try:
            module = importlib.import_module(FAULTS_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name and FAULTS_MODULE.startswith(exc.name):
                return None
            raise
        table = getattr(getattr(module, "Fault", None), "__table__", None)
        if table is None:
            return None
        bind = session.get_bind()
        key = str(bind.engine.url)
        if key not in self._columns:
            # The database may be older than the code: use only columns it really has.
            inspector = inspect(bind)
            self._columns[key] = (
                {c["name"] for c in inspector.get_columns(table.name)}
                if inspector.has_table(table.name)
                else set()
            )
            if not all(name in self._columns[key] for name in self.NEEDED):
                log.info("no %s table with %s; no fault blocks rollout", table.name, self.NEEDED)
        present = self._columns[key]
        return table if all(name in present for name in self.NEEDED) else None

    def blockers(
        self, *, session: Session, prison_codes: Sequence[str]
    ) -> dict[str, list[Blocker]]:
        found: dict[str, list[Blocker]] = {code: [] for code in prison_codes}
        table = self._fault_table(session) if prison_codes else None
        if table is None:
            return found
        present = self._columns[str(session.get_bind().engine.url)]
        wanted = [
            table.c[n]
            for n in ("id", "prison_code", "reference", "description", "reported_at")
            if n in present
        ]
        stmt = select(*wanted).where(
            table.c.prison_code.in_(prison_codes), table.c.blocks_rollout.is_(True)
        )
        for finished in ("cleared_at", "closed_at"):
            if finished in present:
                stmt = stmt.where(table.c[finished].is_(None))
        for row in session.execute(stmt.order_by(table.c.id)).mappings():
            reference = str(row.get("reference") or row["id"])
            text = str(row.get("description") or "fault").splitlines()[0][:120]
            opened = row.get("reported_at")
            found[row["prison_code"]].append(
                Blocker(
                    "fault",
                    f"fault {reference}: {text}",
                    opened.date() if opened is not None else None,
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
