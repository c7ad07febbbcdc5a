"""Locations and enrolled identities for simulated devices, made through the real enrolment path."""

from __future__ import annotations

import difflib
import heapq
import logging
import math
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device
from fleet.enrolment.service import KIND_CODES, EnrolmentError, create_tokens, redeem
from fleet.estate.models import Location, Prison
from fleet.estate.service import generate_locations
from fleet.simulate.state import SimIdentity, SimulatorError, StateFile

log = logging.getLogger(__name__)

DEFAULT_KINDS = ("in_cell_phone", "tablet", "laptop")
# Roughly what a wing holds: a phone in most cells, tablets in many, a few staff laptops.
KIND_WEIGHTS = {"in_cell_phone": 5.0, "tablet": 4.0, "laptop": 1.0, "kiosk": 0.5}
CELL_KINDS = ("in_cell_phone", "tablet")
# Where each kind sits, most preferred location kind first.
PLACEMENT = {
    "in_cell_phone": ("cell", "landing", "room", "wing"),
    "tablet": ("cell", "landing", "room", "wing"),
    "laptop": ("landing", "room", "wing", "cell"),
    "kiosk": ("landing", "room", "wing", "cell"),
}
LANDINGS_PER_WING = 3
CELLS_PER_LANDING = 25
MIN_WINGS = 4
MAX_WINGS = 40
ENROL_BATCH = 100
SIM_ACTOR = "simulator"
SIM_AGENT_VERSION = "0.1.0-sim"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlacedDevice:
    """A simulated device ready to run: its identity and every place a power cut can hit."""

    ident: SimIdentity
    # Its location path, the paths of the locations above it, and its prison code.
    places: frozenset[str]


def plan_kinds(total: int, kinds: Sequence[str]) -> dict[str, int]:
    """Split `total` devices over `kinds` by the estate's typical mix (largest remainder)."""
    weights = {kind: KIND_WEIGHTS[kind] for kind in kinds}
    scale = total / sum(weights.values())
    exact = {kind: w * scale for kind, w in weights.items()}
    counts = {kind: math.floor(v) for kind, v in exact.items()}
    by_remainder = sorted(kinds, key=lambda k: (counts[k] - exact[k], kinds.index(k)))
    for kind in by_remainder[: total - sum(counts.values())]:
        counts[kind] += 1
    return counts


def check_prisons(*, session: Session, codes: Sequence[str]) -> list[str]:
    """Upper-cased codes, or SimulatorError naming the unknown ones and how to find codes."""
    known = dict(session.execute(select(Prison.code, Prison.name)).all())
    if not known:
        raise SimulatorError(
            "the database has no prisons yet: run `estate db upgrade` first (it seeds them)"
        )
    wanted = [code.strip().upper() for code in codes if code.strip()]
    unknown = [code for code in wanted if code not in known]
    if unknown:
        hints = []
        for code in unknown:
            close = difflib.get_close_matches(code, list(known), n=3, cutoff=0.5)
            if close:
                hints.append(f"{code}: did you mean {', '.join(close)}?")
        raise SimulatorError(
            f"unknown prison code(s): {', '.join(unknown)}. "
            + (" ".join(hints) + " " if hints else "")
            + "List the codes with `estate simulate --list-prisons` or GET /api/v1/prisons."
        )
    return list(dict.fromkeys(wanted))


def ensure_locations(*, session: Session, prison_code: str, cells_needed: int) -> int:
    """Give a prison with no cells a regular wing > landing > cell tree; returns rows added."""
    has_cells = session.scalars(
        select(Location.id).where(Location.prison_code == prison_code, Location.kind == "cell")
    ).first()
    if has_cells is not None:
        return 0
    per_wing = LANDINGS_PER_WING * CELLS_PER_LANDING
    wings = min(MAX_WINGS, max(MIN_WINGS, math.ceil(cells_needed / per_wing)))
    return generate_locations(
        session=session,
        prison_code=prison_code,
        wings=wings,
        landings=LANDINGS_PER_WING,
        cells=CELLS_PER_LANDING,
    )


