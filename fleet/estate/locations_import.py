"""Import a prison's location tree from CSV: check every row first, then write all or nothing."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from fleet.audit.service import record
from fleet.estate.models import LOCATION_KINDS, Location, Prison
from fleet.estate.service import (
    default_capacity,
    derived_parent_path,
    path_problem,
    placement_problem,
    prison_of_path,
)

REQUIRED_COLUMNS = ("path", "kind", "name")
OPTIONAL_COLUMNS = ("parent", "capacity")
HEADER_HINT = "path,kind,name[,parent][,capacity]"
PROGRESS_EVERY = 1000
_BATCH = 1000
# Parents are written before children: wings and prison-level rooms, then landings, then cells.
_DEPTH = {"wing": 1, "landing": 2, "cell": 3}

Progress = Callable[[str, int, int], None]


class ImportRefused(Exception):
    """The file was not imported; `problems` lists every reason, each a sentence to act on."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass(frozen=True)
class Row:
    line: int
    path: str
    kind: str
    name: str
    parent: str | None
    capacity: int | None


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int
    prisons: list[str]
    dry_run: bool

    def summary(self) -> str:
        counts = f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"
        return f"dry run, nothing written: {counts}" if self.dry_run else counts


@dataclass
class _Plan:
    new: list[Row] = field(default_factory=list)
    parent_of: dict[str, str | None] = field(default_factory=dict)
    updates: list[dict[str, object]] = field(default_factory=list)
    unchanged: int = 0
    prisons: set[str] = field(default_factory=set)


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def read_rows(data: bytes, *, progress: Progress = _no_progress) -> tuple[list[Row], list[str]]:
    """Parse the CSV bytes into rows and per-line problems; refuse a file that is not UTF-8 CSV
    text with the expected header."""
    if b"\x00" in data[:65536]:
        raise ImportRefused(
            ["the file is binary, not CSV text; export the sheet as 'CSV UTF-8' and try again"]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            [
                f"the file is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); "
                "save it as 'CSV UTF-8' and try again"
            ]
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportRefused([f"the file is empty; the first line must be {HEADER_HINT}"]) from None
    except csv.Error as exc:
        raise ImportRefused([f"line 1: the header is not valid CSV ({exc})"]) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        found = ",".join(header)[:200]
        raise ImportRefused(
            [f"line 1: the header must be {HEADER_HINT} (any order); found {found!r}"]
        )
    index = {name: i for i, name in enumerate(header)}
    rows: list[Row] = []
    problems: list[str] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    f"line {line}: expected {len(header)} columns ({','.join(header)}), "
                    f"found {len(cells)}; check for a stray or missing comma"
                )
                continue
            rows.append(_row(line, cells, index, problems))
            if len(rows) % PROGRESS_EVERY == 0:
                progress("read", len(rows), 0)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV ({exc}); check the quoting")
    return rows, problems


def _row(line: int, cells: list[str], index: dict[str, int], problems: list[str]) -> Row:
    def cell(name: str) -> str:
        return cells[index[name]].strip() if name in index else ""

    capacity: int | None = None
    raw_capacity = cell("capacity")
    if raw_capacity:
        if raw_capacity.isdigit():
            capacity = int(raw_capacity)
        else:
            problems.append(
                f"line {line}: capacity {raw_capacity!r} must be a whole number of 0 or more"
            )
    return Row(
        line=line,
        path=cell("path").upper(),
        kind=cell("kind").lower(),
        name=cell("name"),
        parent=cell("parent").upper() or None,
        capacity=capacity,
    )


def _check_row(row: Row, known_prisons: set[str], only_prison: str | None) -> list[str]:
    at = f"line {row.line}"
    if not row.path:
        return [f"{at}: path is empty; give the location's code such as MDI-1-1-001"]
    problems = []
    prison = prison_of_path(row.path)
    shape = path_problem(row.path, prison, None)
    if shape:
        problems.append(f"{at}: {shape}")
    elif prison not in known_prisons:
        problems.append(
            f"{at}: unknown prison {prison!r} (paths start with a prison code); "
            "see /api/v1/prisons for the codes"
        )
    elif only_prison and prison != only_prison:
        problems.append(f"{at}: {row.path} is in {prison}, but --prison {only_prison} was given")
    if row.kind not in LOCATION_KINDS:
        problems.append(f"{at}: unknown kind {row.kind!r}; use one of {', '.join(LOCATION_KINDS)}")
    if not row.name:
        problems.append(f"{at}: name is empty; give the location a name such as 'Cell 001'")
    elif len(row.name) > 200:
        problems.append(f"{at}: name is longer than 200 characters; shorten it")
    return problems


