"""Whether a device is online, from the latest state ingest recorded (birth, will, shutdown)."""

from __future__ import annotations

from fleet.context import Context
from fleet.devices.models import DeviceState


class DatabasePresence:
    """Reads device_state; None for a device that has never reported."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __call__(self, device_id: str) -> bool | None:
        with self._ctx.sessions() as session:
            state = session.get(DeviceState, device_id)
            if state is None or state.state == "unknown":
                return None
            return bool(state.online)
