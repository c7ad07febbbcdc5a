"""SLA marking with a controlled clock, and the beat task's notifications.

Contract tests: a real SMTP exchange and a real HTTP POST reach local recorders standing in for
the mail relay and a Teams-style webhook, which cannot run here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from facilities.faults import lifecycle, notify, service, sla
from facilities.faults.models import Fault
from facilities.faults.tasks import CHECK_INTERVAL, CHECK_SLA, register
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.tasks.app import make_celery
from tests.estate.factories import Api
from tests.facilities.recorders import smtp_recorder, webhook_recorder

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _fault(session: Session, when: datetime, location: str = "MDI-1-1-001") -> Fault:
    """A P1 cell-bell fault: respond within 1 hour, clear within 4."""
    return service.report_fault(
        session=session,
        actor="tester",
        location_path=location,
        category="door_lock_cell_bell",
        priority="P1",
        description="Cell bell silent",
        now=when,
    )


def test_at_risk_then_breached_each_marked_once(fault_context: Context) -> None:
    with transaction(fault_context.sessions) as session:
        fault = _fault(session, T0)
        assert sla.check(session=session, now=T0 + timedelta(minutes=30)) == []
        risk = sla.check(session=session, now=T0 + timedelta(minutes=46))
        assert [(c.reference, c.kind) for c in risk] == [("MDI-F-000001", "at_risk")]
        assert sla.check(session=session, now=T0 + timedelta(minutes=50)) == []
        breach = sla.check(session=session, now=T0 + timedelta(minutes=61))
        assert [c.kind for c in breach] == ["breached"]
        assert breach[0].due == T0 + timedelta(hours=1)
        assert sla.check(session=session, now=T0 + timedelta(hours=9)) == []
        assert fault.at_risk_at == T0 + timedelta(minutes=46)
        assert fault.breached_at == T0 + timedelta(minutes=61)


def test_respond_in_time_then_the_clear_target_counts(fault_context: Context) -> None:
    with transaction(fault_context.sessions) as session:
        fault = _fault(session, T0)
        lifecycle.transition(
            session=session, actor="t", fault=fault, to="triaged", now=T0 + timedelta(minutes=20)
        )
        assert sla.check(session=session, now=T0 + timedelta(hours=2)) == []
        late = sla.check(session=session, now=T0 + timedelta(hours=4, minutes=1))
        assert [(c.kind, c.due) for c in late] == [("breached", T0 + timedelta(hours=4))]


def test_a_paused_fault_neither_risks_nor_breaches(fault_context: Context) -> None:
    with transaction(fault_context.sessions) as session:
        fault = _fault(session, T0)
        for to, minutes in (("triaged", 5), ("assigned", 6)):
            lifecycle.transition(
                session=session, actor="t", fault=fault, to=to, now=T0 + timedelta(minutes=minutes)
            )
        lifecycle.transition(
            session=session,
            actor="t",
            fault=fault,
            to="on_hold",
            reason="awaiting_access",
            now=T0 + timedelta(minutes=10),
        )
        assert sla.check(session=session, now=T0 + timedelta(hours=8)) == []
        lifecycle.transition(
            session=session, actor="t", fault=fault, to="in_progress", now=T0 + timedelta(hours=8)
        )
        # 10 minutes used before the hold, so 3 h 50 min of the 4 hours remain.
        assert fault.due_clear_at == T0 + timedelta(hours=11, minutes=50)
        assert sla.check(session=session, now=T0 + timedelta(hours=9)) == []


def test_beat_task_marks_and_notifies_by_email_and_webhook_once(fault_context: Context) -> None:
    now = utcnow()
    with transaction(fault_context.sessions) as session:
        risky = _fault(session, now - timedelta(minutes=50)).reference
        late = _fault(session, now - timedelta(hours=2), "MDI-1-1-002").reference
        _fault(session, now - timedelta(minutes=5), "MDI-1-1-003")
        _fault(session, now - timedelta(hours=2), "LEI-1-1-001")  # LEI has no route set
    with smtp_recorder() as (smtp_url, mailbox), webhook_recorder() as (hook_url, calls):
        with transaction(fault_context.sessions) as session:
            notify.set_route(
                session=session,
                actor="admin",
                prison_code="MDI",
                email_to="facilities@mdi.example",
                webhook_url=hook_url,
            )
        settings = fault_context.settings.model_copy(update={"smtp_url": smtp_url})
        app = make_celery(settings)
        register(app)
        try:
            assert app.tasks[CHECK_SLA].delay().get(timeout=30) == 3
            assert app.tasks[CHECK_SLA].delay().get(timeout=30) == 0
        finally:
            app.close_context()
    assert app.conf.beat_schedule[CHECK_SLA]["schedule"] == CHECK_INTERVAL
    assert sorted(m["to"][0] for m in mailbox.messages) == ["facilities@mdi.example"] * 2
    subjects = sorted(
        line for m in mailbox.messages for line in m["data"].splitlines() if "Subject" in line
    )
    assert subjects == [f"Subject: [at risk] {risky}", f"Subject: [breached] {late}"]
    assert {c["path"] for c in calls} == {"/teams/estate"}
    assert {c["content_type"] for c in calls} == {"application/json"}
    bodies = sorted((c["body"]["reference"], c["body"]["kind"]) for c in calls)
    assert bodies == [(risky, "at_risk"), (late, "breached")]
    assert calls[0]["body"]["text"].startswith("Fault MDI-F-")


def test_notification_routes_are_for_admins_and_validated(api: Api) -> None:
    url = "/api/v1/prisons/MDI/notifications"
    body = {"email_to": "wing@mdi.example", "webhook_url": "https://teams.example/hook/1"}
    put = api.client.put(url, json=body, headers=api.auth())
    assert put.status_code == 200, put.text
    assert api.get(url).json() == {"prison_code": "MDI", **body}
    assert api.client.put(url, json=body, headers=api.auth("facilities")).status_code == 403
    bad = api.client.put(url, json={"webhook_url": "not a url"}, headers=api.auth())
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "webhook_url"
    too_long = {"webhook_url": "https://teams.example/" + "h" * 500}
    long = api.client.put(url, json=too_long, headers=api.auth())
    assert long.status_code == 422
    assert long.json()["errors"][0]["field"] == "webhook_url"
    assert "500 characters" in long.json()["errors"][0]["message"]
    assert api.get(url).json() == {"prison_code": "MDI", **body}, "the stored route is unchanged"
    hidden = api.client.get(
        "/api/v1/prisons/LEI/notifications", headers=api.auth("estate-admin", ("MDI",))
    )
    assert hidden.status_code == 404
