"""An alert form waiting on a row another connection holds leaves the server answering others."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Select, select

from fleet.alerts.models import Alert, AlertRule, QuietWindow
from fleet.context import Context
from fleet.db import transaction, utcnow
from tests.alerts.held_row import PROMPT_S, send_while_row_held
from tests.alerts.support import add_rule, add_window, open_alerts, run_pass
from tests.estate.factories import add_device
from tests.facilities.fault_site import web_client
from tests.web.site import Site, running_site


@dataclass(frozen=True)
class Seeded:
    site: Site
    alert: int
    rule: int
    window: int


@dataclass(frozen=True)
class Form:
    path: str
    fields: dict[str, str]
    rows: Select[Any]  # what the form's database work must wait on
    lands_on: str
    done: Callable[[Context], bool]


@pytest.fixture
def seeded(pg_url: str, tmp_path: Path) -> Iterator[Seeded]:
    with running_site(pg_url, tmp_path) as site:
        silent = utcnow() - timedelta(hours=2)
        with transaction(site.ctx.sessions) as session:
            add_device(
                session, prison="MDI", location="MDI-1-2-001", online=False, last_seen=silent
            )
        rule = add_rule(site.ctx, name="Phones offline", kind="offline", threshold=30, group_min=5)
        window = add_window(
            site.ctx,
            prison_code="MDI",
            kind="ad_hoc",
            reason="cell search",
            rule_kinds=["flapping"],
            ends_at=utcnow() + timedelta(hours=3),
        )
        run_pass(site.ctx, utcnow())
        alert = open_alerts(site.ctx, rule_id=rule)[0].id
        yield Seeded(site, alert, rule, window)


def _stored(ctx: Context, model: Any, key: int) -> Any:
    with transaction(ctx.sessions) as session:
        return session.get(model, key)


def _form(name: str, seeded: Seeded) -> Form:
    alert, rule, window = seeded.alert, seeded.rule, seeded.window
    the_alert = select(Alert).where(Alert.id == alert)
    forms = {
        "acknowledge one": Form(
            f"/alerts/{alert}/acknowledge",
            {},
            the_alert,
            f"/alerts/{alert}",
            lambda ctx: _stored(ctx, Alert, alert).status == "acknowledged",
        ),
        "acknowledge many": Form(
            "/alerts/acknowledge",
            {"ids": str(alert), "back": "/alerts?status=open"},
            the_alert,
            "/alerts?status=open&acted=1",
            lambda ctx: _stored(ctx, Alert, alert).status == "acknowledged",
        ),
        "resolve": Form(
            f"/alerts/{alert}/resolve",
            {"note": "Reseated the handset"},
            the_alert,
            f"/alerts/{alert}",
            lambda ctx: _stored(ctx, Alert, alert).resolution == "Reseated the handset",
        ),
        "remove rule": Form(
            f"/alerts/rules/{rule}/remove",
            {},
            select(AlertRule).where(AlertRule.id == rule),
            "/alerts/rules",
            lambda ctx: _stored(ctx, AlertRule, rule).archived_at is not None,
        ),
        "end quiet window": Form(
            f"/alerts/quiet/{window}/end",
            {},
            select(QuietWindow).where(QuietWindow.id == window),
            "/alerts/quiet",
            lambda ctx: _stored(ctx, QuietWindow, window).archived_at is not None,
        ),
    }
    return forms[name]


@pytest.mark.parametrize(
    "name", ["acknowledge one", "acknowledge many", "resolve", "remove rule", "end quiet window"]
)
def test_a_form_waiting_on_a_held_row_leaves_the_server_answering(
    seeded: Seeded, name: str
) -> None:
    site = seeded.site
    form = _form(name, seeded)
    with web_client(site, "admin") as client:
        token, _ = client.form_tokens("/alerts")
        held = send_while_row_held(
            site.ctx,
            form.rows,
            lambda: client.http.post(form.path, data={"csrf_token": token, **form.fields}),
            lambda: httpx.get(f"{site.base}/healthz", timeout=5),
        )
    assert held.other is not None, "the server stopped answering while the form waited"
    assert held.other.status_code == 200
    assert held.other_seconds < PROMPT_S
    assert held.still_waiting
    assert held.answer.status_code == 303, held.answer.text
    assert held.answer.headers["location"] == form.lands_on
    assert form.done(site.ctx)
