"""Web pages for the estate: the overview of every prison, devices needing attention, a prison."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, case, exists, func, select, true
from sqlalchemy.orm import Session, aliased

from fleet.api.deps import DbSession
from fleet.db import utcnow
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location, Prison
from fleet.web.shell import PagePrincipal, page_scope
from fleet.web.templating import make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
REFRESH_SECONDS = 10


@dataclass
class Figures:
    """Device counts for a prison, wing or landing."""

    expected: int = 0  # registered or enrolled: what the rollout plans to have working
    enrolled: int = 0
    online: int = 0
    healthy: int = 0  # online and reporting ok
    critical: int = 0
    last_report: datetime | None = None

    @property
    def offline(self) -> int:
        return self.enrolled - self.online

    @property
    def online_pct(self) -> int:
        return round(100 * self.online / self.enrolled) if self.enrolled else 0

    @property
    def healthy_pct(self) -> int:
        return round(100 * self.healthy / self.enrolled) if self.enrolled else 0

    @property
    def trouble_share(self) -> float:
        """Share of enrolled devices offline or not healthy: what to look at first."""
        return (self.enrolled - self.healthy) / self.enrolled if self.enrolled else 0.0

    def add(self, other: Figures) -> None:
        self.expected += other.expected
        self.enrolled += other.enrolled
        self.online += other.online
        self.healthy += other.healthy
        self.critical += other.critical
        if other.last_report and (not self.last_report or other.last_report > self.last_report):
            self.last_report = other.last_report


def _figure_columns(state: Any = DeviceState) -> list[Any]:
    """Aggregates over devices joined to `state` (the table, or a subquery with its columns)."""
    columns = state.c if hasattr(state, "c") else state
    enrolled = Device.lifecycle == "enrolled"
    online = and_(enrolled, columns.online.is_(True))
    return [
        func.count(),
        func.sum(case((enrolled, 1), else_=0)),
        func.sum(case((online, 1), else_=0)),
        func.sum(case((and_(online, columns.health == "ok"), 1), else_=0)),
        func.sum(case((and_(enrolled, columns.health == "critical"), 1), else_=0)),
        func.max(columns.last_seen),
    ]


def _figures(row: Sequence[Any]) -> Figures:
    expected, enrolled, online, healthy, critical, last = row
    return Figures(
        int(expected or 0),
        int(enrolled or 0),
        int(online or 0),
        int(healthy or 0),
        int(critical or 0),
        last,
    )


def figures_by_prison(*, session: Session) -> dict[str, tuple[str, Figures, bool]]:
    """Per prison: its name, device figures and whether it has any locations."""
    stmt = (
        select(Device.prison_code, *_figure_columns())
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.lifecycle.in_(("registered", "enrolled")))
        .group_by(Device.prison_code)
    )
    counts = {row[0]: _figures(row[1:]) for row in session.execute(stmt)}
    has_places = exists().where(Location.prison_code == Prison.code)
    placed = set(session.scalars(select(Prison.code).where(has_places)))
    return {
        code: (name, counts.get(code, Figures()), code in placed)
        for code, name in session.execute(select(Prison.code, Prison.name))
    }


@dataclass(frozen=True)
class EstateFigures:
    as_of: datetime
    prisons: dict[str, tuple[str, Figures, bool]]


class FiguresCache:
    """The whole estate's figures, recomputed at most every `ttl_s` seconds per database.

    Counting 200,000 devices takes a few hundred milliseconds; every overview and its live
    refresh share one count instead, and the page shows the time the figures are from.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, EstateFigures]] = {}

    def get(self, session: Session) -> EstateFigures:
        key = str(session.get_bind().engine.url)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] >= self.ttl_s:
                figures = EstateFigures(utcnow(), figures_by_prison(session=session))
                entry = (time.monotonic(), figures)
                self._entries[key] = entry
            return entry[1]


