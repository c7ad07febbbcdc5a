"""Health metrics of the machine the agent runs on, read with psutil."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from agents.protocol import MAX_METRICS, METRIC_NAME_RE

log = logging.getLogger(__name__)

MetricsSource = Callable[[], dict[str, float]]
"""Anything returning metric name -> number; the simulator injects its own."""

WIRELESS_STATS = Path("/proc/net/wireless")


def wifi_signal_dbm(stats_file: Path = WIRELESS_STATS) -> float | None:
    """The strongest Wi-Fi signal level in dBm from /proc/net/wireless, None without Wi-Fi."""
    try:
        lines = stats_file.read_text().splitlines()[2:]  # two header lines
    except OSError:
        return None
    levels = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 4:
            try:
                levels.append(float(fields[3].rstrip(".")))
            except ValueError:
                continue
    return max(levels) if levels else None


class PsutilMetrics:
    """battery, charging, cpu, memory, storage, uptime_s and (with Wi-Fi) signal.

    battery, charging and signal are left out where the machine has no such thing, rather than
    reported as zero, so dashboards do not show desktops as flat batteries.
    """

    def __init__(self, *, storage_path: str = "/") -> None:
        self._storage_path = storage_path
        self._warned: set[str] = set()
        psutil.cpu_percent(interval=None)  # the first reading only starts the measurement

    def __call__(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        self._read("battery", metrics, self._battery)
        self._read("cpu", metrics, lambda: {"cpu": psutil.cpu_percent(interval=None)})
        self._read("memory", metrics, lambda: {"memory": psutil.virtual_memory().percent})
        self._read(
            "storage", metrics, lambda: {"storage": psutil.disk_usage(self._storage_path).percent}
        )
        self._read("uptime_s", metrics, self._uptime)
        self._read("signal", metrics, self._signal)
        return metrics

    def _read(
        self, name: str, into: dict[str, float], reader: Callable[[], dict[str, float]]
    ) -> None:
        # One unreadable sensor must not stop the others from being reported.
        try:
            into.update(reader())
        except (OSError, RuntimeError, AttributeError) as exc:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("cannot read metric %s (%s); leaving it out of reports", name, exc)

    @staticmethod
    def _battery() -> dict[str, float]:
        battery = psutil.sensors_battery()
        if battery is None:
            return {}
        values = {"battery": round(float(battery.percent), 1)}
        if battery.power_plugged is not None:
            values["charging"] = 1.0 if battery.power_plugged else 0.0
        return values

    @staticmethod
    def _uptime() -> dict[str, float]:
        return {"uptime_s": float(round(time.time() - psutil.boot_time()))}

    @staticmethod
    def _signal() -> dict[str, float]:
        level = wifi_signal_dbm()
        return {} if level is None else {"signal": level}


def valid_metrics(raw: dict[str, float], *, reserve: int = 0) -> dict[str, float]:
    """The entries with protocol-valid names and finite numbers, leaving room for `reserve` more."""
    metrics: dict[str, float] = {}
    for name, value in raw.items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(name, str) and METRIC_NAME_RE.match(name)) or not is_number:
            log.warning("leaving out metric %r=%r: not a valid name and number", name, value)
        elif not math.isfinite(value):
            log.warning("leaving out metric %s: %r is not a finite number", name, value)
        elif len(metrics) < MAX_METRICS - reserve:
            metrics[name] = value
    return metrics
