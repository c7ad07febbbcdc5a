"""The part of Grafana's dashboard JSON model the estate's dashboards use, and their checks.

Grafana documents the model at grafana.com/docs/grafana/latest/dashboards/build-dashboards/
view-dashboard-json-model/. Unknown keys are refused here so a typo (`gridpos`) fails loudly
instead of being ignored by Grafana.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

GRID_COLUMNS = 24
DATASOURCE_UID = "victoriametrics"
UID_PATTERN = r"^[a-zA-Z0-9_-]{1,40}$"  # Grafana's limit on a dashboard uid
# Grafana's own variables, filled in by Grafana when it runs a query.
BUILTIN_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__name__"})
VARIABLE_REFERENCE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


class DashboardError(Exception):
    """A dashboard file that Grafana would refuse or show wrongly; the message says where."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DataSourceRef(Strict):
    type: Literal["prometheus"]
    uid: str


class GridPos(Strict):
    h: int = Field(ge=1, le=100)
    w: int = Field(ge=1, le=GRID_COLUMNS)
    x: int = Field(ge=0, lt=GRID_COLUMNS)
    y: int = Field(ge=0)

    def cells(self) -> set[tuple[int, int]]:
        return {
            (col, row)
            for col in range(self.x, self.x + self.w)
            for row in range(self.y, self.y + self.h)
        }


class Target(Strict):
    ref_id: str = Field(alias="refId", pattern=r"^[A-Z]$")
    datasource: DataSourceRef
    expr: str = Field(min_length=1)
    legend_format: str = Field(alias="legendFormat")
    instant: bool
    range: bool


class FieldDefaults(Strict):
    unit: str | None = None
    min: float | None = None
    max: float | None = None


class FieldConfig(Strict):
    defaults: FieldDefaults
    overrides: list[dict[str, Any]]


class Panel(Strict):
    id: int = Field(ge=1)
    type: Literal["timeseries", "stat", "gauge", "bargauge", "piechart", "table"]
    title: str = Field(min_length=1)
    description: str = ""
    datasource: DataSourceRef
    grid_pos: GridPos = Field(alias="gridPos")
    targets: list[Target] = Field(min_length=1)
    field_config: FieldConfig = Field(alias="fieldConfig")
    options: dict[str, Any]


class Variable(Strict):
    name: str = Field(pattern=r"^\w+$")
    label: str
    type: Literal["query"]
    datasource: DataSourceRef
    query: str = Field(pattern=r"^label_values\(.+\)$")
    definition: str
    refresh: Literal[1, 2]  # on dashboard load / on time range change
    sort: int
    multi: bool
    include_all: bool = Field(alias="includeAll")
    all_value: str | None = Field(default=None, alias="allValue")
    current: dict[str, Any]


class Templating(Strict):
    list: list[Variable]


class Annotations(Strict):
    list: list[dict[str, Any]]


class TimeRange(Strict):
    from_: str = Field(alias="from")
    to: str


class DashboardLink(Strict):
    title: str
    type: Literal["dashboards", "link"]
    tags: list[str] = []
    as_dropdown: bool = Field(default=False, alias="asDropdown")


class Dashboard(Strict):
    uid: str = Field(pattern=UID_PATTERN)
    title: str = Field(min_length=1)
    description: str = ""
    tags: list[str]
    timezone: Literal["browser", "utc"]
    editable: bool
    graph_tooltip: Literal[0, 1, 2] = Field(alias="graphTooltip")
    schema_version: int = Field(alias="schemaVersion", ge=36)
    refresh: str
    time: TimeRange
    templating: Templating
    annotations: Annotations
    links: list[DashboardLink]
    panels: list[Panel] = Field(min_length=1)

    @field_validator("panels")
    @classmethod
    def _ids_unique(cls, panels: list[Panel]) -> list[Panel]:
        ids = [panel.id for panel in panels]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"panel ids {duplicates} are used more than once")
        return panels


@dataclass(frozen=True)
class DashboardFile:
    """One dashboard as read from disk: where it came from, its checked model and raw JSON."""

    path: Path
    model: Dashboard
    document: dict[str, Any]


def variables_used(text: str) -> set[str]:
    """Names of the $variables and ${variables} an expression refers to."""
    return {match[1] or match[2] for match in VARIABLE_REFERENCE.finditer(text)}


def check_dashboard(dashboard: Dashboard, *, datasource_uid: str = DATASOURCE_UID) -> list[str]:
    """Problems Grafana would not report itself: wrong datasource, overlaps, unknown variables."""
    problems = []
    defined = {variable.name for variable in dashboard.templating.list}
    for variable in dashboard.templating.list:
        if variable.datasource.uid != datasource_uid:
            problems.append(f"variable {variable.name}: datasource uid {variable.datasource.uid}")
        if variable.definition != variable.query:
            problems.append(f"variable {variable.name}: definition differs from its query")
        unknown = variables_used(variable.query) - defined - BUILTIN_VARIABLES
        if unknown:
            problems.append(f"variable {variable.name}: refers to undefined {sorted(unknown)}")
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard.panels:
        where = f"panel {panel.id} ({panel.title})"
        if panel.grid_pos.x + panel.grid_pos.w > GRID_COLUMNS:
            problems.append(f"{where}: runs past the {GRID_COLUMNS}-column grid")
        for cell in panel.grid_pos.cells():
            if cell in taken:
                problems.append(f"{where}: overlaps {taken[cell]}")
                break
            taken[cell] = where
        refs = [target.ref_id for target in panel.targets]
        if len(set(refs)) != len(refs):
            problems.append(f"{where}: refIds repeat {refs}")
        for source in (panel.datasource, *(target.datasource for target in panel.targets)):
            if source.uid != datasource_uid:
                problems.append(f"{where}: datasource uid {source.uid}, not {datasource_uid}")
        for target in panel.targets:
            unknown = variables_used(target.expr) - defined - BUILTIN_VARIABLES
            if unknown:
                problems.append(f"{where} {target.ref_id}: undefined variables {sorted(unknown)}")
            if target.instant == target.range:
                problems.append(f"{where} {target.ref_id}: set exactly one of instant and range")
    return problems


def load_dashboard(path: Path, *, datasource_uid: str = DATASOURCE_UID) -> DashboardFile:
    """Read and check one dashboard file, or raise DashboardError saying what is wrong."""
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DashboardError(f"{path}: not valid JSON ({exc})") from exc
    try:
        model = Dashboard.model_validate(document)
    except ValidationError as exc:
        raise DashboardError(f"{path}: not a dashboard the estate can ship:\n{exc}") from exc
    problems = check_dashboard(model, datasource_uid=datasource_uid)
    if problems:
        raise DashboardError(f"{path}:\n  " + "\n  ".join(problems))
    return DashboardFile(path, model, document)


def load_dashboards(
    directory: Path, *, datasource_uid: str = DATASOURCE_UID
) -> list[DashboardFile]:
    """Every *.json dashboard in a folder, checked, with uids and titles unique across them."""
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise DashboardError(f"no dashboard *.json files in {directory}")
    loaded = [load_dashboard(path, datasource_uid=datasource_uid) for path in paths]
    for attribute in ("uid", "title"):
        seen: dict[str, Path] = {}
        for item in loaded:
            value = getattr(item.model, attribute)
            if value in seen:
                raise DashboardError(
                    f"{item.path.name} and {seen[value].name} share the {attribute} {value!r}"
                )
            seen[value] = item.path
    return loaded
