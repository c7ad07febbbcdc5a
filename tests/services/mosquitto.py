"""Pytest plugin: a private Mosquitto with the dynamic security plugin, on a free port.

Use with `pytest_plugins = ["tests.services.mosquitto"]` and the `dynsec_broker` fixture.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from fleet.broker.dynsec import DynsecClient
from fleet.broker.urls import BrokerAddress, BrokerConnectError, close_client, connect_client

DYNSEC_PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)
HOST = "127.0.0.1"


class Login(NamedTuple):
    username: str
    password: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _find_executable(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        pytest.fail(f"{name} is not installed (apt-get install mosquitto mosquitto-clients)")
    return found


def _find_dynsec_plugin() -> str:
    override = os.environ.get("MOSQUITTO_DYNSEC_PLUGIN")
    for candidate in (override, *DYNSEC_PLUGIN_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "Mosquitto's dynamic security plugin was not found; set MOSQUITTO_DYNSEC_PLUGIN to "
        "the path of mosquitto_dynamic_security.so"
    )


@dataclass
class DynsecBroker:
    """A running Mosquitto whose identities live in the dynamic security plugin."""

    workdir: Path
    port: int
    admin: Login
    ingest: Login
    control: Login
    host: str = HOST
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def url_for(self, username: str, password: str) -> str:
        return BrokerAddress(self.host, self.port, username, password).to_url()

    def address_for(self, username: str, password: str) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, username, password)

    @property
    def admin_address(self) -> BrokerAddress:
        return self.address_for(*self.admin)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def write_config(self, plugin: str) -> None:
        self.config_path.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"listener {self.port} {self.host}",
                    f"plugin {plugin}",
                    f"plugin_opt_config_file {self.workdir / 'dynsec.json'}",
                    # Keep the files' owner: as root, Mosquitto would otherwise switch to the
                    # mosquitto user and could no longer save dynsec.json here.
                    f"user {getpass.getuser()}",
                    "persistence true",
                    f"persistence_location {self.workdir}/",
                    # As in deploy/mosquitto: hold a backlog for a restarting ingest.
                    "max_queued_messages 1000000",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "",
                ]
            )
        )

    def start(self, *, timeout_s: float = 15.0) -> None:
        """Start (or restart) Mosquitto on the same port with the same identities and data."""
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [_find_executable("mosquitto"), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        last_error = "not tried"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                pytest.fail(
                    f"mosquitto exited with {self.process.returncode}: {stderr}\n{self.log_tail()}"
                )
            try:
                close_client(connect_client(self.admin_address, "estate-test-probe", timeout_s=2))
                return
            except BrokerConnectError as exc:
                last_error = exc.reason
                time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"mosquitto on port {self.port} did not accept the admin login within {timeout_s:g}s "
            f"({last_error})\n{self.log_tail()}"
        )

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop Mosquitto gracefully (it saves retained messages and sessions)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
        if process.stderr:
            process.stderr.close()


@pytest.fixture(scope="session")
def dynsec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynsecBroker]:
    """A Mosquitto with dynamic security, its ingest and control identities bootstrapped."""
    workdir = tmp_path_factory.mktemp("mosquitto")
    broker = DynsecBroker(
        workdir=workdir,
        port=free_port(),
        admin=Login("estate-admin", "admin-" + os.urandom(8).hex()),
        ingest=Login("estate-ingest", "ingest-" + os.urandom(8).hex()),
        control=Login("estate-control", "control-" + os.urandom(8).hex()),
    )
    plugin = _find_dynsec_plugin()
    init = subprocess.run(
        [
            _find_executable("mosquitto_ctrl"),
            "dynsec",
            "init",
            str(workdir / "dynsec.json"),
            broker.admin.username,
            broker.admin.password,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        pytest.fail(f"mosquitto_ctrl dynsec init failed: {init.stdout}{init.stderr}")
    broker.write_config(plugin)
    broker.start()
    try:
        with DynsecClient(broker.admin_address) as admin:
            admin.bootstrap_service_roles(*broker.ingest, *broker.control)
        yield broker
    finally:
        broker.stop()