def _verify_identities(*, session: Session, state: StateFile) -> None:
    """Drop identities the database no longer backs; refresh their locations from it."""
    ids = list(state.identities)
    rows: dict[str, tuple[str, str, str | None]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        stmt = (
            select(Device.id, Device.lifecycle, Device.prison_code, Location.path)
            .outerjoin(Location, Device.location_id == Location.id)
            .where(Device.id.in_(chunk))
        )
        for row in session.execute(stmt):
            rows[row.id] = (row.lifecycle, row.prison_code, row.path)
    gone = [i for i in ids if i not in rows or rows[i][0] != "enrolled"]
    if gone:
        log.warning(
            "%d simulated devices in %s are no longer enrolled (revoked, retired or removed); "
            "they are forgotten and replacements enrolled: %s",
            len(gone),
            state.path,
            ", ".join(gone[:10]) + (" ..." if len(gone) > 10 else ""),
        )
        state.forget(gone)
    for device_id, ident in state.identities.items():
        _lifecycle, ident.prison, ident.location = rows[device_id]


def _choose_locations(
    *, session: Session, prison: str, kind: str, existing: Sequence[SimIdentity], count: int
) -> list[str | None]:
    """Spread new devices of a kind over the least occupied suitable locations."""
    if count == 0:
        return []
    candidates: list[str] = []
    for loc_kind in PLACEMENT[kind]:
        candidates = list(
            session.scalars(
                select(Location.path)
                .where(Location.prison_code == prison, Location.kind == loc_kind)
                .order_by(Location.path)
            )
        )
        if candidates:
            break
    if not candidates:
        return [None] * count
    occupied = Counter(ident.location for ident in existing)
    heap = [(occupied[path], i, path) for i, path in enumerate(candidates)]
    heapq.heapify(heap)
    chosen: list[str | None] = []
    for _ in range(count):
        used, i, path = heapq.heappop(heap)
        chosen.append(path)
        heapq.heappush(heap, (used + 1, i, path))
    return chosen


def _enrol_batch(
    *, ctx: Context, state: StateFile, wanted: Sequence[tuple[str, str, str | None]]
) -> list[SimIdentity]:
    """Enrol one batch in one transaction; the state file is written before the commit so a
    committed device's password is never lost (an uncommitted one is forgotten next run)."""
    enrolled = []
    with transaction(ctx.sessions) as session:
        for prison, kind, location in wanted:
            serial = f"SIM-{prison}-{secrets.token_hex(5).upper()}"
            try:
                created = create_tokens(
                    session=session,
                    settings=ctx.settings,
                    actor=SIM_ACTOR,
                    prison_code=prison,
                    kind=kind,
                    location_path=location,
                    count=1,
                )
                redeemed = redeem(
                    session=session,
                    settings=ctx.settings,
                    issuer=ctx.issuer,
                    token=created.tokens[0],
                    serial=serial,
                    hostname=serial.lower(),
                    agent_version=SIM_AGENT_VERSION,
                )
            except EnrolmentError as exc:
                raise SimulatorError(
                    f"enrolling a {kind} in {prison} failed: {exc.message}"
                ) from exc
            enrolled.append(
                SimIdentity(
                    device_id=redeemed.device.id,
                    serial=serial,
                    password=redeemed.password,
                    prison=prison,
                    kind=kind,
                    location=location,
                )
            )
        state.add(enrolled)
        state.save()
    return enrolled


def _places(session: Session, prison: str) -> dict[str, frozenset[str]]:
    """For every location path in a prison, the set of paths from the prison down to it."""
    rows = session.execute(
        select(Location.id, Location.path, Location.parent_id).where(Location.prison_code == prison)
    ).all()
    by_id = {loc_id: (path, parent) for loc_id, path, parent in rows}
    result: dict[str, frozenset[str]] = {}
    for path, parent in by_id.values():
        chain = {prison, path}
        seen = 0
        while parent is not None and parent in by_id and seen < 32:
            up_path, parent = by_id[parent]
            chain.add(up_path)
            seen += 1
        result[path] = frozenset(chain)
    return result


def prepare_estate(
    *,
    ctx: Context,
    state: StateFile,
    prisons: Sequence[str],
    devices_per_prison: int,
    kinds: Sequence[str],
    progress: Progress | None = None,
    batch_size: int = ENROL_BATCH,
) -> list[PlacedDevice]:
    """Make sure every prison has a location tree and its simulated devices are enrolled."""
    say = progress or (lambda _msg: None)
    unknown_kinds = [k for k in kinds if k not in KIND_CODES]
    if unknown_kinds or not kinds:
        raise SimulatorError(
            f"unknown device kind(s) {', '.join(unknown_kinds) or '(none given)'}; "
            f"choose from {', '.join(KIND_CODES)}"
        )
    plan = plan_kinds(devices_per_prison, kinds)
    chosen: dict[tuple[str, str], list[SimIdentity]] = {}
    wanted: list[tuple[str, str, str | None]] = []
    with transaction(ctx.sessions) as session:
        codes = check_prisons(session=session, codes=prisons)
        _verify_identities(session=session, state=state)
        for prison in codes:
            cells_needed = max((plan.get(k, 0) for k in CELL_KINDS), default=0)
            added = ensure_locations(session=session, prison_code=prison, cells_needed=cells_needed)
            if added:
                say(f"{prison}: created {added} locations (wings, landings and cells)")
            for kind, target in plan.items():
                have = sorted(
                    (i for i in state.identities.values() if i.prison == prison and i.kind == kind),
                    key=lambda i: i.device_id,
                )[:target]
                chosen[(prison, kind)] = have
                missing = target - len(have)
                for location in _choose_locations(
                    session=session, prison=prison, kind=kind, existing=have, count=missing
                ):
                    wanted.append((prison, kind, location))
    reused = sum(len(v) for v in chosen.values())
    if reused:
        say(f"reusing {reused} simulated devices from {state.path}")
    for start in range(0, len(wanted), batch_size):
        for ident in _enrol_batch(ctx=ctx, state=state, wanted=wanted[start : start + batch_size]):
            chosen[(ident.prison, ident.kind)].append(ident)
        say(f"enrolled {min(start + batch_size, len(wanted))}/{len(wanted)}")
    placed = []
    with transaction(ctx.sessions) as session:
        for prison in dict.fromkeys(p for p, _k in chosen):
            places = _places(session, prison)
            for kind in plan:
                for ident in chosen[(prison, kind)]:
                    where = places.get(ident.location or "", frozenset({prison}))
                    placed.append(PlacedDevice(ident, where | {prison}))
    return placed
