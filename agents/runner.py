"""The device agent: one MQTT connection, health reports, signed commands and desired config."""

from __future__ import annotations

import logging
import math
import queue
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agents import AGENT_VERSION
from agents.backoff import Backoff
from agents.buffer import DEFAULT_MAX_REPORTS, ReportBuffer
from agents.commands import ActionRegistry, CommandDispatcher, SeenNonces, default_actions
from agents.config import (
    DEFAULT_HEALTH_INTERVAL_S,
    AppliedConfig,
    handle_desired_config,
    resolve_health_interval,
)
from agents.identity import Identity, parse_mqtt_url
from agents.interpreter import system_python
from agents.lock import StateDirLock
from agents.metrics import MetricsSource, valid_metrics
from agents.protocol import dumps, topic
from agents.remote import RemoteRequests, is_remote
from agents.remote_ops import Sandbox
from agents.sender import ReportSender, undelivered
from agents.state import Counters, ensure_state_dir
from agents.store import open_database

log = logging.getLogger(__name__)

MAX_LOOP_WAIT_S = 0.5  # how long stop() may wait for the loop to notice
ACTION_POLL_S = 0.05  # loop wait while an action runs, so its reply goes out promptly
SHUTDOWN_ACK_WAIT_S = 3.0
UNSUPPORTED_PROTOCOL = 0x84  # CONNACK from a broker that speaks only MQTT 3.1.1
CONNACK_TIMEOUT_S = 10.0  # a broker that has not answered CONNECT by then is given up on


