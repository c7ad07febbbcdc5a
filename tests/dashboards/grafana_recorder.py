"""A local HTTP server answering the part of Grafana's HTTP API that a push uses, recording calls.

Grafana itself cannot run here, so this follows Grafana's documented API (Folder, Dashboard and
Data source HTTP APIs): 404 with a message for unknown uids, 401 without the bearer token, 412
when a dashboard uid exists and `overwrite` is not set, versions that grow on every save.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    authorization: str


@dataclass
class GrafanaState:
    token: str
    datasources: set[str] = field(default_factory=lambda: {"victoriametrics"})
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.method != "GET"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; every call is in the state's record instead."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = orjson.loads(raw) if raw else None
        state = self.server.state
        with state.lock:
            state.calls.append(Call(method, self.path, body, self.headers.get("Authorization", "")))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._reply(401, {"message": "Unauthorized"})
                return
            status, answer = _route(state, method, self.path, body)
        self._reply(status, answer)

    def _reply(self, status: int, body: Any) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _route(state: GrafanaState, method: str, path: str, body: Any) -> tuple[int, Any]:
    parts = path.split("?", 1)[0].strip("/").split("/")
    match (method, parts):
        case ("GET", ["api", "datasources", "uid", uid]):
            if uid not in state.datasources:
                return 404, {"message": "Data source not found"}
            return 200, {"uid": uid, "type": "prometheus", "name": "VictoriaMetrics"}
        case ("GET", ["api", "folders", uid]):
            if uid not in state.folders:
                return 404, {"message": "folder not found"}
            return 200, state.folders[uid]
        case ("POST", ["api", "folders"]):
            uid = body.get("uid") or f"f{state.next_id}"
            if uid in state.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            state.folders[uid] = {"id": state.next_id, "uid": uid, "title": body["title"]}
            state.next_id += 1
            return 200, state.folders[uid]
        case ("PUT", ["api", "folders", uid]):
            if uid not in state.folders:
                return 404, {"message": "folder not found"}
            state.folders[uid]["title"] = body["title"]
            return 200, state.folders[uid]
        case ("GET", ["api", "dashboards", "uid", uid]):
            if uid not in state.dashboards:
                return 404, {"message": "Dashboard not found"}
            return 200, copy.deepcopy(state.dashboards[uid])
        case ("POST", ["api", "dashboards", "db"]):
            return _save_dashboard(state, body)
    return 404, {"message": "Not found"}


def _save_dashboard(state: GrafanaState, body: dict[str, Any]) -> tuple[int, Any]:
    dashboard = dict(body["dashboard"])
    folder_uid = body.get("folderUid", "")
    if folder_uid and folder_uid not in state.folders:
        return 400, {"message": "folder not found"}
    uid = dashboard["uid"]
    held = state.dashboards.get(uid)
    if held is not None and not body.get("overwrite"):
        return 412, {"status": "name-exists", "message": "A dashboard with the same uid exists"}
    number = held["dashboard"]["id"] if held else state.next_id
    if held is None:
        state.next_id += 1
    version = held["dashboard"]["version"] + 1 if held else 1
    dashboard.update(id=number, version=version)
    state.dashboards[uid] = {
        "dashboard": dashboard,
        "meta": {"folderUid": folder_uid, "version": version, "slug": uid},
    }
    return 200, {"id": number, "uid": uid, "status": "success", "version": version, "slug": uid}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: GrafanaState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def recording_grafana(token: str) -> Iterator[tuple[str, GrafanaState]]:
    """Yield the base URL of a recording Grafana accepting `token`, and its state."""
    state = GrafanaState(token=token)
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, name="grafana-recorder", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
