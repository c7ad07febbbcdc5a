"""`estate bench agent` measures a real agent process and prints real figures."""

from __future__ import annotations

import re

from click.testing import CliRunner

from fleet.cli import main

FIRST = re.compile(
    r"^agent footprint over (?P<seconds>\d+) s at a 0\.5 s interval: "
    r"RSS peak (?P<peak>[\d.]+) MB, final (?P<rss>[\d.]+) MB "
    r"\(PSS (?P<pss>[\d.]+) MB, unshared (?P<uss>[\d.]+) MB\); "
    r"CPU (?P<cpu>[\d.]+)% of one core; (?P<reports>\d+) health reports received$"
)


def test_bench_agent_measures_a_reporting_agent() -> None:
    args = ["bench", "agent", "--seconds", "3", "--interval", "0.5"]
    result = CliRunner().invoke(main, [*args, "--mqtt-url", "mqtt://127.0.0.1:1883"])

    assert result.exit_code == 0, result.output
    first, files = result.stdout.strip().splitlines()
    figures = FIRST.match(first)
    assert figures, first
    # A Python process with paho loaded is well above 10 MB; unshared memory is part of RSS.
    assert 10 < float(figures["uss"]) <= float(figures["rss"]) <= float(figures["peak"]) < 200
    assert float(figures["cpu"]) < 50
    # Three seconds of measuring after the warm-up, at two reports a second.
    assert int(figures["reports"]) >= 5
    assert files.startswith("largest files resident: ")
    assert "libpython" in files or "python3" in files
