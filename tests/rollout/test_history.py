"""Daily snapshots through the Celery task, the burn-up, changes since a day and the CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction
from fleet.rollout.burnup_cache import RecentBurnups
from fleet.rollout.history import burnup
from fleet.rollout.models import PlanSnapshot, PrisonPlan, Programme
from fleet.rollout.tasks import SNAPSHOT_DAILY, beat_schedule, snapshot_daily
from fleet.tasks.app import make_celery
from tests.estate.factories import Api
from tests.rollout.builders import TODAY, add_devices, make_plan, set_online, snapshot

LATE_TEMPLATE = [{"key": "devices_enrolled", "name": "Devices enrolled", "offset_days": 0}]


def test_the_daily_task_keeps_one_snapshot_per_plan_per_day(pg_context: Context) -> None:
    plan_id = make_plan(pg_context, expected=4)
    add_devices(pg_context, "MDI", 2)
    app = make_celery(pg_context.settings)
    task = app.task(name=SNAPSHOT_DAILY, bind=True)(snapshot_daily)
    try:
        assert task.delay(day=TODAY.isoformat()).get(timeout=10) == 1
        add_devices(pg_context, "MDI", 1)
        set_online(pg_context, "MDI", 1)
        assert task.delay(day=TODAY.isoformat()).get(timeout=10) == 1
        assert task.delay(day=(TODAY - timedelta(days=1)).isoformat()).get(timeout=10) == 1
    finally:
        app.close_context()
    with transaction(pg_context.sessions) as session:
        rows = list(session.scalars(select(PlanSnapshot).order_by(PlanSnapshot.day)))
        assert session.scalar(select(func.count()).select_from(PlanSnapshot)) == 2
    assert [(r.plan_id, r.day) for r in rows] == [
        (plan_id, TODAY - timedelta(days=1)),
        (plan_id, TODAY),
    ]
    # The second run of the day replaced the first run's figures.
    assert (rows[1].expected, rows[1].enrolled, rows[1].online) == (4, 3, 1)


def test_the_snapshot_is_scheduled_daily() -> None:
    entry = beat_schedule()[SNAPSHOT_DAILY]
    assert entry["task"] == SNAPSHOT_DAILY
    assert entry["schedule"].hour == {23}
    assert entry["schedule"].minute == {50}


def _history(api: Api) -> int:
    """MDI plan (live from day -1) and LEI plan; five days of snapshots ending today."""
    ctx = api.ctx
    make_plan(
        ctx,
        prison="MDI",
        planned=TODAY - timedelta(days=2),
        expected=4,
        start_date="2026-06-26",
        gate_days=3,
        milestone_template=LATE_TEMPLATE,
    )
    make_plan(ctx, prison="LEI", planned=TODAY + timedelta(days=10), expected=2)
    add_devices(ctx, "MDI", 4)
    for back in range(4, -1, -1):
        if back == 1:
            add_devices(ctx, "LEI", 1)
        snapshot(ctx, TODAY - timedelta(days=back))
    pid = api.get("/api/v1/programmes").json()["items"][0]["id"]
    return int(pid)


def test_burnup_counts_prisons_live_against_plan_and_devices(api: Api) -> None:
    pid = _history(api)
    days = api.get(f"/api/v1/programmes/{pid}/burnup", params={"until": TODAY.isoformat()}).json()[
        "days"
    ]
    assert [
        (
            d["day"],
            d["prisons_live"],
            d["prisons_planned_live"],
            d["devices_enrolled"],
            d["devices_expected"],
        )
        for d in days
    ] == [
        ("2026-06-26", 0, 0, 4, 6),
        ("2026-06-27", 0, 0, 4, 6),
        ("2026-06-28", 1, 1, 4, 6),
        ("2026-06-29", 1, 1, 5, 6),
        ("2026-06-30", 1, 1, 5, 6),
    ]
    caseload = api.get(
        f"/api/v1/programmes/{pid}/burnup",
        role="viewer",
        prisons=["LEI"],
        params={"until": TODAY.isoformat()},
    ).json()["days"]
    assert [(d["prisons_live"], d["devices_enrolled"]) for d in caseload][-1] == (0, 1)


def test_changes_since_a_week_compare_snapshots_per_plan(api: Api) -> None:
    pid = _history(api)
    response = api.get(
        f"/api/v1/programmes/{pid}/changes", params={"since": "2d", "as_of": TODAY.isoformat()}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["since"] == "2026-06-28"
    changes = {c["prison_code"]: c for c in body["items"]}
    assert changes["LEI"]["enrolled_then"] == 0
    assert changes["LEI"]["enrolled_now"] == 1
    assert changes["MDI"]["live_then"] is True
    assert changes["MDI"]["live_now"] is True
    assert changes["MDI"]["milestones_completed"] == []
    bad = api.get(f"/api/v1/programmes/{pid}/changes", params={"since": "last week"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.since"


def test_plan_shows_daily_online_share_and_the_csv_matches(api: Api) -> None:
    pid = _history(api)
    plan = api.get(
        f"/api/v1/programmes/{pid}/prisons/MDI", params={"as_of": TODAY.isoformat()}
    ).json()
    shares = plan["progress"]["online_last_7_days"]
    assert [s["online_pct"] for s in shares] == [None, None, 100.0, 100.0, 100.0, 100.0, 100.0]
    assert len(plan["progress"]["online_last_14_days"]) == 14
    assert plan["gate"] == {
        "live": True,
        "qualifying_days": 3,
        "required_days": 3,
        "online_pct": 95.0,
    }
    response = api.get(f"/api/v1/programmes/{pid}/prisons.csv", params={"as_of": TODAY.isoformat()})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["prison_code"], r["live"], r["expected"], r["enrolled"]) for r in rows] == [
        ("LEI", "no", "2", "1"),
        ("MDI", "yes", "4", "4"),
    ]
    assert rows[1]["rag"] == "green"
    assert rows[0]["planned_go_live"] == (TODAY + timedelta(days=10)).isoformat()
    assert date.fromisoformat(rows[0]["next_milestone_due"]) == TODAY + timedelta(days=10)
    assert rows[0]["next_milestone"] == "Devices enrolled"
    # MDI's only milestone was completed by measurement, so nothing is next.
    assert rows[1]["next_milestone"] == ""


def test_names_people_typed_reach_the_csv_as_text_never_as_formulas(api: Api) -> None:
    formula = '=HYPERLINK("http://example.invalid","open")'
    make_plan(
        api.ctx,
        planned=TODAY + timedelta(days=10),
        milestone_template=[{"key": "go_live", "name": formula, "offset_days": 0}],
    )
    pid = api.get("/api/v1/programmes").json()["items"][0]["id"]
    response = api.get(f"/api/v1/programmes/{pid}/prisons.csv", params={"as_of": TODAY.isoformat()})
    assert response.status_code == 200
    (row,) = csv.DictReader(io.StringIO(response.text))
    assert row["next_milestone"] == "'" + formula
    assert row["prison_code"] == "MDI"


def test_the_overview_burnup_is_reused_until_a_snapshot_or_plan_behind_it_changes(
    pg_context: Context,
) -> None:
    plan_id = make_plan(pg_context, planned=TODAY + timedelta(days=5), expected=4)
    add_devices(pg_context, "MDI", 2)
    snapshot(pg_context, TODAY - timedelta(days=1))
    cache = RecentBurnups()

    def recent() -> tuple[list[object], list[object]]:
        with transaction(pg_context.sessions) as session:
            programme = session.scalars(select(Programme)).one()
            plans = list(session.scalars(select(PrisonPlan)))
            args = {"session": session, "programme": programme, "plans": plans, "until": TODAY}
            return cache.get(**args, days=30), burnup(**args, days=30)  # type: ignore[arg-type]

    first, fresh = recent()
    assert first == fresh
    assert recent()[0] == first
    add_devices(pg_context, "MDI", 1)
    snapshot(pg_context, TODAY)  # a new day's row
    second, fresh = recent()
    assert second == fresh
    assert second[-1].devices_enrolled == 3
    add_devices(pg_context, "MDI", 1)
    snapshot(pg_context, TODAY)  # the same day taken again: replaced, not added
    third, fresh = recent()
    assert third == fresh
    assert third[-1].devices_enrolled == 4
    with transaction(pg_context.sessions) as session:
        plan = session.get(PrisonPlan, plan_id)
        assert plan is not None
        plan.planned_go_live = TODAY - timedelta(days=3)
    moved, fresh = recent()
    assert moved == fresh
    assert moved[-1].prisons_planned_live == 1
    assert third[-1].prisons_planned_live == 0
