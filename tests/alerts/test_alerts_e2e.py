"""The offline rule on real services: `estate agent` processes, Mosquitto with dynamic security,
ingest and the API. Time is moved by passing `now` to the evaluation pass, never by sleeping."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.alerts import digest
from fleet.alerts.evaluate import PassResult, evaluate
from fleet.db import transaction, utcnow
from tests.alerts.support import open_alerts
from tests.e2e.harness import AgentProcess, ControlPlane, control_plane, wait_for
from tests.estate.factories import seed_locations
from tests.facilities.recorders import smtp_recorder, webhook_recorder

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker

LANDING_CELLS = ("MDI-1-1-001", "MDI-1-1-002", "MDI-1-1-003")
LONE_CELL = "MDI-2-1-001"


def _token(cp: ControlPlane, cell: str) -> str:
    with cp.api() as api:
        resp = api.post(
            "/api/v1/enrolments", json={"prison_code": "MDI", "kind": "laptop", "location": cell}
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["tokens"][0])


def _restart(cp: ControlPlane, name: str, old: AgentProcess) -> AgentProcess:
    """The same device back again: its saved identity, no new enrolment."""
    log = open(cp.tmp / f"agent-{name}-again.log", "wb")  # noqa: SIM115 - closed by AgentProcess
    cmd = [
        str(Path(sys.executable).parent / "estate"),
        "agent",
        "--state-dir",
        str(old.state_dir),
        "--interval",
        "0.5",
    ]
    return AgentProcess(
        subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), old.state_dir, log
    )


def _states(cp: ControlPlane, ids: list[str]) -> dict[str, bool]:
    with cp.api() as api:
        return {i: bool(api.get(f"/api/v1/devices/{i}").json()["online"]) for i in ids}


def _pass(cp: ControlPlane, now: datetime) -> PassResult:
    with transaction(cp.ctx.sessions) as session:
        return evaluate(session=session, now=now)


def test_offline_rule_groups_a_landing_keeps_quiet_notifies_once_and_resolves(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with control_plane(
        pg_url,
        dynsec_broker,
        tmp_path,
        username="alerts-admin",
        ingest_id="alerts-ingest",
        session_expiry_s=0,
    ) as cp:
        seed_locations(cp.ctx)
        cells = [*LANDING_CELLS, LONE_CELL]
        agents = [cp.start_agent(f"a{i}", _token(cp, cell)) for i, cell in enumerate(cells)]
        try:
            ids = [agent.identity()["device_id"] for agent in agents]
            wait_for(lambda: all(_states(cp, ids).values()), 30, "every agent online")
            started = utcnow()
            with cp.api() as api:
                rule = api.post(
                    "/api/v1/alert-rules",
                    json={
                        "name": "Laptops offline",
                        "kind": "offline",
                        "threshold": 10,
                        "severity": "critical",
                        "prisons": ["MDI"],
                        "group_min": 3,
                    },
                )
                assert rule.status_code == 201, rule.text
            assert _pass(cp, started + timedelta(minutes=11)).opened == []  # all online

            for agent in agents:
                agent.stop()
            wait_for(lambda: not any(_states(cp, ids).values()), 30, "every agent offline")

            with cp.api() as api:
                window = api.post(
                    "/api/v1/quiet-windows",
                    json={
                        "prison_code": "MDI",
                        "kind": "ad_hoc",
                        "reason": "power cut",
                        "rule_kinds": ["offline"],
                    },
                ).json()
                quiet = _pass(cp, started + timedelta(minutes=11))
                assert (quiet.opened, quiet.silenced) == ([], 2)
                assert [q.label for q in quiet.quiet] == ["Quiet: power cut until ended"]
                assert api.delete(f"/api/v1/quiet-windows/{window['id']}").status_code == 204

            with smtp_recorder() as (smtp_url, mailbox), webhook_recorder() as (hook_url, calls):
                with cp.api() as api:
                    route: Any = api.post(
                        "/api/v1/alert-routes",
                        json={
                            "prison_code": "MDI",
                            "email_to": "it@mdi.example",
                            "webhook_url": hook_url,
                            "digest_minutes": 5,
                        },
                    )
                    assert route.status_code == 201, route.text
                fired = _pass(cp, started + timedelta(minutes=12))
                assert len(fired.opened) == 2
                assert _pass(cp, started + timedelta(minutes=13)).opened == []  # fires once
                landing, lone = sorted(open_alerts(cp.ctx), key=lambda a: a.device_id or "")
                assert landing.device_id is None
                assert landing.devices == sorted(ids[:3])
                assert landing.summary.startswith("3 devices on landing MDI-1-1 offline")
                assert lone.device_id == ids[3]

                settings = cp.ctx.settings.model_copy(update={"smtp_url": smtp_url})
                for minute in (14, 18, 25):
                    with transaction(cp.ctx.sessions) as session:
                        due = digest.claim_digests(
                            session=session, now=started + timedelta(minutes=minute)
                        )
                    for item in due:
                        assert digest.send(settings, item) == (2, [])
                assert len(mailbox.messages) == 1
                assert "MDI: 2 new alerts (2 critical)" in mailbox.messages[0]["data"]
                assert [c["body"]["count"] for c in calls] == [2]

            back = [_restart(cp, f"a{i}", agent) for i, agent in enumerate(agents)]
            agents = back
            wait_for(lambda: all(_states(cp, ids).values()), 30, "every agent back online")
            returned = _pass(cp, started + timedelta(minutes=20))
            assert sorted(returned.resolved) == sorted([landing.id, lone.id])
            assert open_alerts(cp.ctx) == []
            with cp.api() as api:
                closed = api.get(f"/api/v1/alerts/{landing.id}").json()
            assert closed["status"] == "resolved"
            assert closed["resolved_by"] == "estate-alerts"
            assert closed["resolution"] == "The condition cleared."
        finally:
            for agent in agents:
                agent.stop()