FIGURES_TTL_S = 3.0
estate_figures = FiguresCache(FIGURES_TTL_S)


SORTS = {
    "name": lambda r: r["name"].lower(),
    "code": lambda r: r["code"],
    "expected": lambda r: r["figures"].expected,
    "enrolled": lambda r: r["figures"].enrolled,
    "online": lambda r: r["figures"].online_pct,
    "healthy": lambda r: r["figures"].healthy_pct,
    "last_report": lambda r: r["figures"].last_report or datetime.min,
}
COLUMNS = [
    ("name", "Prison", False),
    ("expected", "Devices expected", True),
    ("enrolled", "Enrolled", True),
    ("online", "Online", True),
    ("healthy", "Healthy", True),
    ("last_report", "Last report (UTC)", False),
]


@dataclass
class OverviewQuery:
    q: str = ""
    sort: str = "name"
    order: str = "asc"
    show_all: bool = False
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, request: Request) -> OverviewQuery:
        params = request.query_params
        query = cls(q=params.get("q", "").strip()[:100], show_all=params.get("all") == "1")
        sort, order = params.get("sort", "name"), params.get("order", "asc")
        if sort in SORTS:
            query.sort = sort
        else:
            query.problems.append(f"Cannot sort by {sort[:30]!r}; sorted by prison name")
        query.order = "desc" if order == "desc" else "asc"
        return query

    def link(self, **changes: str) -> str:
        """This view's URL with some parameters changed (sorting, filtering)."""
        values = {"q": self.q, "sort": self.sort, "order": self.order} | changes
        if self.show_all:
            values["all"] = "1"
        return "/estate?" + urlencode({k: v for k, v in values.items() if v})

    def sort_link(self, column: str) -> str:
        flip = "desc" if self.sort == column and self.order == "asc" else "asc"
        return self.link(sort=column, order=flip)


def overview_rows(
    estate: EstateFigures, scope: Sequence[str] | None, query: OverviewQuery
) -> tuple[list[dict[str, Any]], Figures, int]:
    """Rows to show, the total figures over them, and how many prisons were left out."""
    rows: list[dict[str, Any]] = []
    hidden = 0
    needle = query.q.lower()
    for code, (name, figures, placed) in estate.prisons.items():
        if scope is not None and code not in scope:
            continue
        if needle and needle not in code.lower() and needle not in name.lower():
            continue
        if not query.show_all and not placed and not figures.expected:
            hidden += 1
            continue
        rows.append({"code": code, "name": name, "figures": figures})
    rows.sort(key=SORTS[query.sort], reverse=query.order == "desc")
    total = Figures()
    for row in rows:
        total.add(row["figures"])
    return rows, total, hidden


