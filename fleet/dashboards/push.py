"""Install or update the dashboards in a running Grafana through its HTTP API, by uid.

Each dashboard is read back first and written only when it differs from what Grafana holds
(ignoring the `id` and `version` Grafana assigns), so pushing twice changes nothing the second
time and leaves Grafana's version history clean.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from fleet.dashboards.model import DashboardFile

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged"]
ASSIGNED_BY_GRAFANA = ("id", "version")
PUSH_MESSAGE = "estate dashboards push"


class PushError(Exception):
    """Grafana refused part of the push; the message says what and how to fix it."""


@dataclass(frozen=True)
class PushResult:
    kind: Literal["folder", "dashboard"]
    uid: str
    title: str
    action: Action


def folder_uid(title: str) -> str:
    """A stable uid for a folder title, so every push finds the folder it made before."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40]
    if not slug:
        raise PushError(f"folder title {title!r} needs at least one letter or digit")
    return slug


def with_datasource(document: dict[str, Any], datasource_uid: str) -> dict[str, Any]:
    """A copy of the dashboard with every datasource reference pointing at `datasource_uid`."""
    result = copy.deepcopy(document)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            source = node.get("datasource")
            if isinstance(source, dict) and "uid" in source:
                source["uid"] = datasource_uid
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in ASSIGNED_BY_GRAFANA}


def _not_found(exc: GrafanaClientError) -> bool:
    return exc.status_code == 404


class DashboardPusher:
    """Pushes dashboards into one Grafana folder through a GrafanaApi client."""

    def __init__(self, api: GrafanaApi, *, folder: str, datasource_uid: str) -> None:
        self.api = api
        self.folder = folder
        self.folder_uid = folder_uid(folder)
        self.datasource_uid = datasource_uid

    def check_datasource(self) -> None:
        """Refuse to push dashboards whose datasource this Grafana does not have."""
        try:
            self.api.datasource.get_datasource_by_uid(self.datasource_uid)
        except GrafanaClientError as exc:
            if not _not_found(exc):
                raise
            raise PushError(
                f"Grafana has no datasource with uid {self.datasource_uid!r}: provision "
                "dashboards/provisioning/datasources/victoriametrics.yml, or pass "
                "--datasource-uid with the uid of its VictoriaMetrics (Prometheus) datasource"
            ) from exc

    def ensure_folder(self) -> PushResult:
        try:
            existing = self.api.folder.get_folder(self.folder_uid)
        except GrafanaClientError as exc:
            if not _not_found(exc):
                raise
            self.api.folder.create_folder(self.folder, uid=self.folder_uid)
            return PushResult("folder", self.folder_uid, self.folder, "created")
        if existing.get("title") == self.folder:
            return PushResult("folder", self.folder_uid, self.folder, "unchanged")
        self.api.folder.update_folder(self.folder_uid, title=self.folder, overwrite=True)
        return PushResult("folder", self.folder_uid, self.folder, "updated")

    def push_dashboard(self, dashboard: DashboardFile) -> PushResult:
        wanted = with_datasource(dashboard.document, self.datasource_uid)
        uid, title = dashboard.model.uid, dashboard.model.title
        try:
            current = self.api.dashboard.get_dashboard(uid)
        except GrafanaClientError as exc:
            if not _not_found(exc):
                raise
            current = None
        if current is not None:
            held = current.get("dashboard", {})
            in_folder = current.get("meta", {}).get("folderUid") == self.folder_uid
            if in_folder and _comparable(held) == _comparable(wanted):
                return PushResult("dashboard", uid, title, "unchanged")
        self.api.dashboard.update_dashboard(
            {
                "dashboard": {**_comparable(wanted), "id": None},
                "folderUid": self.folder_uid,
                "overwrite": True,
                "message": PUSH_MESSAGE,
            }
        )
        return PushResult("dashboard", uid, title, "created" if current is None else "updated")

    def push(self, dashboards: Sequence[DashboardFile]) -> list[PushResult]:
        """Folder first, then each dashboard; stops at the first refusal with its reason."""
        self.check_datasource()
        results = [self.ensure_folder()]
        for dashboard in dashboards:
            try:
                result = self.push_dashboard(dashboard)
            except GrafanaClientError as exc:
                raise PushError(
                    f"Grafana refused dashboard {dashboard.model.uid} ({dashboard.path.name}): "
                    f"{exc.message}"
                ) from exc
            log.info("dashboard %s %s", result.uid, result.action)
            results.append(result)
        return results
