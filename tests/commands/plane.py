"""The e2e control plane with the API logged in to the broker as the control-plane role."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as mqtt

from agents.protocol import topic
from fleet.broker.urls import close_client, connect_client
from tests.e2e.harness import AgentProcess, ControlPlane, control_plane, wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


class CommandPlane(ControlPlane):
    def start_agent_with(self, name: str, token: str, *extra: str) -> AgentProcess:
        """An `estate agent` process enrolled with `token`, with extra command-line options."""
        state_dir = self.tmp / f"agent-{name}"
        cmd = [
            str(Path(sys.executable).parent / "estate"),
            "agent",
            "--enrol",
            token,
            "--server",
            self.base_url,
            "--state-dir",
            str(state_dir),
            "--serial",
            f"SER-{name}",
            "--interval",
            "0.5",
            *extra,
        ]
        log = open(self.tmp / f"agent-{name}.log", "wb")  # noqa: SIM115 - closed by AgentProcess
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        return AgentProcess(proc, state_dir, log)

    def device(self, device_id: str) -> dict[str, Any]:
        with self.api() as api:
            resp = api.get(f"/api/v1/devices/{device_id}")
            resp.raise_for_status()
            return dict(resp.json())

    def run(self, device_id: str, action: str, **params: Any) -> dict[str, Any]:
        """Send an action and wait until the device has answered it."""
        with self.api() as api:
            resp = api.post(
                f"/api/v1/devices/{device_id}/commands", json={"action": action, "params": params}
            )
            assert resp.status_code == 202, resp.text
            command_id = resp.json()["id"]
            return dict(
                wait_for(
                    lambda: (
                        (c := api.get(f"/api/v1/commands/{command_id}").json())["status"]
                        in ("done", "failed", "rejected")
                        and c
                    ),
                    20,
                    f"the reply to {action}",
                )
            )


class ReplyTap:
    """Listens to one device's cmd/reply as the control plane does, and publishes to its cmd."""

    def __init__(self, broker: DynsecBroker, device_id: str) -> None:
        self.device_id = device_id
        self.replies: list[dict[str, Any]] = []
        self._subscribed = threading.Event()
        self._client = connect_client(
            broker.address_for(*broker.control),
            f"reply-tap-{os.getpid()}",
            on_connect=self._on_connect,
            on_message=self._on_message,
        )
        assert self._subscribed.wait(10), "reply subscription not confirmed"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.on_subscribe = lambda *_a: self._subscribed.set()
        client.subscribe(topic(self.device_id, "cmd/reply"), qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.replies.append(orjson.loads(message.payload))

    def publish(self, envelope: bytes) -> None:
        self._client.publish(topic(self.device_id, "cmd"), envelope, qos=1).wait_for_publish(10)

    def reply_to(self, command_id: str, count: int = 1) -> list[dict[str, Any]]:
        return list(
            wait_for(
                lambda: len(r := [d for d in self.replies if d["id"] == command_id]) >= count and r,
                20,
                f"{count} repl(ies) to {command_id}",
            )
        )

    def close(self) -> None:
        close_client(self._client)


@contextmanager
def command_plane(pg_url: str, broker: DynsecBroker, tmp: Path) -> Iterator[CommandPlane]:
    """PostgreSQL, ingest and the API, which sends commands as the estate-control login."""
    # No session outlives the test: a parked shared subscription would take a share of
    # later tests' messages on the same broker.
    with control_plane(
        pg_url,
        broker,
        tmp,
        username="commands-admin",
        ingest_id="commands-ingest",
        session_expiry_s=0,
    ) as plane:
        yield CommandPlane(plane.ctx, plane.base_url, plane.admin_token, broker, tmp)


__all__ = ["CommandPlane", "ReplyTap", "command_plane", "wait_for"]
