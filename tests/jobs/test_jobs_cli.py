"""`estate jobs install-templates`: a valid template per shipped playbook, once."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from fleet.cli import main
from fleet.context import Context
from fleet.db import transaction
from fleet.jobs.catalogue import CATALOGUE
from fleet.jobs.models import JobTemplate
from fleet.jobs.service import PLAYBOOKS_DIR, JobRefused, check_variables


def test_install_templates_covers_every_playbook_and_is_idempotent(pg_context: Context) -> None:
    env = {"ESTATE_DATABASE_URL": pg_context.settings.effective_database_url}
    first = CliRunner().invoke(main, ["jobs", "install-templates"], env=env)
    again = CliRunner().invoke(main, ["jobs", "install-templates"], env=env)

    assert first.exit_code == 0, first.output
    assert f"{len(CATALOGUE)} template(s) created" in first.output
    assert "0 template(s) created" in again.output
    with transaction(pg_context.sessions) as session:
        rows = list(session.scalars(select(JobTemplate)))
    assert {t.playbook for t in rows} == {p.name for p in PLAYBOOKS_DIR.glob("*.yml")}
    listed = CliRunner().invoke(main, ["jobs", "list"], env=env)
    assert listed.exit_code == 0


def test_catalogue_schemas_refuse_what_the_agent_would() -> None:
    wifi = next(t for t in CATALOGUE if t["playbook"] == "wifi-profile.yml")
    bad = {"wifi_networks": [{"ssid": "x" * 40, "security": "wpa2-psk", "psk": "longenough"}]}
    with pytest.raises(JobRefused) as refused:
        check_variables(wifi["variables_schema"], bad)
    assert refused.value.field == "variables.wifi_networks.0.ssid"
