"""The estate overview's counts are shared between requests for a few seconds, then retaken."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fleet.context import Context
from fleet.db import transaction
from fleet.estate.cache import SharedByDatabase, all_prison_counts
from fleet.estate.service import PrisonCounts
from tests.estate.factories import Api, add_device, seed_locations


def test_counts_are_reused_within_the_ttl_and_retaken_after(pg_context: Context) -> None:
    seed_locations(pg_context)
    now = [100.0]
    taken: list[int] = []

    def counting(session: Session) -> dict[str, PrisonCounts]:
        taken.append(1)
        return all_prison_counts(session)

    shared = SharedByDatabase(counting, ttl_s=3.0, clock=lambda: now[0])
    with transaction(pg_context.sessions) as session:
        first = shared.get(session)
        add_device(session, prison="MDI", location="MDI-1-1-001", online=True)
    with transaction(pg_context.sessions) as session:
        now[0] += 2.9
        assert shared.get(session) is first  # within the TTL: the same counts, not retaken
        now[0] += 0.1
        again = shared.get(session)
    assert len(taken) == 2
    assert first.value["MDI"].devices_enrolled == 0
    assert again.value["MDI"].devices_enrolled == 1
    assert again.as_of >= first.as_of


def test_overview_says_when_its_counts_were_taken(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        add_device(session, prison="LEI", location="LEI-1-1-001", online=True, health="ok")

    body = api.get("/api/v1/prisons", role="viewer", prisons=["LEI"]).json()

    assert [p["code"] for p in body["items"]] == ["LEI"]
    assert body["items"][0]["counts"]["devices_healthy"] == 1
    assert body["counts_as_of"].endswith(("Z", "+00:00"))
    # Prisons with nothing in them still list, with zero counts.
    everything = api.get("/api/v1/prisons").json()
    empty = next(p for p in everything["items"] if p["code"] == "BMI")
    assert set(empty["counts"].values()) == {0}
