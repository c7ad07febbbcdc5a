"""`estate bench rollout` at a tiny scale: its own database, real figures, dropped afterwards."""

from __future__ import annotations

import psycopg
from click.testing import CliRunner

from fleet.bench.rollout import OVERVIEW_TARGET_MS, run_rollout_bench
from fleet.cli import main
from fleet.settings import Settings
from tests.services.postgres import ADMIN_DSN


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'estate_bench_rollout_%'"
        ).fetchall()
    return {name for (name,) in rows}


def test_rollout_bench_times_the_overview_and_the_snapshot_job(pg_url: str) -> None:
    before = _bench_databases()
    lines: list[str] = []
    figures = run_rollout_bench(
        Settings(database_url=pg_url, profile="test"),
        prisons=3,
        devices=90,
        days=40,
        requests=5,
        progress=lines.append,
    )
    assert (figures.prisons, figures.devices, figures.plans_snapshotted) == (3, 90, 3)
    # The 40 days before today loaded per plan, plus the job's own row for today.
    assert figures.snapshot_rows == 3 * 40 + 3
    assert [t.name for t in figures.timings] == [
        "Overview API",
        "Overview page",
        "Overview page, sorted by RAG",
        "Prison rollout page",
        "Prison plan API",
        "Overview CSV",
        "Burn-up API, whole history",
    ]
    assert all(0 < t.p50_ms <= t.p95_ms and t.requests == 5 for t in figures.timings)
    assert figures.timings[0].target_ms == OVERVIEW_TARGET_MS
    assert figures.snapshot_s > 0
    assert figures.snapshot_again_s > 0
    printed = figures.lines()
    assert printed[0] == "rollout bench: 3 prisons, 90 devices, 123 daily snapshots"
    assert printed[-1].startswith("Snapshot job, whole estate")
    assert printed[-2].startswith("Whole-estate device recount")
    assert figures.recount_ms > 0
    assert any(line.startswith("devices: 90/90") for line in lines)
    assert lines[-1].startswith("dropped database estate_bench_rollout_")
    assert _bench_databases() == before


def test_rollout_bench_refuses_sqlite_with_what_to_do() -> None:
    result = CliRunner().invoke(
        main, ["bench", "rollout", "--prisons", "1"], env={"ESTATE_DATABASE_URL": "sqlite://"}
    )
    assert result.exit_code == 1
    assert "estate bench rollout needs PostgreSQL: set ESTATE_DATABASE_URL" in result.output
