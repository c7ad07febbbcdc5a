"""The clock shown on fault pages reads the due times, not only the scheduled check's marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facilities.faults.models import Fault
from facilities.faults.pages_common import sla_state

REPORTED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _fault(**changes: object) -> Fault:
    fault = Fault(
        status="reported",
        reported_at=REPORTED,
        due_respond_at=REPORTED + timedelta(hours=4),
        due_clear_at=REPORTED + timedelta(days=1),
        paused_seconds=0,
    )
    for name, value in changes.items():
        setattr(fault, name, value)
    return fault


@pytest.mark.parametrize(
    ("hours_on", "changes", "shown"),
    [
        (1, {}, "On time"),
        (3.5, {}, "At risk"),  # 7/8 of the respond target gone, before any check marked it
        (5, {}, "Breached"),  # past respond-by, before any check marked it
        (5, {"responded_at": REPORTED + timedelta(hours=1)}, "On time"),  # clear-by now counts
        (30, {"responded_at": REPORTED + timedelta(hours=1)}, "Breached"),
        (30, {"status": "on_hold", "paused_since": REPORTED + timedelta(hours=1)}, "Clock paused"),
        (30, {"status": "cleared"}, "Clock stopped"),
        (1, {"breached_at": REPORTED}, "Breached"),  # a mark from the check always shows
    ],
)
def test_the_tag_follows_the_clock(hours_on: float, changes: dict[str, object], shown: str) -> None:
    now = REPORTED + timedelta(hours=hours_on)
    assert sla_state(_fault(**changes), now)["text"] == shown
