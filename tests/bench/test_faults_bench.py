"""`estate bench faults` at a small scale: its own database, real history, every URL timed."""

from __future__ import annotations

import psycopg
from sqlalchemy import create_engine, func, select, text

from facilities.faults.models import Fault, FaultCounter
from facilities.faults.workflow import OPEN_STATUSES
from fleet.bench.faults import TARGET_MS, run_faults_bench
from fleet.settings import Settings
from tests.services.postgres import ADMIN_DSN


def _exists(name: str) -> bool:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def test_faults_bench_seeds_its_own_database_and_times_lists_and_reports(pg_url: str) -> None:
    settings = Settings(database_url=pg_url, profile="test")
    lines: list[str] = []
    result = run_faults_bench(
        settings, faults=3000, prisons=3, requests=5, keep=True, progress=lines.append
    )
    own = pg_url.rsplit("/", 1)[0] + "/" + result.database
    try:
        assert result.database.startswith("estate_bench_faults_")
        assert [t.page for t in result.timings] == [
            "Open faults, prison",
            "Open faults, category+prio",
            "Breached, sorted by due",
            "Open faults on a wing",
            "All faults, one prison",
            "Report API, prison, 30 d",
            "Report page, prison, 30 d",
            "Report page, estate, 30 d",
            "Report API, estate, 365 d",
            "Places, a wing with counts",
            "Places, search by code",
        ]
        assert all(0 < t.p50_ms <= t.p95_ms and t.requests == 5 for t in result.timings)
        assert "faults: 3,000/3,000" in " ".join(lines)
        printed = result.lines()
        assert printed[0].startswith("3,000 faults across 3 prisons")
        assert "load average" in printed[0]
        assert all(line.endswith(("ok", "OVER TARGET")) for line in printed[1:])
        assert f"target p95 < {TARGET_MS:.0f} ms" in printed[0]

        engine = create_engine(own)
        with engine.connect() as conn:
            total = conn.scalar(select(func.count()).select_from(Fault))
            prisons = conn.scalar(select(func.count(func.distinct(Fault.prison_code))))
            still_open = conn.scalar(select(func.count()).where(Fault.status.in_(OPEN_STATUSES)))
            numbered = conn.scalar(select(func.sum(FaultCounter.last_number)))
            recurring = conn.scalar(select(func.count()).where(Fault.recurring.is_(True)))
            # Every reference is its prison's next number, in order of reporting.
            out_of_order = conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT number, lag(number) OVER "
                    "(PARTITION BY prison_code ORDER BY reported_at, id) AS before FROM fault) n "
                    "WHERE before IS NOT NULL AND number <> before + 1"
                )
            )
        engine.dispose()
        assert (total, prisons, numbered, out_of_order) == (3000, 3, 3000, 0)
        assert 0 < (still_open or 0) < 300  # mostly closed history, some still being worked
        assert (recurring or 0) > 0
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{result.database}" WITH (FORCE)')


def test_faults_bench_drops_its_database_unless_kept(pg_url: str) -> None:
    lines: list[str] = []
    result = run_faults_bench(
        Settings(database_url=pg_url, profile="test"),
        faults=200,
        prisons=2,
        requests=5,
        keep=False,
        progress=lines.append,
    )
    assert lines[-1] == f"dropped database {result.database}"
    assert not _exists(result.database)
