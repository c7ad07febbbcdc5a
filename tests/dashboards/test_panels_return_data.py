"""Every panel's query, run against a real VictoriaMetrics fed by a live estate, returns data.

Template variables get their values the way Grafana does: each variable's label_values query is
asked of VictoriaMetrics with the variables before it filled in. Each panel is then queried with
the first value of every variable and again with "All" where the variable offers it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fleet.dashboards.cli import REPOSITORY_DASHBOARDS
from fleet.dashboards.model import Dashboard, Panel, load_dashboards
from tests.dashboards.observed import ObservedEstate, observed_estate

DASHBOARDS = {item.model.uid: item.model for item in load_dashboards(REPOSITORY_DASHBOARDS)}
PANELS = [(uid, panel.id) for uid, model in DASHBOARDS.items() for panel in model.panels]
# What Grafana puts in $__rate_interval for the datasource's 15 s scrape interval (4 x 15 s).
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")
RANGE_S = 60


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedEstate]:
    with observed_estate(tmp_path_factory.mktemp("observed")) as running:
        yield running


def substitute(text: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):  # $kind before $k, should both exist
        text = text.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    return text


def resolve_variables(
    estate: ObservedEstate, dashboard: Dashboard, choose_all: bool
) -> dict[str, str]:
    values = dict(BUILTINS)
    for variable in dashboard.templating.list:
        match = LABEL_VALUES.match(variable.query)
        assert match, f"{dashboard.uid}: variable {variable.name} is not label_values(...)"
        selector = match["selector"] and substitute(match["selector"], values)
        options = estate.label_values(match["label"], selector)
        assert options, (
            f"{dashboard.uid}: variable {variable.name} offers no values ({variable.query})"
        )
        if choose_all and variable.include_all:
            assert variable.all_value is not None
            values[variable.name] = variable.all_value
        else:
            values[variable.name] = options[0]
    return values


def has_data(result: list[dict[str, Any]]) -> bool:
    points = [s["value"] for s in result if "value" in s]
    points += [p for s in result for p in s.get("values", [])]
    return any(not math.isnan(float(point[1])) for point in points)


def panel(uid: str, panel_id: int) -> Panel:
    return next(p for p in DASHBOARDS[uid].panels if p.id == panel_id)


@pytest.mark.parametrize("choose_all", [False, True], ids=["first-value", "all"])
@pytest.mark.parametrize(("uid", "panel_id"), PANELS, ids=[f"{u}-{i}" for u, i in PANELS])
def test_panel_returns_data(
    estate: ObservedEstate, uid: str, panel_id: int, choose_all: bool
) -> None:
    dashboard = DASHBOARDS[uid]
    values = resolve_variables(estate, dashboard, choose_all)
    shown = panel(uid, panel_id)
    now = time.time()
    for target in shown.targets:
        expr = substitute(target.expr, values)
        assert "$" not in expr, f"unfilled variable left in {expr}"
        if target.instant:
            result = estate.query(expr, time=f"{now:.3f}")
        else:
            result = estate.query(expr, start=f"{now - RANGE_S:.3f}", end=f"{now:.3f}", step="1s")
        assert has_data(result), (
            f"{uid} panel {shown.title!r} target {target.ref_id} returned no data with "
            f"{ {k: v for k, v in values.items() if not k.startswith('__')} }: {expr}"
        )


def test_device_variable_lists_the_simulated_devices(estate: ObservedEstate) -> None:
    listed = estate.label_values("device", 'device_health_cpu{prison=~".*", kind=~".*"}')
    assert set(estate.devices) <= set(listed)
