"""The device list counts its matches up to a cap and says when there are more."""

from __future__ import annotations

from sqlalchemy import insert

from fleet.api.pagination import COUNT_CAP
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device
from fleet.devices.search import DeviceFilters, list_devices
from tests.estate.factories import add_device, api_for, seed_locations


def _bulk_registered(ctx: Context, how_many: int) -> None:
    """`how_many` MDI tablets registered but never heard from, in one statement."""
    rows = [
        {
            "id": f"MDI-TB-{n:06d}",
            "serial": f"BULK{n:06d}",
            "kind": "tablet",
            "prison_code": "MDI",
            "lifecycle": "registered",
        }
        for n in range(1, how_many + 1)
    ]
    with transaction(ctx.sessions) as session:
        session.execute(insert(Device), rows)


def test_a_result_past_the_cap_is_counted_to_the_cap_and_flagged(pg_context: Context) -> None:
    seed_locations(pg_context)
    _bulk_registered(pg_context, COUNT_CAP + 1)
    with transaction(pg_context.sessions) as session:
        critical = [
            add_device(session, prison="LEI", location=f"LEI-1-1-00{n}", online=True,
                       health="critical").id
            for n in (1, 2)
        ]  # fmt: skip

    with api_for(pg_context) as api:
        many = api.get("/api/v1/devices?online=false&limit=25").json()
        assert (many["count"], many["count_capped"]) == (COUNT_CAP, True)
        assert [d["id"] for d in many["items"]] == [f"MDI-TB-{n:06d}" for n in range(1, 26)]
        assert many["next_cursor"]

        few = api.get("/api/v1/devices?health=critical&sort=-last_seen").json()
        assert (few["count"], few["count_capped"]) == (2, False)
        assert sorted(d["id"] for d in few["items"]) == sorted(critical)

        # A caseload of LEI alone counts its own two exactly, though MDI holds thousands.
        mine = api.get("/api/v1/devices", role="viewer", prisons=["LEI"]).json()
        assert (mine["count"], mine["count_capped"]) == (2, False)


def test_the_count_is_exact_up_to_the_cap_and_without_one(pg_context: Context) -> None:
    seed_locations(pg_context)
    _bulk_registered(pg_context, 4)
    tablets = DeviceFilters(kind="tablet")
    with transaction(pg_context.sessions) as session:
        at_cap = list_devices(session=session, scope=None, filters=tablets, limit=2, count_cap=4)
        past = list_devices(session=session, scope=None, filters=tablets, limit=2, count_cap=3)
        exact = list_devices(session=session, scope=None, filters=tablets, limit=2)
        none = list_devices(
            session=session, scope=None, filters=DeviceFilters(kind="laptop"), count_cap=3
        )
    assert (at_cap.count, at_cap.capped) == (4, False)
    assert (past.count, past.capped) == (3, True)
    assert (exact.count, exact.capped) == (4, False)
    assert (none.count, none.capped, none.rows) == (0, False, [])
    first_two = ["MDI-TB-000001", "MDI-TB-000002"]
    assert [r.id for r in at_cap.rows] == [r.id for r in past.rows] == first_two
