"""`estate bench ansible` at tiny scale: real agents, a real broker, both runs measured."""

from __future__ import annotations

import re

from click.testing import CliRunner

from fleet.bench.ansible import run_ansible_bench
from fleet.bench.cli import bench


def test_the_ansible_bench_prints_both_runs_and_the_overhead() -> None:
    result = CliRunner().invoke(bench, ["ansible", "--agents", "2", "--forks", "2"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("ansible over MQTT: 2 agents, 3 modules tasks, forks 2: total ")
    assert "6 ok, 0 failed, 0 unreachable" in line
    mqtt, local = (float(x) for x in re.findall(r"(?:total|baseline) ([\d.]+) s", line))
    assert mqtt > 0
    assert local > 0
    overhead = float(re.search(r"overhead ([+-][\d.]+) s per task", line).group(1))
    assert abs(overhead - (mqtt - local) / 3) < 0.05  # totals are printed to 0.1 s
    assert "bar 60 s: met" in line
    # The gateway counted every request: one upload per host (copy), and commands.
    assert re.search(r"requests over MQTT: exec \d+ x \d+ ms, put 2 x \d+ ms$", line), line
    assert "starting 2 agents" in result.stderr


def test_the_raw_variant_measures_the_transport_without_python_on_the_device() -> None:
    figures = run_ansible_bench(agents=2, forks=2, kind="raw")
    assert (figures.mqtt.ok, figures.local.ok) == (6, 6)
    assert set(figures.round_trips) == {"remote.exec"}, "raw tasks move no files"
    count, seconds = figures.round_trips["remote.exec"]
    assert count == 6
    assert seconds > 0
    assert figures.line().startswith("ansible over MQTT: 2 agents, 3 raw tasks, forks 2: ")