class Agent:
    """One device's agent. `start()`/`stop()` run it in a thread; `run_forever()` in the caller.

    Everything touching MQTT, the buffer and the state files happens on the agent's own thread;
    only action handlers run elsewhere (one at a time), handing their replies back via a queue.
    """

    def __init__(
        self,
        identity: Identity,
        state_dir: Path,
        *,
        metrics: MetricsSource | None = None,
        interval_s: float | None = None,
        buffer_max: int = DEFAULT_MAX_REPORTS,
        actions: ActionRegistry | None = None,
        backoff: Backoff | None = None,
        keepalive_s: int = 60,
        publish_window: int = 50,
        sandbox: Sandbox | None = None,
    ) -> None:
        if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError("interval_s must be a positive number of seconds")
        self.identity = identity
        self.device_id = identity.device_id
        self.state_dir = Path(state_dir)
        self._metrics = metrics
        self._interval_override = interval_s
        self._buffer_max = buffer_max
        self._actions = actions or default_actions()
        self._backoff = backoff or Backoff()
        self._keepalive_s = keepalive_s
        self._publish_window = publish_window
        # MQTT 5 so a PUBACK can say a report reached no subscriber; 3.1.1 for brokers without it.
        self._protocol = mqtt.MQTTv5
        self._rebuild_client = False
        self._protocol_confirmed = False  # a CONNACK arrived in this protocol
        self._connack_seen = True
        self._connack_due = math.inf
        # Where remote commands run and the only place files may be moved in or out of.
        self.sandbox = sandbox or Sandbox(self.state_dir / "sandbox")
        self._host, self._port, self._tls = parse_mqtt_url(identity.mqtt_url)
        self._public_key = identity.public_key
        self._topics = {
            name: topic(self.device_id, name)
            for name in ("state", "health", "cmd", "cmd/reply", "config", "config/reported")
        }
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # connected and listening for commands and config
        self.failure: BaseException | None = None
        self.boot = 0
        self.python = ""  # the interpreter Ansible modules can use here; found once, at start
        self.interval_s = DEFAULT_HEALTH_INTERVAL_S
        self._stop_requested = threading.Event()
        self._abort = False
        self._thread: threading.Thread | None = None
        self._opened = False
        self._state_mids: set[int] = set()
        self._next_health = 0.0
        self._subscribe_mid: int | None = None
        # Requests from action handlers (other threads) for the agent's own thread to carry out.
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._snapshot: dict[str, Any] = {}
        self.restart_exit_code: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the state directory, count a boot and run the agent in a background thread."""
        self._open()
        self._thread = threading.Thread(
            target=self._run_in_thread, name=f"estate-agent-{self.device_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish `offline`, disconnect cleanly and wait for the thread to finish."""
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"agent {self.device_id} did not stop within {timeout}s")

    def abort(self, timeout: float = 10.0) -> None:
        """Stop as a crash would: drop the connection without DISCONNECT so the will fires."""
        self._abort = True
        self.stop(timeout)

    def run_forever(self) -> None:
        """Run in the calling thread until SIGTERM or SIGINT, then shut down cleanly."""
        self._open()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        self._run()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the broker has confirmed the cmd and config subscriptions."""
        return self.subscribed.wait(timeout)

    @property
    def pending_reports(self) -> int:
        return self._buffer.pending

    @property
    def dropped_reports(self) -> int:
        return self._buffer.dropped

    @property
    def config_version(self) -> int:
        return self._config.version

    @property
    def last_seq(self) -> int:
        return self._counters.last_seq

    @property
    def actions(self) -> ActionRegistry:
        return self._actions

    def status_snapshot(self) -> dict[str, Any]:
        """Boot, seq and buffer figures as of the last report; safe from any thread."""
        return dict(self._snapshot)

    def request_config_refresh(self) -> None:
        """Ask for the retained desired configuration again (from any thread)."""
        self._requests.put("refresh_config")

    def request_restart(self, exit_code: int | None = None) -> None:
        """Stop with `exit_code` for the service manager to restart, or reconnect as a new boot."""
        if exit_code is not None:
            self.restart_exit_code = exit_code
        self._requests.put("restart")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        self._stop_requested.set()

    def _open(self) -> None:
        if self._opened:
            raise RuntimeError("an Agent runs once; create a new one to run again")
        self._opened = True
        ensure_state_dir(self.state_dir)
        self._lock = StateDirLock(self.state_dir)
        try:
            self._counters = Counters(self.state_dir)
            self._config = AppliedConfig.load(self.state_dir)
            self._db = open_database(self.state_dir)
        except BaseException:
            self._lock.release()
            raise
        self.boot = self._counters.start_boot()
        self.python = system_python()
        self._buffer = ReportBuffer(self._db, max_reports=self._buffer_max)
        self._commands = CommandDispatcher(
            self._public_key, self.device_id, SeenNonces(self._db), self._actions
        )
        self._remote = RemoteRequests(
            self._public_key, self.device_id, self.state_dir, self.sandbox
        )
        self.interval_s = resolve_health_interval(
            self._interval_override, self._config.doc, self.identity.config
        )
        self._take_snapshot()
        if self._metrics is None:
            from agents.metrics import PsutilMetrics

            self._metrics = PsutilMetrics()
        self._client = self._make_client()
        self._sender = ReportSender(
            self._buffer,
            lambda payload: self._client.publish(self._topics["health"], payload, qos=1),
            window=self._publish_window,
        )

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=self._protocol,
            # MQTT 5 starts clean by default (session expiry 0); 3.1.1 needs it said.
            clean_session=True if self._protocol == mqtt.MQTTv311 else None,
        )
        client.username_pw_set(self.identity.mqtt_username, self.identity.mqtt_password or None)
        # With paho's in-flight limit above the sender's window paho never holds a report
        # back in its own queue, so reports reach the wire in buffer order, resends first.
        client.max_inflight_messages_set(self._publish_window + 10)
        if self._tls:
            client.tls_set()  # the system's trusted CAs
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    # --- the loop ----------------------------------------------------------------------------

    def _run_in_thread(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            # A thread has no caller to raise to: keep the error for whoever started us.
            self.failure = exc
            log.exception("agent %s stopped on an unexpected error", self.device_id)

    def _run(self) -> None:
        try:
            self._loop()
            self._shutdown()
        finally:
            self._close()

    def _loop(self) -> None:
        log.info(
            "agent %s (boot %d) reporting every %gs", self.device_id, self.boot, self.interval_s
        )
        next_connect = self._next_health = time.monotonic()
        while not self._stop_requested.is_set():
            now = time.monotonic()
            disconnected = self._client.socket() is None
            if disconnected and now >= next_connect and not self._try_connect():
                next_connect = now + self._retry_delay("cannot reach")
            if now >= self._next_health:
                self._report_health(now)
            self._send_action_replies()
            self._serve_requests()
            if self._client.socket() is None:
                self._stop_requested.wait(self._wait_s(next_connect))
                continue
            if self.connected.is_set():
                self._sender.send()
            rc = self._client.loop(timeout=self._wait_s(next_connect))
            if not self._connack_seen and time.monotonic() > self._connack_due:
                log.warning("broker %s:%d did not answer CONNECT", self._host, self._port)
                self._connack_due = math.inf
                self._client.disconnect()
            self._sender.forget_acknowledged()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._client.socket() is None:
                next_connect = time.monotonic() + self._retry_delay(
                    f"lost the connection ({mqtt.error_string(rc)}) to"
                )

    def _serve_requests(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if request == "refresh_config" and self.connected.is_set():
                # Subscribing again makes the broker resend the retained configuration.
                self._client.subscribe(self._topics["config"], qos=1)
            elif request == "restart" and self.restart_exit_code is not None:
                log.warning("agent %s stopping so its service manager restarts it", self.device_id)
                self._stop_requested.set()
            elif request == "restart":
                log.warning("agent %s reconnecting as a new boot", self.device_id)
                if self.connected.is_set():
                    self._publish_state("offline")
                    self._client.disconnect()
                self.boot = self._counters.start_boot()
                self._take_snapshot()

    def _take_snapshot(self) -> None:
        self._snapshot = {
            "agent": AGENT_VERSION,
            "boot": self.boot,
            "seq": self._counters.last_seq,
            "buffered_reports": self._buffer.pending,
            "dropped_reports": self._buffer.dropped,
            "health_interval_s": self.interval_s,
            "config_version": self._config.version,
            "python_interpreter": self.python,
        }

    def _wait_s(self, next_connect: float) -> float:
        due = self._next_health
        if self._client.socket() is None:
            due = min(due, next_connect)
        wait = min(due - time.monotonic(), MAX_LOOP_WAIT_S)
        if self._commands.busy or self._remote.busy:
            wait = min(wait, ACTION_POLL_S)
        return max(wait, 0.0)

    def _retry_delay(self, what: str) -> float:
        self.connected.clear()
        self.subscribed.clear()
        delay = self._backoff.next_delay()
        log.warning("%s broker %s:%d; retrying in %.1fs", what, self._host, self._port, delay)
        return delay

    def _try_connect(self) -> bool:
        self._switch_protocol_if_unanswered()
        if self._rebuild_client:  # paho fixes the protocol version when the client is made
            self._rebuild_client = False
            self._client.reinitialise()
            self._client = self._make_client()
        self._client.will_set(
            self._topics["state"], dumps(self._state_doc("lost")), qos=1, retain=True
        )
        try:
            self._client.connect(self._host, self._port, keepalive=self._keepalive_s)
        except OSError as exc:
            log.debug("connect to %s:%d failed: %s", self._host, self._port, exc)
            return False
        self._connack_seen = False
        self._connack_due = time.monotonic() + CONNACK_TIMEOUT_S
        return True

    def _switch_protocol_if_unanswered(self) -> None:
        """Until one protocol got a CONNACK, a broker that hangs up unanswered gets the other.

        A 3.1.1-only broker may drop an MQTT 5 CONNECT without answering it at all.
        """
        if self._connack_seen or self._protocol_confirmed:
            return
        self._connack_seen = True
        other = mqtt.MQTTv311 if self._protocol == mqtt.MQTTv5 else mqtt.MQTTv5
        log.info(
            "broker %s:%d hung up before answering; trying MQTT %s",
            self._host,
            self._port,
            "3.1.1" if other == mqtt.MQTTv311 else "5",
        )
        self._protocol, self._rebuild_client = other, True

    def _shutdown(self) -> None:
        if self._abort:
            log.warning("agent %s aborting without a clean disconnect", self.device_id)
            self._client.reinitialise()  # closes the socket, sends no DISCONNECT
            return
        if self.connected.is_set():
            self._send_action_replies()
            self._publish_state("offline")
            deadline = time.monotonic() + SHUTDOWN_ACK_WAIT_S
            # Reports acknowledged now are not sent again by the next run.
            while (self._state_mids or self._sender.awaiting_ack) and time.monotonic() < deadline:
                if self._client.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            self._sender.forget_acknowledged()
            self._client.disconnect()
            deadline = time.monotonic() + 1.0
            while self._client.socket() is not None and time.monotonic() < deadline:
                self._client.loop(timeout=0.1)  # finish writing DISCONNECT if it did not fit
        self._counters.release_unused()
        log.info("agent %s stopped (last seq %d)", self.device_id, self._counters.last_seq)

    def _close(self) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self._commands.shutdown()
        self._remote.shutdown()
        self._client.reinitialise()  # closes its sockets now rather than at garbage collection
        self._db.close()
        self._lock.release()

    # --- paho callbacks (run on the agent thread, inside client.loop) --------------------------

    # Signatures follow paho's CallbackAPIVersion.VERSION2; unused arguments are collected in _.

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason_code: mqtt.ReasonCode, _p: Any
    ) -> None:
        self._connack_seen = True
        if (
            reason_code.is_failure
            and reason_code.value == UNSUPPORTED_PROTOCOL
            and (self._protocol == mqtt.MQTTv5)
        ):
            log.warning("broker %s:%d has no MQTT 5; using 3.1.1", self._host, self._port)
            self._protocol, self._rebuild_client = mqtt.MQTTv311, True
            return
        if reason_code.is_failure:
            log.warning("broker refused agent %s: %s", self.device_id, reason_code)
            return
        self._backoff.reset()
        self._protocol_confirmed = True
        self._publish_state("online")
        _rc, self._subscribe_mid = client.subscribe(
            [(self._topics["cmd"], 1), (self._topics["config"], 1)]
        )
        self._sender.wake()
        self.connected.set()
        log.info("agent %s connected; %d report(s) to send", self.device_id, self._buffer.pending)

    def _on_disconnect(self, *_: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_subscribe(
        self, _c: Any, _u: Any, mid: int, reason_codes: list[mqtt.ReasonCode], _p: Any
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("broker refused agent %s's subscriptions: %s", self.device_id, refused)
        elif mid == self._subscribe_mid:
            self.subscribed.set()

    def _on_publish(
        self, _c: Any, _u: Any, mid: int, reason_code: mqtt.ReasonCode, _p: Any
    ) -> None:
        if undelivered(reason_code) and self._sender.refused(mid, reason_code):
            return  # the report stays in the buffer and is sent again
        self._sender.acknowledged(mid)
        self._state_mids.discard(mid)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._topics["cmd"]:
            self._handle_command(bytes(message.payload))
        elif message.topic == self._topics["config"]:
            self._handle_config(bytes(message.payload))
        else:
            log.warning("ignoring message on unexpected topic %s", message.topic)

    # --- health ------------------------------------------------------------------------------

    def _report_health(self, now: float) -> None:
        ts = time.time()
        metrics = self._collect_metrics()
        seq = self._counters.next_seq()
        self._buffer.append(seq, dumps({"seq": seq, "ts": ts, "metrics": metrics}))
        self._sender.wake()
        self._take_snapshot()
        self._next_health += self.interval_s
        if self._next_health < now:  # asleep or suspended: skip missed slots, do not burst
            self._next_health = now + self.interval_s

    def _collect_metrics(self) -> dict[str, float]:
        assert self._metrics is not None
        try:
            raw = self._metrics()
        except Exception:
            log.exception("metrics source failed; this report carries only buffer_dropped")
            raw = {}
        metrics = valid_metrics(raw, reserve=1)
        metrics["buffer_dropped"] = self._buffer.dropped
        return metrics

    # --- state, commands and configuration ---------------------------------------------------

    def _state_doc(self, state: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": state,
            "boot": self.boot,
            "agent": AGENT_VERSION,
            "config_version": self._config.version,
            "ts": time.time(),
        }
        if self.python:
            doc["python"] = self.python
        return doc

    def _publish_state(self, state: str) -> None:
        doc = self._state_doc(state)
        info = self._client.publish(self._topics["state"], dumps(doc), qos=1, retain=True)
        self._state_mids.add(info.mid)

    def _publish(self, channel: str, doc: dict[str, Any], *, retain: bool = False) -> None:
        info = self._client.publish(self._topics[channel], dumps(doc), qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.error("could not queue %s message: %s", channel, mqtt.error_string(info.rc))

    def _handle_command(self, raw: bytes) -> None:
        if is_remote(raw):
            self._publish("cmd/reply", self._remote.handle(raw))
            return
        reply = self._commands.handle(raw)
        if reply is not None:
            self._publish("cmd/reply", reply)

    def _send_action_replies(self) -> None:
        for reply in self._commands.finished_replies() + self._remote.finished_replies():
            self._publish("cmd/reply", reply)

    def _handle_config(self, raw: bytes) -> None:
        report = handle_desired_config(raw, self._public_key, self.device_id, self._config)
        if report is None:
            return
        self._publish("config/reported", report, retain=True)
        if report["status"] == "applied":
            self._apply_settings()
            self._publish_state("online")  # so the state topic carries the new config_version

    def _apply_settings(self) -> None:
        interval = resolve_health_interval(
            self._interval_override, self._config.doc, self.identity.config
        )
        if interval != self.interval_s:
            log.info("health interval %gs -> %gs", self.interval_s, interval)
            self.interval_s = interval
            self._next_health = min(self._next_health, time.monotonic() + interval)
