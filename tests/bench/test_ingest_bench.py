"""`estate bench ingest` measures a real ingest end to end and leaves nothing behind."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from fleet.cli import main
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from tests.services.postgres import migrated_context

LINE = re.compile(
    r"^ingest: [\d,]+ reports/s sustained, p50 [\d,]+ ms, p99 [\d,]+ ms "
    r"\(publish to visible in the database\), lost 0, doubled 0, "
    r"processes 2 \(split (?P<first>[\d.]+)% / (?P<second>[\d.]+)%\), "
    r"ingest CPU [\d,]+ us/report, baseline [\d,]+ reports/s "
    r"\(bare consumer on the same broker\), ratio \d+\.\d\d$"
)


@pytest.mark.slow
def test_bench_prints_one_line_of_figures_and_cleans_up(
    pg_url: str, tmp_path: Path, victoria: str
) -> None:
    ctx = migrated_context(pg_url, data_dir=tmp_path)
    env = {
        "ESTATE_DATABASE_URL": pg_url,
        "ESTATE_MQTT_URL": "mqtt://127.0.0.1:1883",
        "ESTATE_TSDB_URL": victoria,
        "ESTATE_DATA_DIR": str(tmp_path),
        "ESTATE_PROFILE": "test",
    }
    args = ["bench", "ingest", "--devices", "20", "--seconds", "2", "--rate", "500"]
    args += ["--processes", "2"]
    result = CliRunner().invoke(main, [*args, "--baseline-seconds", "1"], env=env)

    assert result.exit_code == 0, result.output
    figures = LINE.match(result.stdout.strip())
    assert figures, result.stdout
    # Both processes took a real share of the reports, and the shares add up.
    shares = float(figures["first"]), float(figures["second"])
    assert min(shares) >= 10, shares
    assert abs(sum(shares) - 100) < 0.2, shares
    assert len(result.stdout.strip().splitlines()) == 1
    assert "published" in result.stderr  # progress went to stderr
    try:
        with transaction(ctx.sessions) as session:
            assert session.scalar(select(func.count()).select_from(Device)) == 0
            assert session.scalar(select(func.count()).select_from(DeviceState)) == 0
    finally:
        ctx.close()
    exported = httpx.post(f"{victoria}/api/v1/export", data={"match[]": '{device=~"MDI-bench-.+"}'})
    assert exported.text.strip() == ""
    assert not list(tmp_path.glob("bench-*"))
