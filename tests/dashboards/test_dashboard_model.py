"""The shipped dashboards fit Grafana's dashboard model and agree with the provisioning files."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from fleet.cli import main
from fleet.dashboards.cli import DEFAULT_FOLDER, REPOSITORY_DASHBOARDS
from fleet.dashboards.model import (
    Dashboard,
    DashboardError,
    check_dashboard,
    load_dashboard,
    load_dashboards,
    variables_used,
)

PROVISIONING = REPOSITORY_DASHBOARDS / "provisioning"
SHIPPED = {item.model.uid: item for item in load_dashboards(REPOSITORY_DASHBOARDS)}
WANTED = {"estate-overview", "estate-prison", "estate-device", "estate-platform", "estate-rollout"}


def _provisioned(kind: str, key: str) -> list[dict[str, Any]]:
    items = []
    for path in sorted((PROVISIONING / kind).glob("*.yml")):
        items += yaml.safe_load(path.read_text())[key]
    return items


def test_the_five_dashboards_are_shipped() -> None:
    assert set(SHIPPED) == WANTED
    for item in SHIPPED.values():
        assert item.model.schema_version >= 36
        assert "estate" in item.model.tags, f"{item.path.name}: tag it estate for the links"


def test_datasource_uid_is_the_provisioned_one() -> None:
    (datasource,) = _provisioned("datasources", "datasources")
    for item in SHIPPED.values():
        assert check_dashboard(item.model, datasource_uid=datasource["uid"]) == []


def test_pushed_folder_is_the_provisioned_one() -> None:
    (provider,) = _provisioned("dashboards", "providers")
    assert provider["folder"] == DEFAULT_FOLDER


@pytest.mark.parametrize("uid", sorted(WANTED - {"estate-platform"}))
def test_estate_dashboards_filter_by_prison_and_kind(uid: str) -> None:
    variables = {variable.name for variable in SHIPPED[uid].model.templating.list}
    assert {"prison", "kind"} <= variables
    for panel in SHIPPED[uid].model.panels:
        for target in panel.targets:
            if "estate_devices" in target.expr or "device_health" in target.expr:
                used = variables_used(target.expr)
                assert used & {"prison", "kind", "device"}, (
                    f"{uid} panel {panel.title!r} ignores the prison and kind filters"
                )


def test_check_command_accepts_the_shipped_dashboards() -> None:
    result = CliRunner().invoke(main, ["dashboards", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.count(" ok") == len(WANTED)


def _broken(change: Any, tmp_path: Path) -> Path:
    document = copy.deepcopy(SHIPPED["estate-overview"].document)
    change(document)
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps(document))
    return path


def _set_second_panel_over_first(doc: dict[str, Any]) -> None:
    doc["panels"][1]["gridPos"] = dict(doc["panels"][0]["gridPos"])


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda doc: doc["panels"][0].update(gridpos={}), "gridpos"),
        (lambda doc: doc["panels"][0]["gridPos"].update(x=20, w=8), "past the 24-column grid"),
        (_set_second_panel_over_first, "overlaps"),
        (lambda doc: doc["panels"][0]["datasource"].update(uid="prom"), "datasource uid prom"),
        (lambda doc: doc["panels"][0]["targets"][0].update(expr="up{x=~'$wing'}"), "['wing']"),
        (lambda doc: doc.pop("schemaVersion"), "schemaVersion"),
        (lambda doc: doc.update(uid="has spaces"), "uid"),
        (lambda doc: doc["panels"][1].update(id=1), "used more than once"),
        (lambda doc: doc["panels"][0].update(type="graph"), "type"),
    ],
    ids=[
        "unknown-key",
        "off-grid",
        "overlap",
        "datasource",
        "undefined-variable",
        "no-schema-version",
        "bad-uid",
        "duplicate-panel-id",
        "retired-panel-type",
    ],
)
def test_model_refuses_what_grafana_would_show_wrongly(
    change: Any, complaint: str, tmp_path: Path
) -> None:
    with pytest.raises(DashboardError, match=r"broken\.json") as raised:
        load_dashboard(_broken(change, tmp_path))
    assert complaint in str(raised.value)


def test_uids_must_be_unique_across_files(tmp_path: Path) -> None:
    shutil.copy(SHIPPED["estate-overview"].path, tmp_path / "a.json")
    shutil.copy(SHIPPED["estate-overview"].path, tmp_path / "b.json")
    with pytest.raises(DashboardError, match="share the uid 'estate-overview'"):
        load_dashboards(tmp_path)


def test_model_round_trips_the_shipped_json() -> None:
    for item in SHIPPED.values():
        again = Dashboard.model_validate(item.document).model_dump(
            by_alias=True, exclude_unset=True
        )
        assert again == item.document, f"{item.path.name} has keys the model drops"
