"""The `estate` command: one sub-command per process plus admin commands.

Sub-commands are imported lazily so `estate agent` never loads the control plane.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("fleet.cli.serve", "serve", "Run the API and web UI."),
    "ingest": ("fleet.ingest.cli", "ingest", "Consume device reports from MQTT into the stores."),
    "worker": ("fleet.cli.celery_cmds", "worker", "Run a Celery worker."),
    "beat": ("fleet.cli.celery_cmds", "beat", "Run the Celery beat scheduler."),
    "agent": ("agents.cli", "agent", "Run the device agent (enrol first with --enrol)."),
    "simulate": ("fleet.simulate.cli", "simulate", "Run simulated devices against the broker."),
    "demo": ("fleet.cli.demo", "demo", "Run the whole embedded estate on one machine."),
    "db": ("fleet.cli.db", "db", "Database schema and seed data."),
    "bench": ("fleet.bench.cli", "bench", "Benchmarks that print their figures."),
    "users": ("fleet.auth.cli", "users", "Manage people, roles, caseloads and tokens."),
    "devices": ("fleet.devices.cli", "devices", "Enrolment tokens, revocation and device admin."),
    "locations": ("fleet.estate.cli", "locations", "Import and list prison locations."),
    "audit": ("fleet.audit.cli", "audit", "Inspect and verify the audit trail."),
    "keys": ("fleet.cli.keys", "keys", "Command-signing keys."),
    "jobs": ("fleet.jobs.cli", "jobs", "Ansible job templates for the shipped playbooks; jobs."),
    "dashboards": (
        "fleet.dashboards.cli",
        "dashboards",
        "Grafana dashboards: push them to a Grafana.",
    ),
    "broker": (
        "fleet.broker.cli",
        "broker",
        "Broker identities: bootstrap roles for ingest and the control plane.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _help = entry
        command: Any = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="estate")
def main() -> None:
    """Estate: the device fleet and facilities platform for a prison estate.

    Every process reads the same ESTATE_* settings (see README, "Configuration").
    """


if __name__ == "__main__":
    main()
