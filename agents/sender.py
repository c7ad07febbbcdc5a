"""Moves buffered health reports to the MQTT client in order, and forgets them once acknowledged."""

from __future__ import annotations

import logging
from collections.abc import Callable

from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode

from agents.buffer import ReportBuffer

log = logging.getLogger(__name__)

Publish = Callable[[bytes], MQTTMessageInfo]


class ReportSender:
    """Keeps at most `window` reports awaiting PUBACK; the rest stay on disk until there is room.

    A report handed to paho stays its responsibility across reconnects (paho resends unacknowledged
    QoS 1 messages first), so only newer reports are handed over afterwards and order holds.
    """

    def __init__(self, buffer: ReportBuffer, publish: Publish, *, window: int = 50) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._buffer = buffer
        self._publish = publish
        self._window = window
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
        if not self._more:
            return
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        self._more = False
        for row_id, payload in self._buffer.after(self._sent_upto, room):
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

    def forget_acknowledged(self) -> None:
        """Delete acknowledged reports from disk, one transaction per batch."""
        if self._acked:
            self._buffer.remove(self._acked)
            self._acked = []
