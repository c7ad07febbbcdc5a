"""The health level people see for a device, from its latest metrics."""

from __future__ import annotations

import pytest

from fleet.ingest.health import assess


@pytest.mark.parametrize(
    ("metrics", "level"),
    [
        ({}, "unknown"),
        ({"uptime": 3600}, "ok"),
        ({"battery": 55, "storage": 40, "cpu": 30}, "ok"),
        ({"battery": 19.5}, "warning"),
        ({"battery": 9}, "critical"),
        ({"disk": 90}, "warning"),
        ({"storage": 96, "battery": 15}, "critical"),
        ({"mem": 98}, "critical"),
        ({"temperature": 75, "battery": 80}, "warning"),
    ],
)
def test_worst_metric_decides(metrics: dict[str, float], level: str) -> None:
    assert assess(metrics) == level
