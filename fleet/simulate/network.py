"""Many simulated devices' MQTT connections driven by one thread per shard.

Each device is a real paho client with its own login, but no paho network thread: the shard
waits on all its clients' sockets with one selector and calls loop_read/loop_write/loop_misc
itself, so thousands of devices cost a handful of threads.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import queue
import random
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

from agents.protocol import topic
from fleet.broker.urls import Will, make_client
from fleet.simulate.commands import SimCommands
from fleet.simulate.device import CLOSING, CONNECTING, DOWN, ONLINE, ShardCounters, SimDevice
from fleet.simulate.state import SimIdentity

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
MAX_BACKOFF_S = 60.0
SWEEP_EVERY_S = 1.0
REPLY_FLUSH_S = 0.2  # time for a reply to reach the broker before a simulated reboot
_HEALTH, _CONNECT, _RETURN, _SWEEP, _REPLY = range(5)


class Shard:
    """A thread running the connections, timers and faults of a subset of the devices."""

    def __init__(
        self,
        name: str,
        devices: list[SimDevice],
        *,
        protocol: MQTTProtocolVersion,
        interval_s: float,
        keepalive_s: int,
        fault_rate_per_h: float,
        mean_outage_s: float,
        seed: int,
        on_counters_moved: Callable[[SimIdentity], None],
        commands: SimCommands | None = None,
    ) -> None:
        self.name = name
        self.devices = devices
        self.protocol = protocol
        self.interval_s = interval_s
        self.keepalive_s = keepalive_s
        # Chance that a device drops at a given report, from a rate of drops per device-hour.
        self.drop_chance = 1 - math.exp(-fault_rate_per_h * interval_s / 3600)
        self.mean_outage_s = mean_outage_s
        self.rng = random.Random(f"{seed}:{name}")
        self.on_counters_moved = on_counters_moved
        self.counters = ShardCounters()
        self.last_error = ""
        self.cpu_seconds = 0.0  # CPU used by this shard's thread, updated every sweep
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, int, SimDevice | None, int]] = []
        self._tie = itertools.count()
        self._sim_commands = commands
        self._replies: dict[int, tuple[bytes, float | None]] = {}
        self._stopping = False
        self._stop_timeout_s = 10.0
        self._thread = threading.Thread(target=self._run, name=f"simulate-{name}", daemon=True)

    # --- control from other threads ----------------------------------------------------------

    def start(self, schedule: list[tuple[SimDevice, float, float]]) -> None:
        """Start the thread; each device connects at its first time and reports from its second
        (both time.monotonic() values)."""
        for dev, connect_at, first_health in schedule:
            self._at(connect_at, _CONNECT, dev, dev.token)
            self._at(first_health, _HEALTH, dev)
        self._at(time.monotonic() + SWEEP_EVERY_S, _SWEEP, None)
        self._thread.start()

    def submit(self, command: Callable[[], None]) -> None:
        """Run `command` on the shard's thread (paho clients are not shared between threads)."""
        self._commands.put(command)
        self._wake()

    def stop(self, timeout_s: float) -> None:
        """Publish `offline` and disconnect every device, then end the thread."""
        self._stop_timeout_s = timeout_s
        self._stopping = True
        self._wake()
        self._thread.join(timeout_s + 5)
        if self._thread.is_alive():
            log.error("shard %s did not stop within %.0fs", self.name, timeout_s + 5)

    def _wake(self) -> None:
        # A full pipe already holds wake-ups; one is enough.
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"x")

    # --- fault injection (run on the shard thread via submit) ---------------------------------

    def drop(self, dev: SimDevice, down_for_s: float | None) -> None:
        """Cut the device off without a clean disconnect, so the broker publishes its will;
        it comes back after `down_for_s`, or on restore() when that is None."""
        dev.wanted = False
        dev.token += 1
        if down_for_s is not None:
            self._at(time.monotonic() + down_for_s, _RETURN, dev, dev.token)
        if self._sever(dev):
            self.counters.drops += 1

    def _sever(self, dev: SimDevice) -> bool:
        """Kill the connection under paho (no DISCONNECT packet); paho notices on its next read."""
        client = dev.client
        sock = client.socket() if client is not None else None
        if sock is None:
            return False
        dev.status = CLOSING
        try:
            cast(socket.socket, sock).shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("device %s: socket already gone while dropping (%s)", dev.device_id, exc)
        return True

    def restore(self, dev: SimDevice, within_s: float) -> None:
        """Bring a dropped device back, reconnecting at a random moment within `within_s`."""
        if dev.wanted:
            return
        dev.wanted = True
        dev.token += 1
        dev.backoff = 1.0
        self._at(time.monotonic() + self.rng.uniform(0, within_s), _CONNECT, dev, dev.token)

    # --- the loop ------------------------------------------------------------------------------

    def _at(self, due: float, kind: int, dev: SimDevice | None, token: int = 0) -> None:
        heapq.heappush(self._timers, (due, next(self._tie), kind, dev, token))

    def _run(self) -> None:
        while not self._stopping:
            timeout = self._timers[0][0] - time.monotonic() if self._timers else 1.0
            self._poll(min(max(timeout, 0.0), 1.0))
            self._run_commands()
            self._run_timers()
        self._shutdown(self._stop_timeout_s)

    def _poll(self, timeout: float) -> None:
        for key, mask in self._selector.select(timeout):
            if key.data is None:
                self._drain_wake()
                continue
            dev, client = key.data
            try:
                if mask & selectors.EVENT_READ:
                    client.loop_read()
                    sock = client.socket()
                    # TLS may hold decrypted bytes the selector cannot see.
                    while isinstance(sock, ssl.SSLSocket) and sock.pending() and client.socket():
                        client.loop_read()
                if mask & selectors.EVENT_WRITE and client.socket() is not None:
                    client.loop_write()
            except Exception as exc:
                self._fail(dev, "network I/O", exc)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass  # drained

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except Exception:
                self.counters.errors += 1
                log.exception("simulator command failed on shard %s", self.name)

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now and not self._stopping:
            due, _tie, kind, dev, token = heapq.heappop(self._timers)
            if kind == _SWEEP:
                self._sweep(now)
                continue
            assert dev is not None
            try:
                if kind == _HEALTH:
                    self._health(dev, due, now)
                elif kind == _CONNECT and token == dev.token:
                    self._connect(dev)
                elif kind == _REPLY:
                    self._send_reply(dev, token)
                elif kind == _RETURN and token == dev.token:
                    dev.wanted = True
                    dev.backoff = 1.0
                    self._connect(dev)
            except Exception as exc:
                self._fail(dev, "timer", exc)

    def _fail(self, dev: SimDevice, where: str, exc: Exception) -> None:
        """An unexpected error for one device: log it and let the device reconnect afresh."""
        self.counters.errors += 1
        log.error(
            "device %s: unexpected error in %s; reconnecting it",
            dev.device_id,
            where,
            exc_info=exc,
        )
        client, dev.client = dev.client, None
        dev.status = DOWN
        if client is not None and client.socket() is not None:
            sock = client.socket()
            try:
                self._selector.unregister(sock)  # type: ignore[arg-type]
            except (KeyError, ValueError):
                log.debug("device %s: socket was not registered", dev.device_id)
            sock.close()  # type: ignore[union-attr]
        if dev.wanted and not self._stopping:
            self._retry_later(dev)

    def _sweep(self, now: float) -> None:
        self._at(now + SWEEP_EVERY_S, _SWEEP, None)
        self.cpu_seconds = time.thread_time()
        for dev in self.devices:
            client = dev.client
            if client is None:
                continue
            if dev.status == CONNECTING and now - dev.connecting_since > CONNECT_TIMEOUT_S:
                self._note_error(dev, f"no CONNACK within {CONNECT_TIMEOUT_S:g}s; retrying")
                self._sever(dev)  # on_disconnect then schedules the retry
                continue
            client.loop_misc()  # keepalive pings and ping timeouts

    def _health(self, dev: SimDevice, due: float, now: float) -> None:
        next_due = due + self.interval_s
        if next_due < now:  # fell behind (suspended process): keep the phase, skip the backlog
            next_due += self.interval_s * math.ceil((now - next_due) / self.interval_s)
        self._at(next_due, _HEALTH, dev)
        client = dev.client
        if dev.status != ONLINE or client is None:
            return
        if self.drop_chance and self.rng.random() < self.drop_chance:
            self.counters.random_drops += 1
            outage = min(self.rng.expovariate(1 / self.mean_outage_s), 20 * self.mean_outage_s)
            self.drop(dev, down_for_s=max(1.0, outage))
            return
        info = client.publish(topic(dev.device_id, "health"), dev.next_health_payload(), qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.counters.health += 1
        else:
            self.counters.publish_failures += 1
            log.debug("device %s: health not queued (%s)", dev.device_id, info.rc)
        self.on_counters_moved(dev.ident)

    # --- connections ---------------------------------------------------------------------------

    def _connect(self, dev: SimDevice) -> None:
        if not dev.wanted or self._stopping:
            return
        if dev.status == CLOSING:  # the old connection is still being torn down
            self._at(time.monotonic() + 0.2, _CONNECT, dev, dev.token)
            return
        if dev.client is not None:
            return
        dev.ident.boot += 1
        self.on_counters_moved(dev.ident)
        will = Will(topic(dev.device_id, "state"), dev.state_payload("lost"))
        client = make_client(
            dev.address, dev.device_id, protocol=self.protocol, userdata=dev, will=will
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        dev.client = client
        dev.status = CONNECTING
        dev.connecting_since = time.monotonic()
        options: dict[str, Any] = {}
        if self.protocol == MQTTProtocolVersion.MQTTv5:
            options["clean_start"] = True
        try:
            client.connect(dev.address.host, dev.address.port, self.keepalive_s, **options)
        except OSError as exc:
            dev.client = None
            dev.status = DOWN
            self.counters.connect_failures += 1
            where = dev.address.with_credentials(None, None).redacted()
            self._note_error(dev, f"cannot reach {where}: {exc}")
            self._retry_later(dev)

    def _retry_later(self, dev: SimDevice) -> None:
        delay = dev.backoff * self.rng.uniform(0.5, 1.5)
        dev.backoff = min(dev.backoff * 2, MAX_BACKOFF_S)
        self._at(time.monotonic() + delay, _CONNECT, dev, dev.token)

    def _note_error(self, dev: SimDevice, message: str) -> None:
        dev.last_error = message
        # Thousands of devices usually fail for one reason: say it once, not per device.
        if message != self.last_error:
            log.warning("device %s: %s", dev.device_id, message)
        else:
            log.debug("device %s: %s", dev.device_id, message)
        self.last_error = message

    def _on_connect(
        self, client: mqtt.Client, dev: SimDevice, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if dev.client is not client:
            return
        if reason.is_failure:
            # paho closes the socket next and on_disconnect schedules the retry.
            self.counters.refusals += 1
            self._note_error(dev, f"refused by the broker: {reason}")
            return
        dev.status = ONLINE
        dev.backoff = 1.0
        client.publish(topic(dev.device_id, "state"), dev.state_payload("online"), 1, True)
        if self._sim_commands is not None:
            client.on_message = self._on_message
            client.subscribe(topic(dev.device_id, "cmd"), 1)
        self.counters.births += 1

    def _on_message(self, client: mqtt.Client, dev: SimDevice, message: mqtt.MQTTMessage) -> None:
        if dev.client is not client or self._sim_commands is None:
            return
        reply = self._sim_commands.handle(
            dev.device_id, bytes(message.payload), boot=dev.ident.boot, seq=dev.ident.seq
        )
        key = next(self._tie)
        self._replies[key] = (reply.payload, reply.down_for_s)
        self._at(time.monotonic() + reply.delay_s, _REPLY, dev, key)

    def _send_reply(self, dev: SimDevice, key: int) -> None:
        """Publish a command's reply; an empty payload is the follow-up drop of a reboot."""
        payload, down_for_s = self._replies.pop(key)
        if not payload and down_for_s is not None:
            self.drop(dev, down_for_s)  # back after `down_for_s` as a new boot
            return
        if dev.client is None or dev.status != ONLINE:
            log.info("device %s went down before replying to a command", dev.device_id)
            return
        dev.client.publish(topic(dev.device_id, "cmd/reply"), payload, 1)
        if down_for_s is not None:
            drop_key = next(self._tie)
            self._replies[drop_key] = (b"", down_for_s)
            self._at(time.monotonic() + REPLY_FLUSH_S, _REPLY, dev, drop_key)

    def _on_disconnect(
        self, client: mqtt.Client, dev: SimDevice, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if dev.client is not client:
            return
        was_online = dev.status == ONLINE
        dev.client = None
        dev.status = DOWN
        if self._stopping or not dev.wanted:
            return
        if was_online:
            self._note_error(dev, f"connection lost ({reason}); reconnecting")
        self._retry_later(dev)

    def _on_socket_open(self, client: mqtt.Client, dev: SimDevice, sock: Any) -> None:
        self._selector.register(sock, selectors.EVENT_READ, (dev, client))

    def _on_socket_close(self, _client: mqtt.Client, dev: SimDevice, sock: Any) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            log.debug("device %s: closing a socket that was not registered", dev.device_id)
        # Unread bytes at close() make the kernel send a reset instead of a clean close, and a
        # reset can cost the broker the DISCONNECT just written (it would then fire the will).
        try:
            while sock.recv(4096):
                pass
        except OSError as exc:  # BlockingIOError once drained; others: already shut down
            log.debug("device %s: socket drained before close (%s)", dev.device_id, exc)

    def _on_register_write(self, client: mqtt.Client, dev: SimDevice, sock: Any) -> None:
        self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, (dev, client))

    def _on_unregister_write(self, client: mqtt.Client, dev: SimDevice, sock: Any) -> None:
        try:
            self._selector.modify(sock, selectors.EVENT_READ, (dev, client))
        except (KeyError, ValueError):
            log.debug("device %s: socket left the selector before its writes", dev.device_id)

    # --- clean shutdown ------------------------------------------------------------------------

    def _shutdown(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending: list[mqtt.MQTTMessageInfo] = []
        for dev in self.devices:
            if dev.client is not None and dev.status == ONLINE:
                payload = dev.state_payload("offline")
                info = dev.client.publish(topic(dev.device_id, "state"), payload, 1, True)
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    pending.append(info)
                    self.counters.offline += 1
        # Wait for the acknowledgements first: closing a socket with an unread PUBACK queued
        # sends a reset, and the broker may then lose the DISCONNECT and publish the will.
        half_time = time.monotonic() + timeout_s / 2
        while not all(info.is_published() for info in pending) and time.monotonic() < half_time:
            self._poll(0.05)
        for dev in self.devices:
            if dev.client is not None:
                try:
                    dev.client.disconnect()
                except Exception:
                    self.counters.errors += 1
                    log.exception("device %s: clean disconnect failed", dev.device_id)
        while any(d.client is not None for d in self.devices) and time.monotonic() < deadline:
            self._poll(0.05)
        stuck = [d for d in self.devices if d.client is not None]
        if stuck:
            log.warning(
                "shard %s: %d devices did not finish disconnecting within %.0fs; the broker "
                "will publish their wills",
                self.name,
                len(stuck),
                timeout_s,
            )
            for dev in stuck:
                sock = dev.client.socket() if dev.client else None
                dev.client, dev.status = None, DOWN
                if sock is not None:
                    sock.close()
        self.cpu_seconds = time.thread_time()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
