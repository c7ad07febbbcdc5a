"""Facilities faults flagged as blocking rollout show on the prison plan while they are open."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.estate.factories import Api
from tests.facilities.builders import move, report
from tests.rollout.builders import programme_body


def _plan(api: Api) -> str:
    pid = api.post("/api/v1/programmes", json=programme_body()).json()["id"]
    for code in ("MDI", "LEI"):
        added = api.post(
            f"/api/v1/programmes/{pid}/prisons",
            json={"prison_code": code, "planned_go_live": "2026-07-31", "expected_devices": 10},
        )
        assert added.status_code == 201, added.text
    return f"/api/v1/programmes/{pid}/prisons"


def _fault_blockers(plan: dict[str, Any]) -> list[tuple[str, str]]:
    return [(b["reference"], b["title"]) for b in plan["blockers"] if b["kind"] == "fault"]


def test_an_open_blocking_fault_blocks_its_prison_until_cleared(api: Api) -> None:
    plans = _plan(api)
    blocking = report(
        api,
        category="network_point",
        priority="P2",
        description="No network on landing 1-1\nsecond line is not shown",
        blocks_rollout=True,
    ).json()
    report(api, description="Cell bell, not a rollout matter")
    report(api, location="LEI-1-1-001", blocks_rollout=True, description="LEI power")
    ref = blocking["reference"]

    plan = api.get(f"{plans}/MDI", role="viewer").json()
    assert _fault_blockers(plan) == [(f"fault:{ref}", f"fault {ref}: No network on landing 1-1")]
    assert f"blocker: fault {ref}: No network on landing 1-1" in plan["rag_reasons"]
    assert plan["rag"] in ("amber", "red")
    listed = {p["prison_code"]: p for p in api.get(plans).json()["items"]}
    assert [t for _, t in _fault_blockers(listed["LEI"])] == ["fault LEI-F-000001: LEI power"]
    rows = {r["prison_code"]: r for r in csv.DictReader(io.StringIO(api.get(f"{plans}.csv").text))}
    assert f"fault {ref}: No network on landing 1-1" in rows["MDI"]["blockers"].split("; ")
    lei_faults = [b for b in rows["LEI"]["blockers"].split("; ") if b.startswith("fault")]
    assert lei_faults == ["fault LEI-F-000001: LEI power"]
    assert f"blocker: fault {ref}: No network on landing 1-1" in rows["MDI"]["rag_reasons"]

    # On hold is still open: the fault keeps blocking.
    for step in ("triaged", "assigned"):
        assert move(api, blocking["id"], step).status_code == 200
    assert move(api, blocking["id"], "on_hold", reason="awaiting_parts").status_code == 200
    assert _fault_blockers(api.get(f"{plans}/MDI").json()) != []
    assert move(api, blocking["id"], "in_progress").status_code == 200
    cleared = move(api, blocking["id"], "cleared", resolution="New patch lead fitted")
    assert cleared.status_code == 200, cleared.text

    after = api.get(f"{plans}/MDI").json()
    assert _fault_blockers(after) == []
    assert not any(ref in reason for reason in after["rag_reasons"])
    # Reopening it makes it block again; cancelling it ends that for good.
    assert move(api, blocking["id"], "reopened", note="dropped again").status_code == 200
    assert [r for r, _ in _fault_blockers(api.get(f"{plans}/MDI").json())] == [f"fault:{ref}"]
    assert move(api, blocking["id"], "cancelled", note="raised twice").status_code == 200
    assert _fault_blockers(api.get(f"{plans}/MDI").json()) == []


def test_fault_blockers_follow_the_caseload(api: Api) -> None:
    plans = _plan(api)
    report(api, location="LEI-1-1-001", blocks_rollout=True, description="LEI power")
    mdi_only = api.get(plans, role="viewer", prisons=["MDI"]).json()["items"]
    assert [(p["prison_code"], _fault_blockers(p)) for p in mdi_only] == [("MDI", [])]
    assert api.get(f"{plans}/LEI", role="viewer", prisons=["MDI"]).status_code == 404
