"""Health level of a device from its latest metrics, with the thresholds people see.

| metric (aliases)            | unit        | warning  | critical |
| --------------------------- | ----------- | -------- | -------- |
| battery                     | % remaining | < 20     | < 10     |
| storage (disk)              | % used      | > 85     | > 95     |
| memory (mem)                | % used      | > 90     | > 97     |
| cpu                         | % busy      | > 90     | > 98     |
| temperature (temp)          | deg C       | > 70     | > 85     |

A report with none of these metrics is `ok` if it has any metric and `unknown` if it has none.
The worst level across metrics wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HealthLevel = Literal["ok", "warning", "critical", "unknown"]


@dataclass(frozen=True, slots=True)
class Threshold:
    names: tuple[str, ...]
    warning: float
    critical: float
    low_is_bad: bool = False

    def level(self, value: float) -> HealthLevel:
        if self.low_is_bad:
            if value < self.critical:
                return "critical"
            return "warning" if value < self.warning else "ok"
        if value > self.critical:
            return "critical"
        return "warning" if value > self.warning else "ok"


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(("battery",), warning=20, critical=10, low_is_bad=True),
    Threshold(("storage", "disk"), warning=85, critical=95),
    Threshold(("memory", "mem"), warning=90, critical=97),
    Threshold(("cpu",), warning=90, critical=98),
    Threshold(("temperature", "temp"), warning=70, critical=85),
)
_RANK: dict[HealthLevel, int] = {"unknown": 0, "ok": 1, "warning": 2, "critical": 3}


def assess(metrics: dict[str, float]) -> HealthLevel:
    """The worst level any known metric reaches (see the module table)."""
    if not metrics:
        return "unknown"
    worst: HealthLevel = "ok"
    for threshold in THRESHOLDS:
        for name in threshold.names:
            value = metrics.get(name)
            if value is not None:
                level = threshold.level(value)
                if _RANK[level] > _RANK[worst]:
                    worst = level
                break
    return worst


def battery_of(metrics: dict[str, float]) -> float | None:
    return metrics.get("battery")
