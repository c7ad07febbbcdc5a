"""Digests to a local SMTP recorder and a local webhook receiver started by each test:
a bad night is one message per route, each alert is told once, failures are retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from fleet.alerts import digest
from fleet.alerts.models import AlertNotice, AlertRoute
from fleet.alerts.routing import create_route
from fleet.alerts.schemas import RouteIn
from fleet.alerts.tasks import NOTIFY, NotificationsFailed
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.settings import Settings
from fleet.tasks.app import make_celery
from tests.alerts.support import add_rule, run_pass
from tests.estate.factories import add_device, seed_locations
from tests.facilities.recorders import smtp_recorder, webhook_recorder
from tests.services.api_server import free_port

T0 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def _route(ctx: Context, now: datetime, **fields: object) -> int:
    with transaction(ctx.sessions) as session:
        route = create_route(
            session=session,
            actor="tester",
            data=RouteIn.model_validate({"prison_code": "MDI", **fields}),
            caseload=None,
            now=now,
        )
        return route.id


def _silent_devices(ctx: Context, prison: str, cells: list[str], since: datetime) -> None:
    with transaction(ctx.sessions) as session:
        for cell in cells:
            add_device(session, prison=prison, location=cell, online=False, last_seen=since)


def _deliver(ctx: Context, settings: Settings, now: datetime) -> list[digest.Digest]:
    """What the notify task does, at a chosen time."""
    with transaction(ctx.sessions) as session:
        due = digest.claim_digests(session=session, now=now)
    unsent = [d for d in due if digest.send(settings, d)[0] == 0]
    with transaction(ctx.sessions) as session:
        digest.release(session=session, digests=unsent)
    return due


def test_a_bad_night_is_one_email_and_one_webhook_post_to_local_receivers(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    cells = [f"MDI-{w}-{ln}-00{c}" for w in (1, 2) for ln in (1, 2) for c in (1, 2, 3)]
    with smtp_recorder() as (smtp_url, mailbox), webhook_recorder() as (hook_url, calls):
        settings = pg_context.settings.model_copy(update={"smtp_url": smtp_url})
        _route(pg_context, T0, email_to="it@mdi.example", webhook_url=hook_url, digest_minutes=15)
        _silent_devices(pg_context, "MDI", cells, T0 - timedelta(hours=1))
        _silent_devices(pg_context, "LEI", ["LEI-1-1-001"], T0 - timedelta(hours=1))
        with transaction(pg_context.sessions) as session:  # an info alert: below the route's bar
            add_device(
                session,
                prison="MDI",
                location="MDI-1-1-001",
                online=True,
                last_seen=T0,
                metrics={"storage": 97.0},
            )
        add_rule(pg_context, kind="offline", threshold=30, severity="critical", group_min=10)
        add_rule(pg_context, kind="storage_high", threshold=90, severity="info")
        first = run_pass(pg_context, T0 + timedelta(minutes=1))
        assert len(first.opened) == 14  # 12 MDI devices offline, one at LEI, one MDI info

        assert _deliver(pg_context, settings, T0 + timedelta(minutes=5)) == []  # still gathering
        assert mailbox.messages == []
        assert calls == []
        [night] = _deliver(pg_context, settings, T0 + timedelta(minutes=16))
        assert len(night.alerts) == 12
        assert night.prison_code == "MDI"
        [mail] = mailbox.messages
        assert mail["to"] == ["it@mdi.example"]
        assert "Subject: [Estate] MDI: 12 new alerts (12 critical)" in mail["data"]
        assert mail["data"].count("offline for longer than 30 minutes") == 12
        [post] = calls
        assert post["body"]["count"] == 12
        assert post["body"]["prison"] == "MDI"
        assert post["body"]["text"].startswith("[Estate] MDI: 12 new alerts")

        # Told once: nothing more until something new opens, which starts its own window.
        assert _deliver(pg_context, settings, T0 + timedelta(minutes=40)) == []
        _silent_devices(pg_context, "MDI", ["MDI-2-2-003"], T0)
        run_pass(pg_context, T0 + timedelta(minutes=41))
        assert _deliver(pg_context, settings, T0 + timedelta(minutes=50)) == []
        [later] = _deliver(pg_context, settings, T0 + timedelta(minutes=57))
        assert len(later.alerts) == 1
        assert len(mailbox.messages) == 2
        assert len(calls) == 2
    with transaction(pg_context.sessions) as session:
        notices = session.scalar(select(func.count()).select_from(AlertNotice))
    assert notices == 13


def test_a_digest_nobody_could_receive_is_kept_and_sent_on_the_next_pass(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    dead_hook = f"http://127.0.0.1:{free_port()}/nobody-listens"
    _route(pg_context, T0, webhook_url=dead_hook, digest_minutes=0)
    _silent_devices(pg_context, "MDI", ["MDI-1-1-001"], T0 - timedelta(hours=1))
    add_rule(pg_context, kind="offline", threshold=30)
    run_pass(pg_context, T0 + timedelta(minutes=1))
    [failed] = _deliver(pg_context, pg_context.settings, T0 + timedelta(minutes=2))
    assert len(failed.alerts) == 1
    with webhook_recorder() as (hook_url, calls):
        with transaction(pg_context.sessions) as session:
            route = session.scalars(select(AlertRoute)).one()
            route.webhook_url = hook_url
        [retried] = _deliver(pg_context, pg_context.settings, T0 + timedelta(minutes=3))
        assert [a.id for a in retried.alerts] == [a.id for a in failed.alerts]
        assert len(calls) == 1


def test_the_notify_task_sends_due_digests_and_raises_when_none_could_go(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    now = utcnow()
    _route(
        pg_context, now - timedelta(minutes=5), webhook_url="http://127.0.0.1:9/x", digest_minutes=0
    )
    _silent_devices(pg_context, "MDI", ["MDI-1-1-001"], now - timedelta(hours=1))
    add_rule(pg_context, kind="offline", threshold=30)
    run_pass(pg_context, now - timedelta(minutes=1))
    app = make_celery(pg_context.settings)
    try:
        with pytest.raises(NotificationsFailed, match="1 digest"):
            app.tasks[NOTIFY].delay().get()
        with webhook_recorder() as (hook_url, calls), transaction(pg_context.sessions) as session:
            session.scalars(select(AlertRoute)).one().webhook_url = hook_url
            session.commit()
            assert app.tasks[NOTIFY].delay().get() == 1
            assert len(calls) == 1
            assert calls[0]["body"]["count"] == 1
    finally:
        app.close_context()
