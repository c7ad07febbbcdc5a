"""In-process MQTT broker (amqtt) for `estate demo`, run on its own thread and event loop.

amqtt speaks MQTT 3.1.1 only and has no shared subscriptions: a `$share/...` filter is
accepted but never matches, so against it ingest must subscribe to the plain topics and
run as a single process. It keeps up with the demo's tens of messages a second, not bursts
of thousands. It checks no identities (see OpenBrokerIssuer); fleet.broker.amqtt_patches
lists what is changed from stock amqtt.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from paho.mqtt.enums import MQTTProtocolVersion

from fleet.broker.urls import parse_broker_url
from fleet.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18830


class EmbeddedBrokerError(RuntimeError):
    """The in-process broker could not start or stop."""


def supports_shared_subscriptions(settings: Settings) -> bool:
    """Whether `$share/<group>/...` subscriptions work on the configured broker."""
    return not settings.embedded_mqtt


def protocol_for(settings: Settings) -> MQTTProtocolVersion:
    """The MQTT version to speak to the configured broker (the embedded one has no MQTT 5)."""
    return MQTTProtocolVersion.MQTTv311 if settings.embedded_mqtt else MQTTProtocolVersion.MQTTv5


def _broker_config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Everyone is let in; amqtt's packet/event loggers and $SYS publisher stay off.
        "plugins": {"fleet.broker.amqtt_patches.OpenDoorAuth": {}},
    }


class EmbeddedBroker:
    """An amqtt broker on 127.0.0.1:18830 by default; start() and stop() from ordinary code."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedBroker:
        address = parse_broker_url(settings.effective_mqtt_url)
        return cls(address.host, address.port)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start listening; return once clients can connect, or raise EmbeddedBrokerError."""
        if self.running:
            return
        started: Future[None] = Future()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run, args=(loop, started), name=f"mqtt-broker-{self.port}", daemon=True
        )
        thread.start()
        try:
            started.result(timeout=timeout_s)
        except Exception as exc:
            thread.join(timeout_s)
            raise EmbeddedBrokerError(
                f"embedded MQTT broker could not listen on {self.host}:{self.port}: {exc} "
                "(is another process using the port? set ESTATE_MQTT_URL to use another broker)"
            ) from exc
        self._loop, self._thread = loop, thread
        log.info("embedded MQTT broker listening on %s", self.url)

    def _run(self, loop: asyncio.AbstractEventLoop, started: Future[None]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_broker(loop))
        except Exception as exc:  # handed to start(), which raises it in the caller's thread
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_broker(self, loop: asyncio.AbstractEventLoop) -> None:
        # Imported here so processes that never run the demo broker do not load amqtt.
        from fleet.broker.amqtt_patches import OwnSubscriptionsBroker

        self._broker = OwnSubscriptionsBroker(_broker_config(self.host, self.port), loop=loop)
        await self._broker.start()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Disconnect every client (their wills are not delivered) and stop listening."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop).result(timeout_s)
        except Exception:
            log.exception("embedded MQTT broker on %s did not shut down cleanly", self.url)
            raise
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout_s)
            self._loop = self._thread = self._broker = None
        log.info("embedded MQTT broker on %s stopped", self.url)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
