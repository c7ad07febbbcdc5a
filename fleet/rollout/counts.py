"""Devices counted for rollout: cells per prison, enrolled/online/healthy now, dark landings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, case, false, func, literal, select
from sqlalchemy.orm import Session, aliased

from fleet.db import utcnow
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location

log = logging.getLogger(__name__)

# One silent device is that device's problem; a landing is dark when at least this many are.
DARK_MIN_DEVICES = 2


@dataclass(frozen=True)
class LiveCounts:
    enrolled: int = 0
    online: int = 0
    healthy: int = 0


def cell_counts(*, session: Session, prison_codes: Sequence[str] | None) -> dict[str, int]:
    """Cells per prison in the location tree; every prison when `prison_codes` is None."""
    if prison_codes is not None and not prison_codes:
        return {}
    stmt = select(Location.prison_code, func.count()).where(Location.kind == "cell")
    if prison_codes is not None:
        stmt = stmt.where(Location.prison_code.in_(prison_codes))
    rows = session.execute(stmt.group_by(Location.prison_code)).all()
    return {code: int(count) for code, count in rows}


def live_counts(
    *, session: Session, prison_codes: Sequence[str] | None, kinds: Sequence[str]
) -> dict[str, LiveCounts]:
    """Enrolled devices of these kinds per prison, and how many are online and healthy now.

    Every prison when `prison_codes` is None.
    """
    if (prison_codes is not None and not prison_codes) or not kinds:
        return {}
    online = func.coalesce(DeviceState.online, false())
    stmt = (
        select(
            Device.prison_code,
            func.count(),
            func.sum(case((online, 1), else_=0)),
            func.sum(case((and_(online, DeviceState.health == "ok"), 1), else_=0)),
        )
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.kind.in_(kinds), Device.lifecycle == "enrolled")
    )
    if prison_codes is not None:
        stmt = stmt.where(Device.prison_code.in_(prison_codes))
    rows = session.execute(stmt.group_by(Device.prison_code)).all()
    return {
        code: LiveCounts(int(enrolled), int(on or 0), int(ok or 0))
        for code, enrolled, on, ok in rows
    }


def dark_landings(
    *, session: Session, prison_codes: Sequence[str] | None, kinds: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """Per prison, (landing path, devices) for landings where devices are off and none is on.

    A whole landing going quiet at once is a power or network fault, not devices left unplugged.
    Every prison when `prison_codes` is None.
    """
    if (prison_codes is not None and not prison_codes) or not kinds:
        return {}
    # Start from the offline devices (a few percent) and probe each candidate landing for one
    # online device. Materialised steps keep PostgreSQL to that order: left to itself it joins
    # every cell to its landing first (it misjudges that join by a factor of a hundred).
    wanted = [Device.kind.in_(kinds), Device.lifecycle == "enrolled"]
    if prison_codes is not None:
        wanted.append(Device.prison_code.in_(prison_codes))
    offline = (
        select(Device.prison_code, Location.parent_id.label("landing_id"))
        .join(DeviceState, DeviceState.device_id == Device.id)
        .join(Location, Location.id == Device.location_id)
        .where(DeviceState.online.is_(False), *wanted)
        .cte("offline_device")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    candidates = (
        select(offline.c.prison_code, offline.c.landing_id, func.count().label("devices"))
        .group_by(offline.c.prison_code, offline.c.landing_id)
        .having(func.count() >= DARK_MIN_DEVICES)
        .cte("dark_candidate")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    landing, cell, other, other_state = (
        aliased(Location),
        aliased(Location),
        aliased(Device),
        aliased(DeviceState),
    )
    # Any device online in a cell of the landing, whatever its kind, shows the landing has
    # power and network. The probe filters on nothing but the landing, so it always runs from
    # the parent and location indexes and stops at the first device found (LIMIT 1).
    lit = (
        select(literal(1))
        .select_from(cell)
        .join(other, other.location_id == cell.id)
        .join(other_state, other_state.device_id == other.id)
        .where(cell.parent_id == landing.id, other_state.online.is_(True))
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(candidates.c.prison_code, landing.path, candidates.c.devices)
        .join(landing, landing.id == candidates.c.landing_id)
        .where(landing.kind == "landing", lit.is_(None))
        .order_by(candidates.c.prison_code, landing.path)
    )
    found: dict[str, list[tuple[str, int]]] = {}
    for code, path, devices in rows:
        found.setdefault(code, []).append((path, int(devices)))
    return found


@dataclass(frozen=True)
class Counts:
    """Cells, live device counts and dark landings per prison, and when they were counted."""

    cells: dict[str, int]
    live: dict[str, LiveCounts]
    dark: dict[str, list[tuple[str, int]]]
    counted_at: datetime


def count_now(
    *, session: Session, prison_codes: Sequence[str] | None, kinds: Sequence[str]
) -> Counts:
    """Everything in Counts, counted now; every prison when `prison_codes` is None."""
    return Counts(
        cell_counts(session=session, prison_codes=prison_codes),
        live_counts(session=session, prison_codes=prison_codes, kinds=kinds),
        dark_landings(session=session, prison_codes=prison_codes, kinds=kinds),
        utcnow(),
    )


class EstateCounts:
    """Whole-estate counts shared by overview requests in this process, recounted in the background.

    Counting every device in scope scans the device table (about 160 ms at 200,000 devices), so
    the programme overview, its export and refreshes share one count. A count is never served
    older than `max_age_s`; once it is half that old the next request starts a recount on a
    thread of its own and is served the count in hand, so a steady stream of requests never
    waits for a count.
    """

    MAX_ENTRIES = 16

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, tuple[str, ...]], tuple[float, Counts]] = {}
        self._recounts: dict[tuple[str, tuple[str, ...]], threading.Thread] = {}

    def get(self, *, session: Session, kinds: Sequence[str], max_age_s: float) -> Counts:
        engine = session.get_bind().engine
        key = (str(engine.url), tuple(sorted(kinds)))
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] <= max_age_s:
                if now - hit[0] > max_age_s / 2 and key not in self._recounts:
                    recount = threading.Thread(
                        target=self._recount,
                        args=(key, engine, kinds),
                        name="rollout-estate-recount",
                        daemon=True,
                    )
                    self._recounts[key] = recount
                    recount.start()
                return hit[1]
        started = self._clock()
        counts = count_now(session=session, prison_codes=None, kinds=kinds)
        self._store(key, started, counts)
        return counts

    def wait_for_recounts(self, timeout_s: float) -> None:
        """Block until recounts under way have finished (for tests and orderly shutdown)."""
        with self._lock:
            running = list(self._recounts.values())
        for thread in running:
            thread.join(timeout_s)

    def _recount(
        self, key: tuple[str, tuple[str, ...]], engine: Engine, kinds: Sequence[str]
    ) -> None:
        try:
            started = self._clock()
            with Session(engine) as session:
                counts = count_now(session=session, prison_codes=None, kinds=kinds)
            self._store(key, started, counts)
        except Exception:
            # The count in hand ages out and the next request past max_age counts inline.
            log.exception("background recount of the estate's rollout devices failed")
        finally:
            with self._lock:
                self._recounts.pop(key, None)

    def _store(self, key: tuple[str, tuple[str, ...]], started: float, counts: Counts) -> None:
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current[0] > started:
                return  # a later count already landed
            self._entries[key] = (started, counts)
            while len(self._entries) > self.MAX_ENTRIES:
                oldest = min(self._entries, key=lambda k: self._entries[k][0])
                del self._entries[oldest]


ESTATE_COUNTS = EstateCounts()


def counts_for(
    *, session: Session, prison_codes: Sequence[str], kinds: Sequence[str], max_age_s: float = 0
) -> Counts:
    """Counts for these prisons: fresh, or the estate's if counted within `max_age_s`."""
    if max_age_s <= 0:
        return count_now(session=session, prison_codes=prison_codes, kinds=kinds)
    estate = ESTATE_COUNTS.get(session=session, kinds=kinds, max_age_s=max_age_s)
    wanted = set(prison_codes)
    return Counts(
        {c: n for c, n in estate.cells.items() if c in wanted},
        {c: n for c, n in estate.live.items() if c in wanted},
        {c: d for c, d in estate.dark.items() if c in wanted},
        estate.counted_at,
    )
