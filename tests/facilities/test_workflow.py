"""The fault workflow through the API, and the clock that pauses on some holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from facilities.faults import lifecycle, queries, service
from fleet.audit.models import AuditEvent
from fleet.context import Context
from fleet.db import transaction
from tests.estate.factories import Api
from tests.facilities.builders import move, report


def test_every_legal_move_is_recorded_in_the_timeline_and_audit(api: Api) -> None:
    fault = report(api).json()
    fid = fault["id"]
    steps = [
        ("triaged", {}),
        ("assigned", {"note": "Works team A"}),
        ("on_hold", {"reason": "contractor_scheduled"}),
        ("assigned", {}),
        ("in_progress", {}),
        ("on_hold", {"reason": "awaiting_parts", "note": "Bell unit on order"}),
        ("in_progress", {}),
        ("cleared", {"resolution": "Replaced the bell unit"}),
        ("reopened", {"note": "Bell failed again overnight"}),
        ("assigned", {}),
        ("in_progress", {}),
        ("cleared", {"resolution": "Rewired the bell circuit"}),
        ("closed", {"note": "Verified with the wing officer"}),
    ]
    for to, extra in steps:
        response = move(api, fid, to, **extra)
        assert response.status_code == 200, (to, response.text)
    detail = api.get(f"/api/v1/faults/{fid}").json()
    assert detail["status"] == "closed"
    assert detail["next"] == []
    assert detail["resolution"] == "Rewired the bell circuit"
    actions = [e["action"] for e in detail["timeline"]]
    assert actions == ["reported", *[to for to, _ in steps]]
    reopened = detail["timeline"][9]
    assert (reopened["from_status"], reopened["to_status"]) == ("cleared", "triaged")
    assert reopened["note"] == "Bell failed again overnight"
    assert detail["timeline"][6]["detail"] == {"reason": "awaiting_parts"}
    assert all(e["actor"].startswith("user") for e in detail["timeline"])
    with transaction(api.ctx.sessions) as session:
        audited = session.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == fault["reference"])
        ).all()
    assert len(audited) == len(steps) + 1
    assert "fault.reopened" in audited


def test_cancelling_needs_a_note_and_is_final(api: Api) -> None:
    fid = report(api).json()["id"]
    refused = move(api, fid, "cancelled")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "note"
    assert move(api, fid, "cancelled", note="Logged twice").status_code == 200
    final = move(api, fid, "triaged")
    assert final.status_code == 409
    assert final.json()["allowed"] == []


def test_illegal_moves_answer_409_with_the_allowed_next_states(api: Api) -> None:
    fid = report(api).json()["id"]
    for to in ("closed", "cleared", "in_progress", "reopened"):
        response = move(api, fid, to)
        assert response.status_code == 409, to
        body = response.json()
        assert body["status"] == "reported"
        assert body["allowed"] == ["triaged", "cancelled"]
        assert "cannot move" in body["detail"]
    move(api, fid, "triaged")
    move(api, fid, "assigned")
    move(api, fid, "in_progress")
    assert move(api, fid, "closed").json()["allowed"] == ["on_hold", "cleared", "cancelled"]
    unchanged = api.get(f"/api/v1/faults/{fid}").json()
    assert unchanged["status"] == "in_progress"
    assert len(unchanged["timeline"]) == 4


def test_moves_that_lack_what_they_need_or_are_stale_change_nothing(api: Api) -> None:
    fault = report(api).json()
    fid = fault["id"]
    for to in ("triaged", "assigned", "in_progress"):
        move(api, fid, to)
    no_reason = move(api, fid, "on_hold")
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"
    bad_reason = move(api, fid, "on_hold", reason="lunch")
    assert bad_reason.json()["errors"][0]["field"] == "reason"
    no_resolution = move(api, fid, "cleared", resolution="  ")
    assert no_resolution.json()["errors"][0]["field"] == "resolution"
    long_note = move(api, fid, "cleared", resolution="done", note="x" * 2001)
    assert long_note.json()["errors"][0]["field"] == "note"
    stale = move(api, fid, "cleared", resolution="done", version=1)
    assert stale.status_code == 409
    assert "changed since you loaded it" in stale.json()["detail"]
    assert stale.json()["allowed"] == ["on_hold", "cleared", "cancelled"]
    current = api.get(f"/api/v1/faults/{fid}").json()
    assert current["status"] == "in_progress"
    assert current["version"] == 4
    assert move(api, fid, "cleared", resolution="done", version=4).status_code == 200


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_pausing_hold_extends_due_times_and_a_contractor_hold_does_not(
    fault_context: Context,
) -> None:
    with transaction(fault_context.sessions) as session:
        fault = service.report_fault(
            session=session,
            actor="tester",
            location_path="MDI-1-1-001",
            category="heating",
            priority="P2",
            description="Radiator cold",
            now=T0,
        )
        due_respond, due_clear = fault.due_respond_at, fault.due_clear_at
        for to, minutes in (("triaged", 10), ("assigned", 20), ("in_progress", 30)):
            lifecycle.transition(
                session=session, actor="t", fault=fault, to=to, now=T0 + timedelta(minutes=minutes)
            )
        lifecycle.transition(
            session=session,
            actor="t",
            fault=fault,
            to="on_hold",
            reason="awaiting_parts",
            now=T0 + timedelta(hours=1),
        )
        assert fault.paused_since == T0 + timedelta(hours=1)
        lifecycle.transition(
            session=session, actor="t", fault=fault, to="in_progress", now=T0 + timedelta(hours=4)
        )
        assert fault.paused_since is None
        assert fault.due_clear_at == due_clear + timedelta(hours=3)
        assert fault.due_respond_at == due_respond + timedelta(hours=3)
        lifecycle.transition(
            session=session,
            actor="t",
            fault=fault,
            to="on_hold",
            reason="contractor_scheduled",
            now=T0 + timedelta(hours=5),
        )
        assert fault.paused_since is None
        lifecycle.transition(
            session=session, actor="t", fault=fault, to="in_progress", now=T0 + timedelta(hours=9)
        )
        assert fault.due_clear_at == due_clear + timedelta(hours=3)
        events = queries.timeline(session=session, fault=fault)
        assert events[5].detail["paused_seconds"] == 3 * 3600
