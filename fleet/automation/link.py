"""A job's one broker connection: signed remote requests out, the devices' replies back."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.protocol import Rejected, parse_topic, sign_envelope, topic
from agents.remote import CANCEL
from fleet.broker.embedded import protocol_for
from fleet.broker.urls import close_client, connect_client, parse_broker_url
from fleet.settings import Settings

log = logging.getLogger(__name__)

Presence = Callable[[str], "bool | None"]
"""Whether a device is online now (True/False), or None when that is not known."""

ACK_TIMEOUT_S = 5.0  # a device that has not even acknowledged by then is not there
RESULT_GRACE_S = 15.0  # beyond the command's own timeout, which the agent enforces
PRESENCE_EVERY_S = 2.0
PUBACK_TIMEOUT_S = 10.0
ENVELOPE_SLACK_S = 60
REQUEST_ID_PREFIX = "rq-"


class Unreachable(Exception):
    """The device cannot be reached now; the message says how that was decided."""


class RemoteFailure(Exception):
    """The device answered `failed` or `rejected` (or the request was cancelled)."""

    def __init__(self, status: str, output: dict[str, Any]) -> None:
        error = output.get("error") or output.get("reason") or status
        super().__init__(str(error))
        self.status = status
        self.output = output


def new_request_id() -> str:
    """Unique, and told apart from command ids (plain hex) by whoever reads cmd/reply."""
    return REQUEST_ID_PREFIX + secrets.token_hex(16)


def unknown_presence(device_id: str) -> bool | None:
    return None


@dataclass
class _Pending:
    device_id: str
    action: str
    replies: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False


class DeviceLink:
    """Sends remote requests to devices and waits for their answers, for many threads at once."""

    def __init__(
        self,
        settings: Settings,
        key: Ed25519PrivateKey,
        *,
        client_id: str,
        presence: Presence = unknown_presence,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self._settings = settings
        self._key = key
        self._client_id = client_id
        self._presence = presence
        self._ack_timeout_s = ack_timeout_s
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._subscribed: dict[str, threading.Event] = {}
        self._sub_mids: dict[int, str] = {}
        self._client: mqtt.Client | None = None
        # Requests answered so far and the seconds they took, by action (for benchmarks).
        self.round_trips: dict[str, tuple[int, float]] = {}
        # Messages on the device channels other than cmd/reply that this link subscribed to.
        self.on_other: Callable[[str, str, mqtt.MQTTMessage], None] | None = None

    def open(self) -> None:
        self._client = connect_client(
            parse_broker_url(self._settings.control_mqtt_url),
            self._client_id,
            protocol=protocol_for(self._settings),
            on_connect=self._on_connect,
            on_message=self._on_message,
        )
        self._client.on_subscribe = self._on_subscribe

    def close(self) -> None:
        if self._client is not None:
            close_client(self._client)
            self._client = None

    # --- requests ------------------------------------------------------------------------------

    def request(
        self, device_id: str, action: str, params: dict[str, Any], *, timeout_s: float
    ) -> dict[str, Any]:
        """The device's `done` output; Unreachable or RemoteFailure otherwise."""
        if self._presence(device_id) is False:
            raise Unreachable(f"device {device_id} is offline (its last state was not online)")
        self.listen(device_id)
        request_id = new_request_id()
        pending = _Pending(device_id, action)
        with self._lock:
            self._pending[request_id] = pending
        started = time.monotonic()
        try:
            self._send(device_id, {"action": action, "params": params}, request_id, timeout_s)
            return self._await(request_id, pending, timeout_s)
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
                count, total = self.round_trips.get(action, (0, 0.0))
                self.round_trips[action] = (count + 1, total + time.monotonic() - started)

    def _send(self, device_id: str, body: dict[str, Any], request_id: str, ttl_s: float) -> None:
        assert self._client is not None, "open() the link first"
        envelope = sign_envelope(
            self._key,
            device_id,
            body,
            ttl_s=int(ttl_s + RESULT_GRACE_S + ENVELOPE_SLACK_S),
            envelope_id=request_id,
        )
        info = self._client.publish(topic(device_id, "cmd"), envelope, qos=1)
        info.wait_for_publish(PUBACK_TIMEOUT_S)
        if not info.is_published():
            raise Unreachable(f"the broker did not take the request for {device_id} in time")

    def _await(self, request_id: str, pending: _Pending, timeout_s: float) -> dict[str, Any]:
        try:
            first = pending.replies.get(timeout=self._ack_timeout_s)
        except queue.Empty:
            raise Unreachable(
                f"device {pending.device_id} did not answer within {self._ack_timeout_s:g} s;"
                " it is offline or not listening"
            ) from None
        deadline = time.monotonic() + timeout_s + RESULT_GRACE_S
        answer = first
        while answer["status"] == "accepted":
            if pending.cancelled:
                raise RemoteFailure("failed", {"error": "cancelled", "cancelled": True})
            left = deadline - time.monotonic()
            if left <= 0:
                self.send_cancel(pending.device_id, [request_id])
                raise RemoteFailure(
                    "failed", {"error": f"no result within {timeout_s + RESULT_GRACE_S:g} s"}
                )
            try:
                answer = pending.replies.get(timeout=min(left, PRESENCE_EVERY_S))
            except queue.Empty:
                if self._presence(pending.device_id) is False:
                    raise Unreachable(
                        f"device {pending.device_id} went offline while running the request"
                    ) from None
                continue
        output = answer.get("output")
        output = output if isinstance(output, dict) else {"error": str(output)}
        if answer["status"] != "done":
            raise RemoteFailure(str(answer["status"]), output)
        return output

    def send_cancel(self, device_id: str, request_ids: list[str]) -> None:
        """Ask the device to kill the process groups of these requests."""
        with self._lock:
            for rid in request_ids:
                if rid in self._pending:
                    self._pending[rid].cancelled = True
                    self._pending[rid].replies.put({"status": "accepted", "output": {}})
        self._send(
            device_id,
            {"action": CANCEL, "params": {"requests": request_ids}},
            new_request_id(),
            ENVELOPE_SLACK_S,
        )

    def in_flight(self) -> dict[str, list[str]]:
        """Request ids still awaiting an answer, by device."""
        by_device: dict[str, list[str]] = {}
        with self._lock:
            for rid, pending in self._pending.items():
                by_device.setdefault(pending.device_id, []).append(rid)
        return by_device

    # --- subscriptions and replies -------------------------------------------------------------

    def listen(self, device_id: str, channel: str = "cmd/reply") -> None:
        """Subscribe to one of the device's channels once, waiting for the broker to confirm."""
        name = topic(device_id, channel)
        with self._lock:
            ready = self._subscribed.get(name)
            first = ready is None
            if ready is None:
                ready = self._subscribed[name] = threading.Event()
        if first:
            self._subscribe(name)
        if not ready.wait(PUBACK_TIMEOUT_S):
            raise Unreachable(f"the broker did not confirm the subscription to {name}")

    def _subscribe(self, name: str) -> None:
        assert self._client is not None
        with self._lock:
            rc, mid = self._client.subscribe(name, qos=1)
            if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._sub_mids[mid] = name

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        with self._lock:
            names = list(self._subscribed)
        for name in names:  # again after a reconnect: the session started clean
            self._subscribe(name)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._lock:
            name = self._sub_mids.pop(mid, None)
            ready = self._subscribed.get(name) if name else None
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            log.error("broker refused the subscription to %s: %s", name, refused)
        elif ready is not None:
            ready.set()

    def publish_retained(self, device_id: str, channel: str, payload: bytes) -> None:
        """Publish QoS 1, retained, and wait for the broker to take it."""
        assert self._client is not None, "open() the link first"
        info = self._client.publish(topic(device_id, channel), payload, qos=1, retain=True)
        info.wait_for_publish(PUBACK_TIMEOUT_S)
        if not info.is_published():
            raise Unreachable(f"the broker did not take the {channel} message for {device_id}")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            device_id, channel = parse_topic(message.topic)
            if channel != "cmd/reply":
                if self.on_other is not None:
                    self.on_other(device_id, channel, message)
                return
            answer = orjson.loads(message.payload)
        except (Rejected, orjson.JSONDecodeError) as exc:
            log.warning("ignoring a reply on %s: %s", message.topic[:200], exc)
            return
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            return
        with self._lock:
            pending = self._pending.get(answer["id"])
        if pending is not None and pending.device_id == device_id:
            pending.replies.put(answer)
