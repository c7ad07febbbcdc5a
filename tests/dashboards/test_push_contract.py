"""Contract tests of `estate dashboards push` against a server recording Grafana's HTTP API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from fleet.cli import main
from fleet.dashboards.cli import REPOSITORY_DASHBOARDS
from fleet.dashboards.model import load_dashboards
from tests.dashboards.grafana_recorder import GrafanaState, recording_grafana

TOKEN = "glsa_test_token"
SHIPPED = load_dashboards(REPOSITORY_DASHBOARDS)


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    with recording_grafana(TOKEN) as running:
        yield running


def push(url: str, *extra: str, token: str = TOKEN) -> Result:
    return CliRunner().invoke(
        main, ["dashboards", "push", "--url", url, "--token", token, *extra], catch_exceptions=False
    )


def test_push_contract_with_recorded_grafana_api(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    first = push(url)
    assert first.exit_code == 0, first.output

    calls = [(call.method, call.path) for call in state.calls]
    expected = [
        ("GET", "/api/datasources/uid/victoriametrics"),
        ("GET", "/api/folders/estate"),
        ("POST", "/api/folders"),
    ]
    for item in SHIPPED:
        expected += [
            ("GET", f"/api/dashboards/uid/{item.model.uid}"),
            ("POST", "/api/dashboards/db"),
        ]
    assert calls == expected
    assert {call.authorization for call in state.calls} == {f"Bearer {TOKEN}"}
    assert state.calls[2].body == {"title": "Estate", "uid": "estate"}
    saves = [call.body for call in state.calls if call.path == "/api/dashboards/db"]
    for item, body in zip(SHIPPED, saves, strict=True):
        assert body["folderUid"] == "estate"
        assert body["overwrite"] is True
        assert body["dashboard"]["id"] is None
        assert {k: v for k, v in body["dashboard"].items() if k != "id"} == item.document
    assert f"{len(SHIPPED) + 1} change(s)" in first.output

    state.calls.clear()
    second = push(url)
    assert second.exit_code == 0, second.output
    assert state.writes() == [], "a second push of the same dashboards must change nothing"
    assert [call.method for call in state.calls] == ["GET"] * (len(SHIPPED) + 2)
    assert "0 change(s)" in second.output
    assert all(entry["dashboard"]["version"] == 1 for entry in state.dashboards.values())


def test_push_updates_only_the_dashboard_that_changed(
    grafana: tuple[str, GrafanaState], tmp_path: Path
) -> None:
    url, state = grafana
    folder = tmp_path / "dashboards"
    shutil.copytree(REPOSITORY_DASHBOARDS, folder, ignore=shutil.ignore_patterns("provisioning"))
    assert push(url, "--dir", str(folder)).exit_code == 0

    changed = folder / "rollout.json"
    document = orjson.loads(changed.read_bytes())
    document["title"] = "Rollout progress"
    changed.write_bytes(orjson.dumps(document))
    state.calls.clear()
    result = push(url, "--dir", str(folder))

    assert result.exit_code == 0, result.output
    writes = state.writes()
    assert [(call.path, call.body["dashboard"]["uid"]) for call in writes] == [
        ("/api/dashboards/db", "estate-rollout")
    ]
    assert state.dashboards["estate-rollout"]["dashboard"]["version"] == 2
    assert state.dashboards["estate-rollout"]["dashboard"]["title"] == "Rollout progress"
    assert "dashboard estate-rollout: updated" in result.output


def test_push_moves_dashboards_into_another_folder_with_another_datasource(
    grafana: tuple[str, GrafanaState],
) -> None:
    url, state = grafana
    state.datasources.add("vm-prod")
    assert push(url).exit_code == 0
    state.calls.clear()

    result = push(url, "--folder", "Prison estate", "--datasource-uid", "vm-prod")

    assert result.exit_code == 0, result.output
    assert state.folders["prison-estate"]["title"] == "Prison estate"
    for entry in state.dashboards.values():
        assert entry["meta"]["folderUid"] == "prison-estate"
        sources = {p["datasource"]["uid"] for p in entry["dashboard"]["panels"]}
        sources |= {
            t["datasource"]["uid"] for p in entry["dashboard"]["panels"] for t in p["targets"]
        }
        sources |= {v["datasource"]["uid"] for v in entry["dashboard"]["templating"]["list"]}
        assert sources == {"vm-prod"}


def test_push_with_a_refused_token_says_so(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    result = push(url, token="wrong")
    assert result.exit_code == 1
    assert "refused the token (401)" in result.output
    assert state.dashboards == {}


def test_push_names_a_missing_datasource(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    state.datasources.clear()
    result = push(url)
    assert result.exit_code == 1
    assert "no datasource with uid 'victoriametrics'" in result.output
    assert state.writes() == []


def test_push_to_an_unreachable_grafana_says_where(tmp_path: Path) -> None:
    with recording_grafana(TOKEN) as (url, _state):
        pass  # stopped: nothing listens on its port any more
    result = push(url)
    assert result.exit_code == 1
    assert f"cannot reach Grafana at {url}" in result.output
