"""What the pages rely on in the API: assigning to a person, finding by assignee and by text."""

from __future__ import annotations

from fleet.auth.service import create_user
from fleet.db import transaction
from tests.estate.factories import Api
from tests.facilities.builders import move, report


def test_assigning_names_a_person_who_can_work_the_fault(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        create_user(session=session, username="mdi.fixer", role="facilities", prisons=["MDI"])
        create_user(session=session, username="lei.fixer", role="facilities", prisons=["LEI"])
        create_user(session=session, username="reader", role="viewer", prisons=[])
    fault = report(api).json()
    assert move(api, fault["id"], "triaged").status_code == 200
    for wrong in ("lei.fixer", "reader", "nobody"):
        refused = move(api, fault["id"], "assigned", assignee=wrong)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "assignee"
    too_long = move(api, fault["id"], "assigned", assignee="x" * 65)
    assert too_long.status_code == 422
    assert api.get(f"/api/v1/faults/{fault['id']}").json()["version"] == 2

    assigned = move(api, fault["id"], "assigned", assignee="MDI.Fixer")
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "mdi.fixer"
    assert assigned.json()["timeline"][-1]["detail"] == {"assignee": "mdi.fixer"}
    mine = api.get("/api/v1/faults", params={"assignee": "mdi.fixer"}).json()
    assert [f["reference"] for f in mine["items"]] == [fault["reference"]]
    assert api.get("/api/v1/faults", params={"assignee": "lei.fixer"}).json()["count"] == 0

    # Reopening sends it back to triage, where whoever takes it is decided again.
    for step, extra in (("in_progress", {}), ("cleared", {"resolution": "Rewired"})):
        assert move(api, fault["id"], step, **extra).status_code == 200
    reopened = move(api, fault["id"], "reopened", note="Bell silent again")
    assert reopened.json()["assignee"] is None


def test_without_a_name_the_person_assigning_takes_it(api: Api) -> None:
    fault = report(api).json()
    move(api, fault["id"], "triaged")
    taken = move(api, fault["id"], "assigned").json()
    assert taken["assignee"] == taken["timeline"][-1]["actor"]


def test_text_search_matches_reference_description_and_place(api: Api) -> None:
    bell = report(api).json()["reference"]
    tap = report(api, location="MDI-2-1-001", category="plumbing", description="Tap drips").json()
    found = {
        q: [f["reference"] for f in api.get("/api/v1/faults", params={"q": q}).json()["items"]]
        for q in ("drips", "mdi-2-1", bell.lower(), "100%_")
    }
    assert found == {"drips": [tap["reference"]], "mdi-2-1": [tap["reference"]],
                     bell.lower(): [bell], "100%_": []}  # fmt: skip
    garbage = api.get("/api/v1/faults", params={"q": "bell\x00"})
    assert garbage.status_code == 422
    assert api.get("/api/v1/faults", params={"q": "x" * 101}).status_code == 422
