"""Plausible health metrics for simulated devices, reproducible from a seed.

Every device kind reports `cpu`, `memory`, `storage` (percent used) and `temperature` (°C).
Battery devices add `battery` (percent) and `charging` (1 while on power). In-cell phones
report `signal_bars` (0-5); tablets, laptops and kiosks report `wifi_rssi` (dBm).
Hours of the day are taken in UTC, which is close enough to UK local time for the cycles.
"""

from __future__ import annotations

import math
import random

HOUR_S = 3600.0
DAY_S = 86400.0
# Long gaps are integrated in short steps so that day/night transitions are not skipped.
MAX_SUBSTEP_S = 300.0
MAX_GAP_S = 2 * DAY_S

BASE_CPU = {"in_cell_phone": 7.0, "tablet": 10.0, "laptop": 14.0, "kiosk": 9.0}
BASE_MEMORY = {"in_cell_phone": 50.0, "tablet": 55.0, "laptop": 58.0, "kiosk": 45.0}
BASE_TEMPERATURE = {"in_cell_phone": 29.0, "tablet": 30.0, "laptop": 38.0, "kiosk": 36.0}
BATTERY_KINDS = ("in_cell_phone", "tablet", "laptop")


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _in_window(hour: float, start: float, end: float) -> bool:
    """Whether `hour` falls in [start, end), a window that may wrap past midnight."""
    if start <= end:
        return start <= hour < end
    return hour >= start or hour < end


