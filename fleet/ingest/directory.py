"""Which devices exist and may report: a cache of device id -> (prison, kind, lifecycle)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.devices.models import Device

ACTIVE_LIFECYCLES = frozenset({"registered", "enrolled"})
# Keeps IN (...) lists under every backend's bound-parameter limit.
LOOKUP_CHUNK = 900


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    prison_code: str
    kind: str
    lifecycle: str

    @property
    def active(self) -> bool:
        return self.lifecycle in ACTIVE_LIFECYCLES


class DeviceDirectory:
    """Looks devices up in bulk, caching hits for `ttl_s` and misses for `miss_ttl_s`.

    Entries expire individually, so a revoked or retired device stops being accepted within
    `ttl_s` without the whole table being reloaded at once.
    """

    def __init__(
        self,
        *,
        ttl_s: float = 60.0,
        miss_ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.miss_ttl_s = miss_ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, DeviceInfo | None]] = {}

    def resolve(
        self, device_ids: Iterable[str], *, session: Session
    ) -> dict[str, DeviceInfo | None]:
        """Info for each id (None when no such device), querying only stale or unseen ids."""
        now = self._clock()
        wanted = set(device_ids)
        result: dict[str, DeviceInfo | None] = {}
        to_fetch: list[str] = []
        for device_id in wanted:
            entry = self._entries.get(device_id)
            if entry is not None and entry[0] > now:
                result[device_id] = entry[1]
            else:
                to_fetch.append(device_id)
        if to_fetch:
            found = self._fetch(to_fetch, session=session)
            for device_id in to_fetch:
                info = found.get(device_id)
                ttl = self.ttl_s if info is not None else self.miss_ttl_s
                self._entries[device_id] = (now + ttl, info)
                result[device_id] = info
        return result

    def forget(self) -> None:
        """Drop every cached entry (after a write failed in a way a stale cache could explain)."""
        self._entries.clear()

    @staticmethod
    def _fetch(device_ids: list[str], *, session: Session) -> dict[str, DeviceInfo]:
        found: dict[str, DeviceInfo] = {}
        for start in range(0, len(device_ids), LOOKUP_CHUNK):
            chunk = device_ids[start : start + LOOKUP_CHUNK]
            rows = session.execute(
                select(Device.id, Device.prison_code, Device.kind, Device.lifecycle).where(
                    Device.id.in_(chunk)
                )
            )
            for device_id, prison_code, kind, lifecycle in rows:
                found[device_id] = DeviceInfo(prison_code, kind, lifecycle)
        return found
