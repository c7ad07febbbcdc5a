"""`estate locations import|generate|list` against a real database."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from fleet.audit.models import AuditEvent
from fleet.cli import main
from fleet.context import Context
from fleet.estate.models import Location

GOOD = """path,kind,name,parent,capacity
MDI-A-1-001,cell,Cell 1,,
MDI-A,wing,A Wing,,
MDI-A-1,landing,A1,,
MDI-A-1-002,cell,Cell 2,,2
MDI-A-HEALTH-CARE,room,Healthcare,MDI-A,
MDI-VISITS,room,Visits hall,,
"""


def _run(ctx: Context, *args: str) -> Result:
    env = {"ESTATE_DATABASE_URL": ctx.settings.effective_database_url}
    return CliRunner().invoke(main, ["locations", *args], env=env)


def _csv(tmp_path: Path, text: str | bytes, name: str = "places.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def _locations(ctx: Context) -> dict[str, tuple[str, str, int, str | None]]:
    with ctx.sessions() as session:
        parents = {loc.id: loc.path for loc in session.scalars(select(Location))}
        return {
            loc.path: (loc.kind, loc.name, loc.capacity, parents.get(loc.parent_id or 0))
            for loc in session.scalars(select(Location))
        }


def _audits(ctx: Context, action: str) -> list[AuditEvent]:
    with ctx.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_import_adds_the_tree_in_any_row_order(pg_context: Context, tmp_path: Path) -> None:
    result = _run(pg_context, "import", _csv(tmp_path, GOOD))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "6 added, 0 updated, 0 unchanged"
    assert _locations(pg_context) == {
        "MDI-A": ("wing", "A Wing", 0, None),
        "MDI-A-1": ("landing", "A1", 0, "MDI-A"),
        "MDI-A-1-001": ("cell", "Cell 1", 1, "MDI-A-1"),
        "MDI-A-1-002": ("cell", "Cell 2", 2, "MDI-A-1"),
        "MDI-A-HEALTH-CARE": ("room", "Healthcare", 0, "MDI-A"),
        "MDI-VISITS": ("room", "Visits hall", 0, None),
    }
    [event] = _audits(pg_context, "locations.imported")
    assert event.actor.startswith("cli:")
    assert event.prison_code == "MDI"
    assert event.target_id == "places.csv"
    assert event.detail["added"] == 6
    assert event.detail["rows"] == 6


def test_reimport_is_idempotent_and_renames_update(pg_context: Context, tmp_path: Path) -> None:
    assert _run(pg_context, "import", _csv(tmp_path, GOOD)).exit_code == 0

    again = _run(pg_context, "import", _csv(tmp_path, GOOD))
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "0 added, 0 updated, 6 unchanged"

    renamed = GOOD.replace("Cell 2,,2", "Cell Two,,2").replace("A Wing", "Alpha Wing")
    renamed += "MDI-A-1-003,cell,Cell 3,,\n"
    changed = _run(pg_context, "import", _csv(tmp_path, renamed))
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.strip() == "1 added, 2 updated, 4 unchanged"
    places = _locations(pg_context)
    assert places["MDI-A"][1] == "Alpha Wing"
    assert places["MDI-A-1-002"][1] == "Cell Two"
    assert places["MDI-A-1-003"][3] == "MDI-A-1"
    assert len(places) == 7
    assert [e.detail["updated"] for e in _audits(pg_context, "locations.imported")] == [0, 0, 2]


def test_every_bad_row_is_reported_and_nothing_written(pg_context: Context, tmp_path: Path) -> None:
    assert _run(pg_context, "import", _csv(tmp_path, GOOD, "first.csv")).exit_code == 0
    bad = (
        "path,kind,name\n"  # line 1
        "MDI-B,wing,B Wing\n"  # 2: fine on its own
        "XXX-1,wing,Nowhere\n"  # 3: unknown prison
        "MDI-B-1,floor,B1\n"  # 4: bad kind
        "MDI-B-9-001,cell,Cell\n"  # 5: missing parent
        "MDI-B,wing,B Wing again\n"  # 6: duplicate path
        "MDI-B-001,cell,Cell\n"  # 7: cell under a wing
        "MDI-B-2,landing,\n"  # 8: empty name
        "MDI-A-1,cell,Was a landing\n"  # 9: existing kind changed
        "MDI-B-3,landing,B3,,lots\n"  # 10: wrong column count
        "mdi b 4,landing,B4\n"  # 11: bad path
    )
    result = _run(pg_context, "import", _csv(tmp_path, bad))

    assert result.exit_code == 1
    assert "nothing was written" in result.stderr
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip().startswith("line ")]
    assert [ln.split(":", 1)[0] for ln in lines] == [f"line {n}" for n in range(3, 12)]
    report = "\n".join(lines)
    for words in (
        "line 3: unknown prison 'XXX'",
        "line 4: unknown kind 'floor'; use one of wing, landing, cell, room",
        "line 5: parent MDI-B-9 is neither in the file nor already in the estate",
        "line 6: MDI-B appears again (first on line 2)",
        "line 7: MDI-B-001: a cell must be under a landing; its parent is MDI-B, a wing",
        "line 8: name is empty",
        "line 9: MDI-A-1 already exists as a landing",
        "line 10: expected 3 columns (path,kind,name), found 5",
        "line 11: path 'MDI B 4' must be the prison code",
    ):
        assert words in report, report
    assert len(_locations(pg_context)) == 6
    assert len(_audits(pg_context, "locations.imported")) == 1


def test_garbage_files_are_refused_clearly(pg_context: Context, tmp_path: Path) -> None:
    cases: dict[str, tuple[str | bytes, str]] = {
        "binary.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file is binary"),
        "latin1.csv": ("path,kind,name\nMDI-Z,wing,Wing é\n".encode("latin-1"), "not UTF-8"),
        "header.csv": ("code,type,label\nMDI-Z,wing,Z\n", "the header must be path,kind,name"),
        "empty.csv": ("", "the file is empty"),
        "norows.csv": ("path,kind,name\n", "no rows"),
    }
    for name, (content, words) in cases.items():
        result = _run(pg_context, "import", _csv(tmp_path, content, name))
        assert result.exit_code == 1, (name, result.output)
        assert words in result.stderr, (name, result.stderr)
    missing = _run(pg_context, "import", str(tmp_path / "absent.csv"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert _locations(pg_context) == {}


def test_dry_run_and_prison_guard_write_nothing(pg_context: Context, tmp_path: Path) -> None:
    file = _csv(tmp_path, GOOD)

    dry = _run(pg_context, "import", file, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == "dry run, nothing written: 6 added, 0 updated, 0 unchanged"
    guarded = _run(pg_context, "import", file, "--prison", "LEI")
    assert guarded.exit_code == 1
    assert "line 2: MDI-A-1-001 is in MDI, but --prison LEI was given" in guarded.stderr
    unknown = _run(pg_context, "import", file, "--prison", "QQQ")
    assert "--prison QQQ is not a known prison code" in unknown.stderr
    assert _locations(pg_context) == {}
    assert _audits(pg_context, "locations.imported") == []


def test_big_file_reports_progress_on_stderr(pg_context: Context, tmp_path: Path) -> None:
    rows = ["path,kind,name", "LEI-1,wing,Wing 1"]
    for landing in range(1, 6):
        rows.append(f"LEI-1-{landing},landing,Landing {landing}")
        rows += [f"LEI-1-{landing}-{c:03d},cell,Cell {c:03d}" for c in range(1, 501)]

    result = _run(pg_context, "import", _csv(tmp_path, "\n".join(rows) + "\n"), "--prison", "LEI")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "2506 added, 0 updated, 0 unchanged"
    assert "read 2,000 rows" in result.stderr
    assert "checked 2,000/2,506" in result.stderr
    assert "wrote 2,506/2,506" in result.stderr
    with pg_context.sessions() as session:
        cells = session.scalar(
            select(func.count()).select_from(Location).where(Location.kind == "cell")
        )
    assert cells == 2500


def test_generate_then_list(pg_context: Context) -> None:
    made = _run(pg_context, "generate", "--prison", "mdi", "--wings", "2", "--landings", "1",
                "--cells", "2")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.stdout.strip() == "8 locations added to MDI"
    [event] = _audits(pg_context, "locations.generated")
    assert event.detail["added"] == 8

    listed = _run(pg_context, "list", "--prison", "MDI")
    assert listed.exit_code == 0
    assert [ln.split()[0] for ln in listed.stdout.splitlines()] == [
        "MDI-1", "MDI-1-1", "MDI-1-1-001", "MDI-1-1-002", "MDI-2", "MDI-2-1", "MDI-2-1-001",
        "MDI-2-1-002",
    ]  # fmt: skip
    assert "8 locations in MDI" in listed.stderr
    cells = _run(pg_context, "list", "--prison", "MDI", "--kind", "cell")
    assert len(cells.stdout.splitlines()) == 4
    unknown = _run(pg_context, "generate", "--prison", "QQQ")
    assert unknown.exit_code == 1
    assert "unknown prison 'QQQ'" in unknown.stderr