class DeviceModel:
    """The evolving physical state of one device; `step(now)` gives the metrics to report."""

    __slots__ = (
        "_last",
        "battery",
        "bedtime",
        "charge_per_h",
        "cpu_base",
        "day_drain_per_h",
        "has_battery",
        "kind",
        "low_battery",
        "memory",
        "memory_mean",
        "night",
        "night_drain_per_h",
        "plugged",
        "rng",
        "signal_base",
        "storage",
        "storage_per_day",
        "topping_up",
        "topup_target",
        "unplugged_until",
        "wake",
    )

    def __init__(self, device_id: str, kind: str, seed: int) -> None:
        rng = random.Random(f"{seed}:{device_id}")
        self.rng = rng
        self.kind = kind
        self.has_battery = kind in BATTERY_KINDS
        self._last: float | None = None
        laptop = kind == "laptop"
        self.battery = rng.uniform(35, 100) if self.has_battery else 0.0
        self.day_drain_per_h = rng.uniform(10, 18) if laptop else rng.uniform(3, 8)
        self.night_drain_per_h = rng.uniform(0.3, 1.2)
        self.charge_per_h = rng.uniform(30, 50)
        self.bedtime = rng.uniform(20.5, 23.5)
        self.wake = rng.uniform(6.0, 8.0)
        self.low_battery = rng.uniform(8, 20)
        self.topup_target = rng.uniform(70, 95)
        # Laptops live on mains; phones and tablets start the day unplugged.
        self.plugged = laptop or kind == "kiosk"
        self.topping_up = False
        self.unplugged_until = 0.0
        self.night = False
        self.cpu_base = BASE_CPU.get(kind, 10.0) * rng.uniform(0.7, 1.4)
        self.memory_mean = _clamp(BASE_MEMORY.get(kind, 50.0) + rng.gauss(0, 8), 20, 85)
        self.memory = self.memory_mean
        self.storage = rng.uniform(15, 70)
        self.storage_per_day = rng.uniform(0.05, 0.6)
        self.signal_base = (
            rng.uniform(-95, -65) if kind == "in_cell_phone" else rng.uniform(-75, -45)
        )

    # --- persistence across runs -------------------------------------------------------------

    def snapshot(self) -> dict[str, float]:
        """The slowly changing values worth carrying over to the next run."""
        return {"battery": round(self.battery, 3), "storage": round(self.storage, 3)}

    def restore(self, snapshot: dict[str, float]) -> None:
        if self.has_battery and "battery" in snapshot:
            self.battery = _clamp(float(snapshot["battery"]), 0, 100)
        if "storage" in snapshot:
            self.storage = _clamp(float(snapshot["storage"]), 1, 99.5)

    # --- evolution ---------------------------------------------------------------------------

    def step(self, now: float) -> dict[str, float]:
        """Advance to `now` (seconds since the epoch) and return the metrics to report."""
        if self._last is not None:
            remaining = _clamp(now - self._last, 0, MAX_GAP_S)
            t = now - remaining
            while remaining > 0:
                h = min(remaining, MAX_SUBSTEP_S)
                t += h
                self._advance(t, h)
                remaining -= h
        else:
            self.night = self._is_night(now)
            if self.night and self.kind in ("in_cell_phone", "tablet"):
                self.plugged = self.rng.random() < 0.9
        self._last = now
        return self._report(now)

    def _is_night(self, now: float) -> bool:
        return _in_window((now % DAY_S) / HOUR_S, self.bedtime, self.wake)

    def _advance(self, t: float, dt: float) -> None:
        if self.has_battery:
            if self.kind == "laptop":
                self._laptop_power(t, dt)
            else:
                self._handheld_power(t, dt)
        self._storage(dt)

    def _handheld_power(self, t: float, dt: float) -> None:
        night = self._is_night(t)
        if night and not self.night:
            self.plugged = self.rng.random() < 0.9  # most devices go on charge at bedtime
            self.topping_up = False
        elif self.night and not night:
            self.plugged = False
        self.night = night
        if not self.plugged and self.battery <= self.low_battery:
            self.plugged = self.topping_up = True
        if self.topping_up and self.battery >= self.topup_target:
            self.plugged = self.topping_up = False
        drain = self.night_drain_per_h if night else self.day_drain_per_h
        self._charge_or_drain(dt, drain)

    def _laptop_power(self, t: float, dt: float) -> None:
        hour = (t % DAY_S) / HOUR_S
        if self.plugged and 8 <= hour < 18 and self.rng.random() < 0.15 * dt / HOUR_S:
            # Carried to a meeting or round the wing for a while.
            self.plugged = False
            self.unplugged_until = t + self.rng.uniform(20, 120) * 60
        elif not self.plugged and (t >= self.unplugged_until or self.battery <= self.low_battery):
            self.plugged = True
        self._charge_or_drain(dt, self.day_drain_per_h)

    def _charge_or_drain(self, dt: float, drain_per_h: float) -> None:
        if self.plugged:
            taper = 1.0 if self.battery < 80 else 0.35  # charging slows near full
            self.battery = min(100.0, self.battery + self.charge_per_h * taper * dt / HOUR_S)
        else:
            self.battery = max(0.0, self.battery - drain_per_h * dt / HOUR_S)

    def _storage(self, dt: float) -> None:
        self.storage += self.storage_per_day * dt / DAY_S
        # Someone clears space now and then; much sooner once the device is nearly full.
        mean_days = 1.0 if self.storage > 92 else 25.0
        if self.rng.random() < 1 - math.exp(-dt / (mean_days * DAY_S)):
            self.storage -= self.rng.uniform(5, 25)
        self.storage = _clamp(self.storage, 1, 99.5)

    def _report(self, now: float) -> dict[str, float]:
        rng = self.rng
        quiet = 0.6 if self.night and self.kind != "laptop" else 1.0
        spike = rng.random() < 0.02
        cpu = rng.uniform(60, 98) if spike else self.cpu_base * quiet + rng.gauss(0, 2.5)
        cpu = _clamp(cpu, 0.5, 100)
        self.memory += (self.memory_mean - self.memory) * 0.1 + rng.gauss(0, 1.2)
        self.memory = _clamp(self.memory, 5, 97)
        memory = _clamp(self.memory + (8 if spike else 0), 5, 99)
        charging = self.has_battery and self.plugged
        temperature = BASE_TEMPERATURE.get(self.kind, 32.0) + 0.1 * cpu + rng.gauss(0, 0.5)
        if charging and self.battery < 100:
            temperature += 3
        metrics: dict[str, float] = {
            "cpu": round(cpu, 1),
            "memory": round(memory, 1),
            "storage": round(self.storage, 2),
            "temperature": round(_clamp(temperature, 10, 95), 1),
        }
        if self.has_battery:
            metrics["battery"] = round(self.battery, 1)
            metrics["charging"] = 1 if charging else 0
        rssi = self.signal_base + rng.gauss(0, 3)
        if self.kind == "in_cell_phone":
            metrics["signal_bars"] = int(_clamp((rssi + 115) / 10, 0, 5))
        else:
            metrics["wifi_rssi"] = round(_clamp(rssi, -95, -30))
        return metrics