def heat_level(pct: int) -> int:
    """0 (worst) to 4 (best) for colouring a heat strip cell."""
    return min(4, pct // 20) if pct < 100 else 4


@router.get("/estate", response_class=HTMLResponse)
def estate_overview(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    query = OverviewQuery.read(request)
    scope = page_scope(request, principal)
    estate = estate_figures.get(session)
    rows, total, hidden = overview_rows(estate, scope, query)
    context = page_context(
        request,
        page_title="Estate overview",
        principal=principal,
        active_nav="estate",
        rows=rows,
        total=total,
        hidden=hidden,
        query=query,
        columns=COLUMNS,
        heat_level=heat_level,
        refresh_seconds=REFRESH_SECONDS,
        generated_at=estate.as_of.strftime("%H:%M:%S UTC"),
    )
    name = (
        "estate/_figures.html" if request.query_params.get("fragment") else "estate/overview.html"
    )
    return templates.TemplateResponse(request, name, context)


@router.get("/attention", response_class=HTMLResponse)
def needing_attention(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    scope = page_scope(request, principal)
    rows, total, _ = overview_rows(estate_figures.get(session), scope, OverviewQuery())
    rows = [r for r in rows if r["figures"].offline or r["figures"].critical]
    rows.sort(key=lambda r: (-(r["figures"].offline + r["figures"].critical), r["name"]))
    return templates.TemplateResponse(
        request,
        "estate/attention.html",
        page_context(
            request,
            page_title="Devices needing attention",
            principal=principal,
            active_nav="attention",
            rows=rows,
            total=total,
        ),
    )


@dataclass
class Place:
    path: str
    name: str
    figures: Figures = field(default_factory=Figures)
    landings: list[Place] = field(default_factory=list)


def places_in_prison(*, session: Session, prison_code: str) -> tuple[list[Place], Figures]:
    """Wings with their landings and device figures; devices elsewhere count in the total."""
    locations = session.execute(
        select(Location.id, Location.parent_id, Location.kind, Location.path, Location.name).where(
            Location.prison_code == prison_code, Location.kind != "cell"
        )
    ).all()
    by_id = {row.id: row for row in locations}
    places = {row.id: Place(row.path, row.name) for row in locations if row.kind != "room"}
    wings = [places[row.id] for row in locations if row.kind == "wing"]
    for row in locations:
        if row.kind == "landing" and row.parent_id in places:
            places[row.parent_id].landings.append(places[row.id])
    devices = Device.prison_code == prison_code, Device.lifecycle.in_(("registered", "enrolled"))
    # Devices in cells are counted on the cell's landing, so a prison's figures come back
    # in a few dozen groups rather than one per cell.
    if session.get_bind().dialect.name == "postgresql":
        # Lateral lookups by primary key for a prison's ~2,000 devices. LIMIT 1 keeps the
        # planner from flattening them into joins that scan every location and state row.
        spot = (
            select(Location.kind, Location.parent_id, Location.id)
            .where(Location.id == Device.location_id)
            .limit(1)
            .lateral("spot")
        )
        state = (
            select(DeviceState.online, DeviceState.health, DeviceState.last_seen)
            .where(DeviceState.device_id == Device.id)
            .limit(1)
            .lateral("state")
        )
        place = case((spot.c.kind == "cell", spot.c.parent_id), else_=spot.c.id).label("place")
        stmt = (
            select(place, *_figure_columns(state))
            .select_from(Device)
            .outerjoin(spot, true())
            .outerjoin(state, true())
        )
    else:  # SQLite has no LATERAL; its small demo tables join fine
        cell = aliased(Location)
        place = case((cell.kind == "cell", cell.parent_id), else_=cell.id).label("place")
        stmt = (
            select(place, *_figure_columns())
            .select_from(Device)
            .outerjoin(cell, cell.id == Device.location_id)
            .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        )
    stmt = stmt.where(*devices).group_by(place)
    total = Figures()
    for place_id, *values in session.execute(stmt):
        figures = _figures(values)
        total.add(figures)
        while place_id is not None and place_id in by_id:
            if place_id in places:
                places[place_id].figures.add(figures)
            place_id = by_id[place_id].parent_id
    wings.sort(key=lambda w: w.path)
    for wing in wings:
        wing.landings.sort(key=lambda landing: landing.path)
    return wings, total


@router.get("/prisons/{code}", response_class=HTMLResponse)
def prison_page(
    code: str, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    code = code.upper()
    scope = page_scope(request, principal)
    prison = session.get(Prison, code)
    # Outside the caseload reads as not found, so a prison's existence does not leak.
    if prison is None or (scope is not None and code not in scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    wings, total = places_in_prison(session=session, prison_code=code)
    first = sorted(
        (w for w in wings if w.figures.enrolled and w.figures.trouble_share > 0),
        key=lambda w: (-w.figures.trouble_share, w.path),
    )[:3]
    return templates.TemplateResponse(
        request,
        "estate/prison.html",
        page_context(
            request,
            page_title=prison.name,
            principal=principal,
            active_nav="estate",
            prison=prison,
            wings=wings,
            total=total,
            look_first=first,
        ),
    )
