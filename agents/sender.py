"""Moves buffered health reports to the MQTT client in order, and forgets them once acknowledged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from agents.backoff import Backoff
from agents.buffer import ReportBuffer

log = logging.getLogger(__name__)

Publish = Callable[[bytes], MQTTMessageInfo]

# MQTT 5 PUBACK "no matching subscribers": taken by the broker, delivered to nobody. Mosquitto
# answers it while a persistent session's shared subscription is not yet restored after a restart.
NO_MATCHING_SUBSCRIBERS = 0x10


def undelivered(reason: ReasonCode) -> bool:
    """Whether a PUBACK says the message reached no one (0x10) or was refused (0x80 and up)."""
    return reason.value == NO_MATCHING_SUBSCRIBERS or reason.is_failure


class ReportSender:
    """Keeps at most `window` reports awaiting PUBACK; the rest stay on disk until there is room.

    A report handed to paho stays its responsibility across reconnects (paho resends unacknowledged
    QoS 1 messages first), so only newer reports are handed over afterwards and order holds.
    """

    def __init__(
        self,
        buffer: ReportBuffer,
        publish: Publish,
        *,
        window: int = 50,
        retry: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._buffer = buffer
        self._publish = publish
        self._window = window
        # Undelivered reports are sent again once this backoff's delay has passed.
        self._retry = retry or Backoff(initial_s=0.5, cap_s=30.0)
        self._clock = clock
        self._hold_until = 0.0
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._acked: list[int] = []
        self._sent_upto = 0
        self._more = True

    @property
    def awaiting_ack(self) -> int:
        return len(self._inflight)

    def wake(self) -> None:
        """Something new may be waiting: a report was queued or the connection came up."""
        self._more = True

    def send(self) -> None:
        if not self._more or self._clock() < self._hold_until:
            return
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        self._more = False
        in_flight = set(self._inflight.values())
        for row_id, payload in self._buffer.after(self._sent_upto, room):
            if row_id in in_flight:  # handed to paho already; it resends it on reconnect
                self._sent_upto = row_id
                continue
            info = self._publish(payload)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                log.warning("MQTT client queue full; report %d waits for the next round", row_id)
                self._more = True
                return
            self._inflight[info.mid] = row_id
            self._sent_upto = row_id
        if len(self._inflight) >= self._window:
            self._more = True

    def acknowledged(self, mid: int) -> None:
        """The broker's PUBACK for `mid` (which may not be a report at all)."""
        row_id = self._inflight.pop(mid, None)
        if row_id is not None:
            self._acked.append(row_id)
            self._more = True
            self._retry.reset()

    def refused(self, mid: int, reason: object) -> bool:
        """A PUBACK saying `mid` was not delivered: keep its report and send it again later.

        Returns False when `mid` is not a report. Sending starts again from the oldest report
        not delivered, in buffer order, after a backoff delay (one per round of refusals).
        """
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return False
        self._sent_upto = min(self._sent_upto, row_id - 1)
        self._more = True
        now = self._clock()
        if now >= self._hold_until:
            delay = self._retry.next_delay()
            self._hold_until = now + delay
            log.warning(
                "report %d was not delivered (%s); kept, sending again in %.1fs",
                row_id,
                reason,
                delay,
            )
        return True

    def forget_acknowledged(self) -> None:
        """Delete acknowledged reports from disk, one transaction per batch."""
        if self._acked:
            self._buffer.remove(self._acked)
            self._acked = []