def plan_import(
    *,
    session: Session,
    rows: list[Row],
    only_prison: str | None = None,
    progress: Progress = _no_progress,
    problems: list[str] | None = None,
) -> _Plan:
    """Check every row against the file and the database; raise with all problems found,
    including any `problems` already found while reading."""
    known_prisons = set(session.scalars(select(Prison.code)))
    problems = list(problems or [])
    by_path: dict[str, Row] = {}
    for row in rows:
        problems += _check_row(row, known_prisons, only_prison)
        first = by_path.get(row.path)
        if first is not None and row.path:
            problems.append(
                f"line {row.line}: {row.path} appears again (first on line {first.line}); "
                "keep one row per location"
            )
        elif row.path:
            by_path[row.path] = row
    prisons = {prison_of_path(p) for p in by_path} & known_prisons
    existing = {
        loc.path: loc
        for loc in session.scalars(select(Location).where(Location.prison_code.in_(prisons)))
    }
    path_by_id = {loc.id: path for path, loc in existing.items()}
    plan = _Plan(prisons=prisons)
    for done, row in enumerate(by_path.values(), start=1):
        if done % PROGRESS_EVERY == 0:
            progress("checked", done, len(by_path))
        if row.kind not in LOCATION_KINDS or prison_of_path(row.path) not in prisons:
            continue  # already reported
        at = f"line {row.line}"
        parent_path = row.parent or (derived_parent_path(row.path) if row.kind != "wing" else None)
        problem = path_problem(row.path, prison_of_path(row.path), parent_path)
        if problem:
            problems.append(f"{at}: {problem}")
            continue
        parent_kind = None
        if parent_path is not None:
            parent_row, parent_loc = by_path.get(parent_path), existing.get(parent_path)
            if parent_row is not None:
                parent_kind = parent_row.kind
            elif parent_loc is not None:
                parent_kind = parent_loc.kind
            else:
                problems.append(
                    f"{at}: parent {parent_path} is neither in the file nor already in the "
                    "estate; add a row for it or correct the path"
                )
                continue
        current = existing.get(row.path)
        if current is not None and current.kind != row.kind:
            problems.append(
                f"{at}: {row.path} already exists as a {current.kind}; an import cannot "
                f"change a location's kind (the file says {row.kind})"
            )
            continue
        problem = placement_problem(row.kind, parent_path, parent_kind)
        if problem:
            problems.append(f"{at}: {row.path}: {problem}")
            continue
        if current is None:
            plan.new.append(row)
            plan.parent_of[row.path] = parent_path
            continue
        current_parent = path_by_id.get(current.parent_id) if current.parent_id else None
        if current_parent != parent_path:
            problems.append(
                f"{at}: {row.path} already exists under {current_parent or 'the prison'}; "
                f"an import cannot move it under {parent_path or 'the prison'}"
            )
        else:
            capacity = current.capacity if row.capacity is None else row.capacity
            if (current.name, current.capacity) == (row.name, capacity):
                plan.unchanged += 1
            else:
                plan.updates.append({"id": current.id, "name": row.name, "capacity": capacity})
    if problems:
        raise ImportRefused(sorted(problems, key=_line_of))
    return plan


def _line_of(problem: str) -> int:
    head = problem.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


def _depth(row: Row, plan: _Plan) -> int:
    if row.kind == "room":
        return 1 if plan.parent_of[row.path] is None else 2
    return _DEPTH[row.kind]


def _write(*, session: Session, plan: _Plan, progress: Progress) -> None:
    ids = {
        path: loc_id
        for loc_id, path in session.execute(
            select(Location.id, Location.path).where(Location.prison_code.in_(plan.prisons))
        )
    }
    written = 0
    for depth in (1, 2, 3):
        level = [row for row in plan.new if _depth(row, plan) == depth]
        for start in range(0, len(level), _BATCH):
            batch = level[start : start + _BATCH]
            values = []
            for row in batch:
                parent_path = plan.parent_of[row.path]
                values.append(
                    {
                        "prison_code": prison_of_path(row.path),
                        "path": row.path,
                        "kind": row.kind,
                        "name": row.name,
                        "parent_id": ids[parent_path] if parent_path else None,
                        "capacity": (
                            default_capacity(row.kind) if row.capacity is None else row.capacity
                        ),
                    }
                )
            session.execute(insert(Location), values)
            paths = [row.path for row in batch]
            ids.update(
                (path, loc_id)
                for loc_id, path in session.execute(
                    select(Location.id, Location.path).where(Location.path.in_(paths))
                )
            )
            written += len(batch)
            progress("wrote", written, len(plan.new))
    for start in range(0, len(plan.updates), _BATCH):
        session.execute(update(Location), plan.updates[start : start + _BATCH])


def import_locations(
    *,
    session: Session,
    data: bytes,
    source: str,
    actor: str,
    only_prison: str | None = None,
    dry_run: bool = False,
    progress: Progress = _no_progress,
) -> ImportResult:
    """Check the whole file, then add new locations and rename changed ones in one go."""
    only_prison = only_prison.strip().upper() if only_prison else None
    if only_prison and session.get(Prison, only_prison) is None:
        raise ImportRefused([f"--prison {only_prison} is not a known prison code"])
    rows, problems = read_rows(data, progress=progress)
    if not rows and not problems:
        raise ImportRefused([f"the file has a header but no rows; add rows of {HEADER_HINT}"])
    plan = plan_import(
        session=session, rows=rows, only_prison=only_prison, progress=progress, problems=problems
    )
    result = ImportResult(
        added=len(plan.new),
        updated=len(plan.updates),
        unchanged=plan.unchanged,
        prisons=sorted(plan.prisons),
        dry_run=dry_run,
    )
    if dry_run:
        return result
    _write(session=session, plan=plan, progress=progress)
    record(
        session=session,
        actor=actor,
        action="locations.imported",
        target_type="location_import",
        target_id=source[-100:],
        prison_code=result.prisons[0] if len(result.prisons) == 1 else None,
        detail={
            "added": result.added,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "prisons": result.prisons,
            "rows": len(rows),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    return result
