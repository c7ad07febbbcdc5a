"""`estate bench alerts` at tiny scale: real figures, a baseline, and its database dropped."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from click.testing import CliRunner

from fleet.cli import main
from tests.services.postgres import ADMIN_DSN

SERVER_URL = ADMIN_DSN.replace("postgresql://", "postgresql+psycopg://")


def test_bench_alerts_prints_timed_passes_against_a_baseline_and_cleans_up() -> None:
    result = CliRunner().invoke(
        main,
        ["bench", "alerts", "--devices", "400", "--prisons", "2", "--rounds", "2"],
        env={"ESTATE_DATABASE_URL": SERVER_URL, "ESTATE_PROFILE": "test"},
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "alert evaluation: 400 devices in 2 prisons" in out
    baseline = re.search(r"baseline: one COUNT reading device_state\s+([\d.]+) ms", out)
    assert baseline is not None
    assert float(baseline.group(1)) > 0
    passes = re.findall(
        r"^(first pass|repeat pass|pass after)[^\n]*?([\d.]+) ms\s+([\d.]+)x baseline"
        r"\s+(meets|MISSES) the 2 s bar\s+matched (\d+), opened (\d+), resolved (\d+)$",
        out,
        flags=re.MULTILINE,
    )
    assert [p[0] for p in passes] == ["first pass", "repeat pass", "pass after"]
    first, repeat, _after = passes
    assert int(first[5]) > 0, "the generated estate has devices in trouble"
    assert int(repeat[5]) == 0, "a repeat pass opens nothing"
    assert float(first[1]) > 0
    assert float(first[2]) > 0
    name = re.search(r"created database (estate_bench_alerts_\w+)", result.stderr)
    assert name is not None
    with psycopg.connect(ADMIN_DSN) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name.group(1),))
        assert left.fetchone() is None


def test_bench_alerts_explains_that_it_needs_postgresql(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["bench", "alerts", "--devices", "10"],
        env={"ESTATE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "ESTATE_PROFILE": "test"},
    )
    assert result.exit_code == 1
    assert "estate bench alerts needs PostgreSQL: set ESTATE_DATABASE_URL" in result.output
