"""How targets split into a canary and waves, and when a rollout pauses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleet.jobs.schemas import Rollout
from fleet.jobs.staging import over_threshold, plan_stages
from fleet.jobs.targets import Target


def _targets(**per_prison: int) -> list[Target]:
    return [
        Target(f"{code}-{n:03d}", code, "tablet", None)
        for code, count in per_prison.items()
        for n in range(count)
    ]


def test_the_canary_is_spread_over_prisons_and_waves_are_cumulative() -> None:
    stages = plan_stages(
        _targets(MDI=6, LEI=3, BWI=1), Rollout(canary=3, wave_percent=[25, 50, 100])
    )

    assert [s.label for s in stages] == [
        "Canary (3 devices)",
        "Wave 1 (to 25%) (2 devices)",
        "Wave 2 (to 50%) (2 devices)",
        "Wave 3 (to 100%) (3 devices)",
    ]
    assert stages[0].device_ids == ["BWI-000", "LEI-000", "MDI-000"]
    every = [d for s in stages for d in s.device_ids]
    assert sorted(every) == sorted(t.device_id for t in _targets(MDI=6, LEI=3, BWI=1))
    assert len(every) == len(set(every))


def test_waves_by_prison_follow_the_canary() -> None:
    stages = plan_stages(_targets(MDI=2, LEI=2), Rollout(canary=1, waves="prison"))

    assert [s.label for s in stages] == [
        "Canary (1 devices)",
        "Prison LEI (1 devices)",
        "Prison MDI (2 devices)",
    ]


def test_no_rollout_is_one_stage_and_a_small_job_skips_empty_waves() -> None:
    assert [s.label for s in plan_stages(_targets(MDI=3), Rollout())] == ["All devices (3 devices)"]
    tiny = plan_stages(_targets(MDI=1), Rollout(wave_percent=[10, 50, 100]))
    assert [len(s.device_ids) for s in tiny] == [1]
    assert plan_stages(_targets(MDI=2), Rollout(canary=5))[0].device_ids == ["MDI-000", "MDI-001"]


@pytest.mark.parametrize("steps", [[50, 40], [10, 10, 100], [0, 100], [50], [120]])
def test_wave_percentages_must_rise_to_100(steps: list[int]) -> None:
    with pytest.raises(ValidationError, match="must rise strictly"):
        Rollout(wave_percent=steps)


@pytest.mark.parametrize(
    ("failed", "finished", "threshold", "pauses"),
    [(0, 0, 0, False), (1, 10, 10, False), (2, 10, 10, True), (5, 5, 100, False), (1, 1, 0, True)],
)
def test_pause_only_above_the_threshold(
    failed: int, finished: int, threshold: float, pauses: bool
) -> None:
    assert over_threshold(failed=failed, finished=finished, threshold_pct=threshold) is pauses
