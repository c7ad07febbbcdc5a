"""Turn raw MQTT messages into accepted reports or refusals with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy.orm import Session

from agents.protocol import (
    HealthReport,
    Rejected,
    StateReport,
    parse_health,
    parse_state,
    parse_topic,
)
from fleet.ingest.directory import DeviceDirectory, DeviceInfo


class Inbound(NamedTuple):
    """One message as received: `generation` names the broker connection it arrived on.

    Messages are immutable named tuples rather than frozen dataclasses: one is built per
    report on the hot path, and tuples are several times cheaper to create.
    """

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: float

    @property
    def channel(self) -> str:
        tail = self.topic.rsplit("/", 1)[-1]
        return tail if tail in ("health", "state") else "other"


class AcceptedHealth(NamedTuple):
    report: HealthReport
    device: DeviceInfo
    received_at: float


class AcceptedState(NamedTuple):
    report: StateReport
    device: DeviceInfo
    received_at: float


class Refused(NamedTuple):
    message: Inbound
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_payload: int = 65536
    future_skew_s: float = 300.0


@dataclass(slots=True)
class Classified:
    health: list[AcceptedHealth] = field(default_factory=list)
    states: list[AcceptedState] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def classify(
    messages: list[Inbound],
    *,
    directory: DeviceDirectory,
    session: Session,
    limits: ParseLimits,
    now: float,
) -> Classified:
    """Parse every message and check its device may report; nothing here raises for bad input."""
    out = Classified()
    parsed: list[tuple[Inbound, HealthReport | StateReport]] = []
    for message in messages:
        try:
            parsed.append((message, _parse(message, limits, now)))
        except Rejected as exc:
            out.refused.append(Refused(message, exc.reason, exc.detail))
    devices = directory.resolve({report.device_id for _, report in parsed}, session=session)
    for message, report in parsed:
        info = devices.get(report.device_id)
        if info is None:
            out.refused.append(Refused(message, "unknown_device", report.device_id))
        elif not info.active:
            out.refused.append(
                Refused(message, "device_not_active", f"{report.device_id} is {info.lifecycle}")
            )
        elif isinstance(report, HealthReport):
            out.health.append(AcceptedHealth(report, info, message.received_at))
        else:
            out.states.append(AcceptedState(report, info, message.received_at))
    return out


def _parse(message: Inbound, limits: ParseLimits, now: float) -> HealthReport | StateReport:
    device_id, channel = parse_topic(message.topic)
    if channel == "health":
        return parse_health(
            device_id,
            message.payload,
            now=now,
            max_bytes=limits.max_payload,
            future_skew=limits.future_skew_s,
        )
    if channel == "state":
        return parse_state(
            device_id,
            message.payload,
            now=now,
            max_bytes=limits.max_payload,
            future_skew=limits.future_skew_s,
        )
    raise Rejected("bad_topic", f"{message.topic[:200]} is neither a health nor a state topic")
