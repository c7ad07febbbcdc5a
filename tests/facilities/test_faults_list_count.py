"""The fault list counts its matches up to a cap and says when there are more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from facilities.faults.models import Fault
from facilities.faults.queries import FaultFilters, list_faults
from facilities.faults.service import reference
from fleet.api.pagination import COUNT_CAP
from fleet.context import Context
from fleet.db import transaction
from fleet.estate.service import location_by_path
from tests.estate.factories import Api

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _bulk_faults(ctx: Context, prison: str, cell: str, priority: str, how_many: int) -> None:
    """`how_many` open faults in one cell, one minute apart, written in one statement."""
    with transaction(ctx.sessions) as session:
        place = location_by_path(session=session, path=cell)
        assert place is not None
        rows = [
            {
                "reference": reference(prison, n),
                "prison_code": prison,
                "number": n,
                "location_id": place.id,
                "category": "plumbing",
                "priority": priority,
                "status": "reported",
                "description": "Tap will not turn off",
                "reporter": "officer",
                "reported_at": START + timedelta(minutes=n),
                "due_respond_at": START + timedelta(minutes=n, hours=4),
                "due_clear_at": START + timedelta(minutes=n, days=5),
            }
            for n in range(1, how_many + 1)
        ]
        session.execute(insert(Fault), rows)


def test_a_result_past_the_cap_is_counted_to_the_cap_and_flagged(
    api: Api, fault_context: Context
) -> None:
    _bulk_faults(fault_context, "MDI", "MDI-1-1-001", "P2", COUNT_CAP + 1)
    _bulk_faults(fault_context, "LEI", "LEI-1-1-001", "P1", 3)

    many = api.get("/api/v1/faults?priority=P2&sort=due_clear_at&limit=20").json()
    assert (many["count"], many["count_capped"]) == (COUNT_CAP, True)
    assert [f["reference"] for f in many["items"]] == [reference("MDI", n) for n in range(1, 21)]
    following = api.get(f"/api/v1/faults?priority=P2&sort=due_clear_at&limit=20"
                        f"&cursor={many['next_cursor']}").json()  # fmt: skip
    assert following["items"][0]["reference"] == reference("MDI", 21)
    assert (following["count"], following["count_capped"]) == (COUNT_CAP, True)

    few = api.get("/api/v1/faults?priority=P1").json()
    assert (few["count"], few["count_capped"]) == (3, False)
    assert {f["reference"] for f in few["items"]} == {reference("LEI", n) for n in (1, 2, 3)}

    # A caseload of LEI alone sees only its three, exactly, though MDI holds thousands.
    mine = api.get("/api/v1/faults", role="viewer", prisons=["LEI"]).json()
    assert (mine["count"], mine["count_capped"]) == (3, False)


def test_the_count_is_exact_up_to_the_cap_and_without_one(fault_context: Context) -> None:
    _bulk_faults(fault_context, "LEI", "LEI-1-1-002", "P3", 4)
    lei = FaultFilters(prisons=("LEI",))
    with transaction(fault_context.sessions) as session:
        at_cap = list_faults(session=session, scope=None, filters=lei, limit=2, count_cap=4)
        past_cap = list_faults(session=session, scope=None, filters=lei, limit=2, count_cap=3)
        exact = list_faults(session=session, scope=None, filters=lei, limit=2)
        nothing = list_faults(
            session=session, scope=None, filters=FaultFilters(prisons=("MDI",)), count_cap=3
        )
    assert (at_cap.count, at_cap.capped) == (4, False)
    assert (past_cap.count, past_cap.capped) == (3, True)
    assert (exact.count, exact.capped) == (4, False)
    assert (nothing.count, nothing.capped, nothing.faults) == (0, False, [])
    # The page itself is the same whatever the count did.
    assert (
        [f.id for f in at_cap.faults]
        == [f.id for f in past_cap.faults]
        == [f.id for f in exact.faults]
    )
