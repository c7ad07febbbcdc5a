"""When published reports became visible in device_state, by polling the database.

Polling every device every 50 ms would cost more CPU than the ingest being measured, so a
fixed sample of devices (every k-th, at most SAMPLE_MAX) is polled for latency and progress,
and the exact count of visible reports is taken with one aggregate query when it matters.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections.abc import Sequence
from multiprocessing.sharedctypes import Synchronized

from sqlalchemy import func, select

from fleet.context import Context
from fleet.devices.models import DeviceState
from fleet.ingest.directory import LOOKUP_CHUNK

log = logging.getLogger(__name__)

SAMPLE_MAX = 500


class VisibilityPoller:
    """Polls the sampled devices' seq every `interval_s`; a report is visible from the first
    poll (timed at its start, the snapshot) that shows its seq or a later one."""

    def __init__(
        self,
        ctx: Context,
        device_ids: Sequence[str],
        *,
        visible: Synchronized[int],
        interval_s: float = 0.05,
    ) -> None:
        self.ctx = ctx
        self.device_ids = list(device_ids)
        self.stride = max(1, -(-len(device_ids) // SAMPLE_MAX))
        self.sampled = self.device_ids[:: self.stride]
        self.position = {d: i * self.stride for i, d in enumerate(self.sampled)}
        self.seq = dict.fromkeys(self.sampled, 0)
        # Per sampled device: (seq reached, when) for each poll that saw it move.
        self.steps: dict[str, list[tuple[int, float]]] = {d: [] for d in self.sampled}
        self.visible = visible
        self.interval_s = interval_s
        self.last_change = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def estimate(self) -> int:
        """Visible reports, extrapolated from the sample (publishing is round robin)."""
        return sum(self.seq.values()) * len(self.device_ids) // len(self.sampled)

    def exact_total(self) -> int:
        """Visible reports over every device: the sum of their seqs (reports are 1..seq)."""
        with self.ctx.engine.connect() as conn:
            return sum(
                conn.scalar(
                    select(func.coalesce(func.sum(DeviceState.seq), 0)).where(
                        DeviceState.device_id.in_(chunk)
                    )
                )
                or 0
                for chunk in _chunks(self.device_ids)
            )

    def _run(self) -> None:
        chunks = _chunks(self.sampled)
        while not self._stop.is_set():
            started = time.time()
            moved = False
            try:
                with self.ctx.engine.connect() as conn:
                    for chunk in chunks:
                        snapshot = time.time()
                        query = select(DeviceState.device_id, DeviceState.seq).where(
                            DeviceState.device_id.in_(chunk)
                        )
                        for device_id, seq in conn.execute(query).all():
                            moved |= self._saw(device_id, seq, snapshot)
                        conn.rollback()  # next chunk: a fresh snapshot
            except Exception:
                log.exception("polling device_state failed; retrying")
                self._stop.wait(1.0)
                continue
            if moved:
                self.visible.value = self.estimate
                self.last_change = time.monotonic()
            self._stop.wait(max(0.0, self.interval_s - (time.time() - started)))

    def _saw(self, device_id: str, seq: int, when: float) -> bool:
        if seq <= self.seq[device_id]:
            return False
        self.seq[device_id] = seq
        self.steps[device_id].append((seq, when))
        return True

    def latencies(self, times: array[float], devices: int, first_seq: int) -> list[float]:
        """Publish-to-visible seconds for every sampled report that became visible."""
        out: list[float] = []
        for device_id, steps in self.steps.items():
            i = self.position[device_id]
            previous = first_seq - 1
            for seq, seen in steps:
                for s in range(max(previous + 1, first_seq), seq + 1):
                    index = (s - first_seq) * devices + i
                    if index < len(times):
                        out.append(seen - times[index])
                previous = seq
        return out


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + LOOKUP_CHUNK] for i in range(0, len(ids), LOOKUP_CHUNK)]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]
