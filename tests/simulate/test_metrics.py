"""Simulated metrics: plausible ranges, daily cycles and reproducibility from a seed."""

from __future__ import annotations

import itertools

import pytest

from fleet.simulate.metrics import DAY_S, DeviceModel

MONDAY_MIDNIGHT = 1_736_121_600.0  # 2025-01-06 00:00 UTC
KINDS = ("in_cell_phone", "tablet", "laptop", "kiosk")


def run(model: DeviceModel, *, days: float, step_s: float) -> list[tuple[float, dict[str, float]]]:
    steps = int(days * DAY_S / step_s)
    return [
        (MONDAY_MIDNIGHT + i * step_s, model.step(MONDAY_MIDNIGHT + i * step_s))
        for i in range(steps)
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_metrics_stay_in_plausible_ranges_for_a_week(kind: str) -> None:
    for n in range(5):
        for _ts, m in run(DeviceModel(f"DEV-{n}", kind, seed=3), days=7, step_s=60):
            assert 0.5 <= m["cpu"] <= 100
            assert 5 <= m["memory"] <= 99
            assert 1 <= m["storage"] <= 99.5
            assert 10 <= m["temperature"] <= 95
            if kind == "kiosk":
                assert "battery" not in m
            else:
                assert 0 <= m["battery"] <= 100
                assert m["charging"] in (0, 1)
            if kind == "in_cell_phone":
                assert m["signal_bars"] in range(6)
            else:
                assert -95 <= m["wifi_rssi"] <= -30


def test_phones_drain_by_day_and_charge_overnight() -> None:
    series = run(DeviceModel("MDI-ICP-1", "in_cell_phone", seed=1), days=5, step_s=300)
    batteries = [m["battery"] for _ts, m in series]
    assert max(batteries) - min(batteries) > 20
    hour_of = [((ts % DAY_S) / 3600, m["charging"]) for ts, m in series]
    charging_at_3am = [c for h, c in hour_of if 3 <= h < 4]
    charging_at_3pm = [c for h, c in hour_of if 15 <= h < 16]
    assert sum(charging_at_3am) / len(charging_at_3am) > sum(charging_at_3pm) / len(charging_at_3pm)
    # Battery rises while charging and falls while not, step to step (below full).
    for (_t0, before), (_t1, after) in itertools.pairwise(series):
        if before["charging"] and after["charging"] and before["battery"] < 99:
            assert after["battery"] >= before["battery"]
        if not before["charging"] and not after["charging"]:
            assert after["battery"] <= before["battery"]


def test_laptops_are_mostly_on_mains() -> None:
    series = run(DeviceModel("MDI-LAP-1", "laptop", seed=1), days=7, step_s=300)
    on_mains = sum(m["charging"] for _ts, m in series) / len(series)
    assert on_mains > 0.75
    assert min(m["battery"] for _ts, m in series) > 20


def test_storage_creeps_up_and_is_sometimes_cleaned() -> None:
    cleaned = 0
    for n in range(20):
        series = run(DeviceModel(f"TAB-{n}", "tablet", seed=9), days=60, step_s=3600)
        storage = [m["storage"] for _ts, m in series]
        drops = [b - a for a, b in itertools.pairwise(storage) if b < a]
        rises = [b - a for a, b in itertools.pairwise(storage) if b > a]
        assert all(r < 0.1 for r in rises), "storage fills slowly"
        assert len(rises) > 10 * len(drops)
        cleaned += len(drops)
    assert cleaned > 0


def test_cpu_has_occasional_spikes() -> None:
    cpu = [m["cpu"] for _ts, m in run(DeviceModel("X", "tablet", seed=2), days=1, step_s=60)]
    spikes = [c for c in cpu if c >= 60]
    assert 0 < len(spikes) < len(cpu) * 0.1


def test_same_seed_same_series_and_another_seed_differs() -> None:
    first = run(DeviceModel("LEI-TAB-1", "tablet", seed=42), days=1, step_s=30)
    again = run(DeviceModel("LEI-TAB-1", "tablet", seed=42), days=1, step_s=30)
    other = run(DeviceModel("LEI-TAB-1", "tablet", seed=43), days=1, step_s=30)
    other_device = run(DeviceModel("LEI-TAB-2", "tablet", seed=42), days=1, step_s=30)
    assert first == again
    assert first != other
    assert first != other_device


def test_a_long_gap_is_integrated_through_the_night() -> None:
    model = DeviceModel("GAP", "in_cell_phone", seed=5)
    model.step(MONDAY_MIDNIGHT + 18 * 3600)
    model.battery = 20.0
    model.low_battery = 5.0
    after_night = model.step(MONDAY_MIDNIGHT + DAY_S + 5 * 3600)  # 05:00 the next day
    # One step across the evening, the bedtime plug-in and hours on charge.
    assert after_night["charging"] == 1
    assert after_night["battery"] > 90


def test_snapshot_carries_battery_and_storage_to_a_new_model() -> None:
    model = DeviceModel("SNAP", "in_cell_phone", seed=1)
    run(model, days=1, step_s=600)
    snap = model.snapshot()
    fresh = DeviceModel("SNAP", "in_cell_phone", seed=1)
    fresh.restore(snap)
    assert (fresh.battery, fresh.storage) == (snap["battery"], snap["storage"])
    fresh.restore({"battery": 250.0, "storage": -3.0})
    assert (fresh.battery, fresh.storage) == (100.0, 1.0)
