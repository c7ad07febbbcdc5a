"""Finding faults: filtered, sorted pages with cursors, and one fault's timeline and files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from facilities.faults.models import Fault, FaultAttachment, FaultEvent
from fleet.api.pagination import bounded_count
from fleet.estate.models import Location
from fleet.estate.service import subtree_ids

SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "reported_at": Fault.reported_at,
    "priority": Fault.priority,
    "due_clear_at": Fault.due_clear_at,
    "reference": Fault.reference,
}
SORTS = tuple(s for name in SORT_COLUMNS for s in (name, "-" + name))


@dataclass(frozen=True)
class FaultFilters:
    prisons: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    within: int | None = None  # location id: at or beneath it
    device_id: str | None = None
    breached: bool | None = None
    at_risk: bool | None = None
    recurring: bool | None = None
    source: str | None = None
    blocks_rollout: bool | None = None
    assignee: str | None = None
    q: str | None = None  # text in the reference, description or location code


@dataclass(frozen=True)
class FaultPage:
    faults: list[Fault]
    count: int
    last: list[Any] | None = field(default=None)
    capped: bool = False  # more than `count` match: counting stopped at the cap


def _conditions(filters: FaultFilters, scope: Sequence[str] | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if scope is not None:
        conds.append(Fault.prison_code.in_(scope))
    if filters.prisons:
        conds.append(Fault.prison_code.in_(filters.prisons))
    if filters.statuses:
        conds.append(Fault.status.in_(filters.statuses))
    if filters.priorities:
        conds.append(Fault.priority.in_(filters.priorities))
    if filters.categories:
        conds.append(Fault.category.in_(filters.categories))
    if filters.within is not None:
        conds.append(Fault.location_id.in_(subtree_ids(filters.within)))
    if filters.device_id:
        conds.append(Fault.device_id == filters.device_id)
    for flag, column in (
        (filters.breached, Fault.breached_at),
        (filters.at_risk, Fault.at_risk_at),
    ):
        if flag is not None:
            conds.append(column.is_not(None) if flag else column.is_(None))
    if filters.recurring is not None:
        conds.append(Fault.recurring.is_(filters.recurring))
    if filters.blocks_rollout is not None:
        conds.append(Fault.blocks_rollout.is_(filters.blocks_rollout))
    if filters.source:
        conds.append(Fault.source == filters.source)
    if filters.assignee:
        conds.append(Fault.assignee == filters.assignee)
    if filters.q:
        places = select(Location.id).where(Location.path.istartswith(filters.q, autoescape=True))
        conds.append(
            or_(
                Fault.reference.icontains(filters.q, autoescape=True),
                Fault.description.icontains(filters.q, autoescape=True),
                Fault.location_id.in_(places),
            )
        )
    return conds


def cursor_key(sort: str, value: Any) -> Any:
    """A cursor's JSON key as the column's type; ValueError if it cannot be."""
    if sort.lstrip("-") in ("reported_at", "due_clear_at"):
        when = datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            raise ValueError("cursor time without a timezone")
        return when
    return str(value)


def list_faults(
    *,
    session: Session,
    scope: Sequence[str] | None,
    filters: FaultFilters,
    sort: str = "-reported_at",
    limit: int = 50,
    after: list[Any] | None = None,
    count_cap: int | None = None,
) -> FaultPage:
    """One page of faults; `after` is the previous page's `last` with its key through cursor_key;
    the total is counted up to `count_cap` (None: exactly)."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    column = SORT_COLUMNS[name]
    conds = _conditions(filters, scope)
    matching = select(literal(1)).select_from(Fault).where(*conds)
    count, capped = bounded_count(session, matching, count_cap)
    stmt = select(Fault).where(*conds)
    if after is not None:
        pair = tuple_(column, Fault.id)
        bound = tuple_(literal(after[0], column.type), literal(int(after[1]), Fault.id.type))
        stmt = stmt.where(pair < bound if descending else pair > bound)
    order = [column.desc(), Fault.id.desc()] if descending else [column.asc(), Fault.id.asc()]
    faults = list(session.scalars(stmt.order_by(*order).limit(limit + 1)))
    if len(faults) <= limit:
        return FaultPage(faults, count, capped=capped)
    faults = faults[:limit]
    key = getattr(faults[-1], name)
    last = [key.isoformat() if isinstance(key, datetime) else key, faults[-1].id]
    return FaultPage(faults, count, last, capped)


def timeline(*, session: Session, fault: Fault) -> list[FaultEvent]:
    return list(
        session.scalars(
            select(FaultEvent)
            .where(FaultEvent.fault_id == fault.id)
            .order_by(FaultEvent.ts, FaultEvent.id)
        )
    )


def attachments(*, session: Session, fault: Fault) -> list[FaultAttachment]:
    return list(
        session.scalars(
            select(FaultAttachment)
            .where(FaultAttachment.fault_id == fault.id)
            .order_by(FaultAttachment.created_at)
        )
    )
