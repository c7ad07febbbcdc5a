"""`estate simulate` from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fleet.cli import main
from fleet.context import Context
from fleet.simulate.cli import ScriptedEvent, parse_event
from tests.simulate.conftest import MQTT_URL, Watcher, per_device


def env_for(ctx: Context, data_dir: Path) -> dict[str, str]:
    return {
        "ESTATE_DATABASE_URL": ctx.settings.database_url,
        "ESTATE_MQTT_URL": MQTT_URL,
        "ESTATE_MQTT_CREDENTIALS": "none",
        "ESTATE_DATA_DIR": str(data_dir),
        "ESTATE_PROFILE": "test",
    }


def test_help_explains_the_options_and_faults() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"])

    assert result.exit_code == 0
    words = " ".join(result.output.split())
    for text in (
        "--prisons",
        "--devices-per-prison",
        "--interval",
        "--kinds",
        "--duration",
        "--fault-rate",
        "--event",
        "--seed",
        "--state-file",
        "power_cut",
        "Last Will",
    ):
        assert text in words


def test_list_prisons_prints_codes_and_names() -> None:
    result = CliRunner().invoke(main, ["simulate", "--list-prisons"])

    assert result.exit_code == 0
    assert "MDI\tMoorland (HMP & YOI)" in result.output.splitlines()


def test_unknown_prison_codes_are_named_with_how_to_find_real_ones(
    sim_context: Context, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--prisons", "MDJ,XXQ"], env=env_for(sim_context, tmp_path)
    )

    assert result.exit_code == 1
    assert "unknown prison code(s): MDJ, XXQ" in result.output
    assert "did you mean" in result.output
    assert "estate simulate --list-prisons" in result.output


def test_missing_prisons_and_bad_kinds_or_events_are_usage_errors() -> None:
    runner = CliRunner()
    assert "give --prisons" in runner.invoke(main, ["simulate"]).output
    bad_kind = runner.invoke(main, ["simulate", "--prisons", "MDI", "--kinds", "phone"])
    assert bad_kind.exit_code == 2
    assert "choose from in_cell_phone" in bad_kind.output
    bad_event = runner.invoke(main, ["simulate", "--prisons", "MDI", "--event", "soon:cut"])
    assert bad_event.exit_code == 2
    assert "AT:ACTION:TARGET" in bad_event.output


def test_events_parse_in_time_order() -> None:
    events = sorted(parse_event(e) for e in ["9:restore:MDI-1-1", "3:power_cut:mdi-1-1 "])
    assert events == [
        ScriptedEvent(3.0, "power_cut", "mdi-1-1"),
        ScriptedEvent(9.0, "restore", "MDI-1-1"),
    ]
    with pytest.raises(Exception, match="ACTION one of"):
        parse_event("3:explode:MDI")


def test_a_short_run_enrols_reports_cuts_power_and_stops_cleanly(
    sim_context: Context, tmp_path: Path, watcher: Watcher
) -> None:
    state_file = tmp_path / "sim-state.json"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--prisons",
            "lei",
            "--devices-per-prison",
            "4",
            "--interval",
            "0.5",
            "--duration",
            "3",
            "--event",
            "2.2:power_cut:LEI-1-1",
            "--state-file",
            str(state_file),
            "--report-every",
            "1",
        ],
        env=env_for(sim_context, tmp_path),
    )

    assert result.exit_code == 0, result.output
    assert "enrolled 4/4" in result.output
    assert "power cut at LEI-1-1: 4 devices down" in result.output
    assert "stopped:" in result.output
    ids = {d["device_id"] for d in orjson.loads(state_file.read_bytes())["devices"]}
    assert len(ids) == 4
    states = per_device(watcher.live(ids, "state"))
    assert {i: [s.state for s in v] for i, v in states.items()} == {
        i: ["online", "lost"] for i in ids
    }
    assert len(per_device(watcher.live(ids, "health"))) == 4
