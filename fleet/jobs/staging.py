"""Splitting a job's targets into a canary and waves, and deciding when a rollout pauses."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from fleet.jobs.schemas import Rollout
from fleet.jobs.targets import Target


@dataclass(frozen=True)
class PlannedStage:
    label: str
    device_ids: list[str]


def _spread_over_prisons(targets: Sequence[Target]) -> list[Target]:
    """Targets taken round-robin across prisons, so an early slice touches many prisons."""
    by_prison: dict[str, list[Target]] = defaultdict(list)
    for target in sorted(targets, key=lambda t: (t.prison_code, t.device_id)):
        by_prison[target.prison_code].append(target)
    queues = [by_prison[code] for code in sorted(by_prison)]
    spread: list[Target] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        spread.extend(q[rank] for q in queues if rank < len(q))
    return spread


def plan_stages(targets: Sequence[Target], rollout: Rollout) -> list[PlannedStage]:
    """The canary (if any), then waves by cumulative percentage or one per prison."""
    ordered = _spread_over_prisons(targets)
    stages: list[PlannedStage] = []
    canary = ordered[: rollout.canary]
    rest = ordered[rollout.canary :]
    if canary:
        stages.append(
            PlannedStage(f"Canary ({len(canary)} devices)", [t.device_id for t in canary])
        )
    if not rest:
        return stages
    if rollout.waves == "prison":
        codes = sorted({t.prison_code for t in rest})
        for code in codes:
            ids = [t.device_id for t in rest if t.prison_code == code]
            stages.append(PlannedStage(f"Prison {code} ({len(ids)} devices)", ids))
        return stages
    done = 0
    for number, percent in enumerate(rollout.wave_percent, start=1):
        upto = math.ceil(len(rest) * percent / 100)
        ids = [t.device_id for t in rest[done:upto]]
        if ids:
            label = (
                "All devices"
                if len(rollout.wave_percent) == 1 and not canary
                else (f"Wave {number} (to {percent}%)")
            )
            stages.append(PlannedStage(f"{label} ({len(ids)} devices)", ids))
        done = max(done, upto)
    return stages


def over_threshold(*, failed: int, finished: int, threshold_pct: float) -> bool:
    """Whether the share of failed hosts so far passes the rollout's failure threshold."""
    return finished > 0 and failed * 100.0 / finished > threshold_pct
