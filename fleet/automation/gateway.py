"""A job's local gateway: Ansible's forked workers reach devices through its one MQTT link.

`with JobGateway(settings, job_id=...) as gw:` opens the broker connection and a Unix socket in
a private directory; `gw.env()` is what ansible-runner's environment needs so the
`estate_mqtt` connection plugin finds both. Workers send exec/put/fetch requests over the socket;
the gateway signs them, sends them to the device and answers with the device's result.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import shutil
import socketserver
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from agents.remote import EXEC, FETCH, PUT
from agents.remote_ops import CHUNK_BYTES, DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S
from fleet.automation.desired_op import DesiredOperation
from fleet.automation.link import DeviceLink, Presence, RemoteFailure, Unreachable
from fleet.automation.presence import DatabasePresence
from fleet.automation.wire import SOCKET_ENV, WireError, recv_message, send_message
from fleet.context import Context
from fleet.settings import Settings
from fleet.signing import load_signing_key

log = logging.getLogger(__name__)

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "playbooks" / "plugins"
TRANSFER_TIMEOUT_S = 120


class JobGateway:
    """One MQTT connection and one local socket for the life of one job."""

    def __init__(
        self,
        settings: Settings,
        *,
        job_id: str | int,
        presence: Presence | None = None,
        ack_timeout_s: float | None = None,
    ) -> None:
        self.job_id = str(job_id)
        # One database engine for the job: presence lookups and desired configuration.
        self._ctx = Context(settings)
        self._dir: Path | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        try:
            self._presence: Presence = presence or DatabasePresence(self._ctx)
            link_options = {} if ack_timeout_s is None else {"ack_timeout_s": ack_timeout_s}
            key = load_signing_key(settings)
            self.link = DeviceLink(
                settings,
                key,
                client_id=f"estate-job-{self.job_id}-{secrets.token_hex(4)}"[:64],
                presence=self._presence,
                **link_options,
            )
            self._desired = DesiredOperation(
                self._ctx, self.link, key, actor=f"job:{self.job_id}", presence=self._presence
            )
        except BaseException:
            self._ctx.close()  # no one gets a gateway to close
            raise

    @property
    def socket_path(self) -> str:
        assert self._dir is not None, "the gateway is not running"
        return str(self._dir / "gateway.sock")

    def __enter__(self) -> JobGateway:
        try:
            self.link.open()
            # mkdtemp makes the directory 0700: only this user may reach the socket.
            self._dir = Path(tempfile.mkdtemp(prefix="estate-gw-"))
            self._server = _Server(self.socket_path, _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"job-gateway-{self.job_id}",
                daemon=True,
            )
            self._thread.start()
        except BaseException:
            self.close()
            raise
        log.info("job %s gateway listening on %s", self.job_id, self.socket_path)
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel what still runs on devices, stop serving and disconnect."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        try:
            if self.link.in_flight():
                self.cancel()
        finally:
            try:
                self.link.close()
            finally:
                self._ctx.close()
                if self._dir is not None:
                    shutil.rmtree(self._dir, ignore_errors=True)
                    self._dir = None

    def env(self) -> dict[str, str]:
        """Environment for ansible-runner: the socket, our plugins, pipelining on."""
        return {
            SOCKET_ENV: self.socket_path,
            "ANSIBLE_CONNECTION_PLUGINS": str(PLUGINS_DIR / "connection"),
            "ANSIBLE_INVENTORY_PLUGINS": str(PLUGINS_DIR / "inventory"),
            "ANSIBLE_ACTION_PLUGINS": str(PLUGINS_DIR / "action"),
            "ANSIBLE_LIBRARY": str(PLUGINS_DIR / "modules"),
            "ANSIBLE_PIPELINING": "True",
        }

    def cancel(self, device_ids: Iterable[str] | None = None) -> set[str]:
        """Send a signed cancel for this job's running requests; the devices it went to."""
        in_flight = self.link.in_flight()
        wanted = set(in_flight) if device_ids is None else set(device_ids) & set(in_flight)
        for device_id in sorted(wanted):
            try:
                self.link.send_cancel(device_id, in_flight[device_id])
            except Unreachable as exc:
                log.error("job %s could not send a cancel to %s: %s", self.job_id, device_id, exc)
        return wanted

    def busy_devices(self) -> set[str]:
        """Devices this job is waiting on right now."""
        return set(self.link.in_flight())

    # --- operations a worker asks for -------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One worker request; the answer always says `status` (done, failed, unreachable...)."""
        op, device_id = request.get("op"), request.get("device")
        if not isinstance(device_id, str) or not device_id:
            return {"status": "failed", "output": {"error": "device is required"}}
        try:
            if op == "exec":
                output = self._exec(device_id, request)
            elif op == "put":
                output = self._put(device_id, str(request["src"]), str(request["dest"]))
            elif op == "fetch":
                output = self._fetch(device_id, str(request["src"]), str(request["dest"]))
            elif op == "desired":
                output = self._desired(device_id, request)
            else:
                return {"status": "failed", "output": {"error": f"unknown operation {op!r}"}}
        except Unreachable as exc:
            return {"status": "unreachable", "output": {"error": str(exc)}}
        except RemoteFailure as exc:
            return {"status": exc.status, "output": exc.output}
        except (KeyError, OSError, ValueError) as exc:
            log.exception("job %s: %s on %s failed in the gateway", self.job_id, op, device_id)
            return {"status": "failed", "output": {"error": f"{type(exc).__name__}: {exc}"}}
        return {"status": "done", "output": output}

    def _exec(self, device_id: str, request: dict[str, Any]) -> dict[str, Any]:
        timeout = request.get("timeout") or DEFAULT_TIMEOUT_S
        timeout = min(max(int(timeout), 1), MAX_TIMEOUT_S)
        params = {"cmd": request.get("cmd"), "stdin": request.get("stdin"), "timeout": timeout}
        return self.link.request(device_id, EXEC, params, timeout_s=timeout)

    def _put(self, device_id: str, src: str, dest: str) -> dict[str, Any]:
        transfer = secrets.token_hex(8)
        digest = hashlib.sha256()
        size = os.path.getsize(src)
        offset = 0
        result: dict[str, Any] = {}
        with open(src, "rb") as fh:
            while True:
                data = fh.read(CHUNK_BYTES)
                digest.update(data)
                final = offset + len(data) >= size
                params: dict[str, Any] = {
                    "path": dest,
                    "transfer": transfer,
                    "offset": offset,
                    "data": base64.b64encode(data).decode(),
                    "final": final,
                }
                if final:
                    params["sha256"] = digest.hexdigest()
                result = self.link.request(device_id, PUT, params, timeout_s=TRANSFER_TIMEOUT_S)
                offset += len(data)
                if final:
                    return result

    def _fetch(self, device_id: str, src: str, dest: str) -> dict[str, Any]:
        part = Path(dest).with_name(f".{Path(dest).name}.{secrets.token_hex(4)}.part")
        digest = hashlib.sha256()
        offset = 0
        try:
            with part.open("wb") as fh:
                while True:
                    params = {"path": src, "offset": offset}
                    out = self.link.request(device_id, FETCH, params, timeout_s=TRANSFER_TIMEOUT_S)
                    data = base64.b64decode(out["data"])
                    fh.write(data)
                    digest.update(data)
                    offset += len(data)
                    if out["eof"]:
                        break
            if digest.hexdigest() != out.get("sha256"):
                raise RemoteFailure(
                    "failed",
                    {"error": f"{src} changed while it was fetched (checksum mismatch); retry"},
                )
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return {"size": offset, "sha256": out["sha256"]}


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: type[_Handler], gateway: JobGateway) -> None:
        self.gateway = gateway
        super().__init__(path, handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            while (request := recv_message(self.request)) is not None:
                send_message(self.request, self.server.gateway.handle(request))
        except (WireError, OSError) as exc:
            log.warning("a worker's gateway connection ended: %s", exc)
