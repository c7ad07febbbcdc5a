"""When quiet windows are on, in UK time across midnight, weekdays and the clock change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet.alerts.models import QuietWindow
from fleet.alerts.quiet import active_until, label, schedule_text


def _night(days: list[int] | None = None) -> QuietWindow:
    return QuietWindow(
        prison_code="MDI",
        kind="scheduled",
        reason="night power-down",
        rule_kinds=["offline"],
        days=days or [],
        start_time="22:00",
        end_time="06:30",
    )


def test_a_night_window_runs_past_midnight_in_uk_time() -> None:
    night = _night()
    # 2026-07-15 is in British Summer Time: 22:00 UK is 21:00 UTC.
    assert active_until(night, datetime(2026, 7, 15, 20, 59, tzinfo=UTC)) == (False, None)
    on, until = active_until(night, datetime(2026, 7, 15, 21, 0, tzinfo=UTC))
    assert on
    assert until == datetime(2026, 7, 16, 5, 30, tzinfo=UTC)
    assert active_until(night, datetime(2026, 7, 16, 5, 29, tzinfo=UTC))[0]
    assert active_until(night, datetime(2026, 7, 16, 5, 30, tzinfo=UTC)) == (False, None)
    assert label(night, until, datetime(2026, 7, 16, 1, 0, tzinfo=UTC)) == (
        "Quiet: night power-down until 06:30"
    )


def test_the_night_the_clocks_go_back_ends_at_0630_local_time() -> None:
    # 25 October 2026: clocks go back at 02:00 BST, so 06:30 local is 06:30 UTC.
    on, until = active_until(_night(), datetime(2026, 10, 25, 3, 0, tzinfo=UTC))
    assert on
    assert until == datetime(2026, 10, 25, 6, 30, tzinfo=UTC)


def test_weekday_windows_start_only_on_their_days_and_finish_the_next_morning() -> None:
    weeknights = _night(days=[0, 1, 2, 3, 4])  # starts Monday to Friday evenings
    friday_night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    saturday_morning = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
    saturday_night = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert active_until(weeknights, friday_night)[0]
    assert active_until(weeknights, saturday_morning)[0], "Friday's window runs into Saturday"
    assert not active_until(weeknights, saturday_night)[0]
    assert schedule_text(weeknights) == "Mon, Tue, Wed, Thu, Fri, 22:00 to 06:30 (UK time)"


def test_ad_hoc_windows_hold_from_start_to_end_or_until_ended() -> None:
    start = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    search = QuietWindow(
        prison_code="MDI",
        kind="ad_hoc",
        reason="cell search",
        rule_kinds=[],
        days=[],
        starts_at=start,
        ends_at=start + timedelta(hours=2),
    )
    assert active_until(search, start - timedelta(seconds=1)) == (False, start + timedelta(hours=2))
    assert active_until(search, start)[0]
    assert not active_until(search, start + timedelta(hours=2))[0]
    lockdown = QuietWindow(
        prison_code="MDI",
        kind="ad_hoc",
        reason="lockdown",
        rule_kinds=[],
        days=[],
        starts_at=start,
        ends_at=None,
    )
    assert active_until(lockdown, start + timedelta(days=3)) == (True, None)
    lockdown.archived_at = start + timedelta(days=1)
    assert not active_until(lockdown, start + timedelta(days=3))[0]
