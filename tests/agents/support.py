"""Test-side pieces for the agent tests: a recording MQTT client and a private Mosquitto."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agents.identity import Identity
from agents.protocol import public_key_b64, topic

HOST = "127.0.0.1"
SHARED_BROKER_PORT = 1883


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def make_identity(
    device_id: str,
    key: Ed25519PrivateKey,
    *,
    port: int = SHARED_BROKER_PORT,
    config: dict[str, Any] | None = None,
) -> Identity:
    return Identity.from_document(
        {
            "device_id": device_id,
            "prison_code": "MDI",
            "mqtt": {"url": f"mqtt://{HOST}:{port}", "username": device_id, "password": "pw"},
            "signing_public_key": public_key_b64(key),
            "config": config if config is not None else {"health_interval_s": 60},
        }
    )


class Recorder:
    """An MQTT client that records every message on the topics it subscribes to."""

    def __init__(
        self, port: int = SHARED_BROKER_PORT, *, client_id: str = "", clean_session: bool = True
    ) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.changed = threading.Condition()
        self._subacks: set[int] = set()
        self._pubacks: set[int] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_message = lambda _c, _u, m: self._note(lambda: self.messages.append(m))
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: self._note(
            lambda: self._subacks.add(mid)
        )
        self.client.on_publish = lambda _c, _u, mid, _r, _p: self._note(
            lambda: self._pubacks.add(mid)
        )
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()

    def _note(self, change: Callable[[], object]) -> None:
        with self.changed:
            change()
            self.changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def subscribe(self, topic_filter: str) -> None:
        _rc, mid = self.client.subscribe(topic_filter, 1)
        assert self.wait_until(lambda: mid in self._subacks), f"no SUBACK for {topic_filter}"

    def publish(self, name: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(name, payload, qos=1, retain=retain)
        assert self.wait_until(lambda: info.mid in self._pubacks), f"no PUBACK for {name}"

    def docs(self, name: str) -> list[dict[str, Any]]:
        with self.changed:
            return [orjson.loads(m.payload) for m in self.messages if m.topic == name and m.payload]

    def wait_for_doc(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def match() -> bool:
            found[:] = [d for d in self.docs(name) if predicate(d)]
            return bool(found)

        assert self.wait_until(match, timeout_s), f"nothing matching on {name}: {self.docs(name)}"
        return found[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(device_id: str, port: int = SHARED_BROKER_PORT) -> None:
    """Remove what a test device left retained on the shared broker."""
    cleaner = Recorder(port)
    try:
        for channel in ("state", "config", "config/reported"):
            cleaner.publish(topic(device_id, channel), b"", retain=True)
    finally:
        cleaner.close()


class PrivateBroker:
    """A Mosquitto of the test's own on a free port, stoppable and restartable; keeps sessions."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} {HOST}",
                    "allow_anonymous true",
                    # Keep the files' owner: as root Mosquitto would switch to its own user
                    # and could not save sessions here.
                    f"user {getpass.getuser()}",
                    "persistence true",
                    f"persistence_location {workdir}/",
                    "max_queued_messages 100000",
                    f"log_dest file {workdir / 'mosquitto.log'}",
                    "",
                ]
            )
        )

    def start(self, timeout_s: float = 10.0) -> None:
        executable = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        assert executable, "mosquitto is not installed"
        self.process = subprocess.Popen([executable, "-c", str(self.config_path)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"mosquitto exited: {self.log_tail()}"
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)  # a clean stop saves sessions to disk
        process.wait(10)

    def log_tail(self) -> str:
        log = self.workdir / "mosquitto.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
