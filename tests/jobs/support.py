"""Job test helpers: devices on a migrated database, a local inventory, launching by service."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from fleet.jobs import service
from fleet.jobs.models import Job, JobEvent, JobHost, JobTemplate
from fleet.jobs.schemas import LaunchIn, Rollout, Selector, TemplateIn
from tests.estate.factories import add_device, seed_locations

TEST_PLAYBOOKS = Path(__file__).parent / "playbooks"


def local_inventory(session: Session, devices: Sequence[Device]) -> dict[str, Any]:
    """Every device played by this machine itself (ansible_connection=local)."""
    return {
        "all": {
            "hosts": {
                d.id: {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "device_prison": d.prison_code,
                }
                for d in devices
            }
        }
    }


def seed_devices(ctx: Context, per_prison: dict[str, int], online: bool = True) -> list[str]:
    """Enrolled devices in each prison (MDI and LEI have locations); returns their ids."""
    seed_locations(ctx)
    ids = []
    with transaction(ctx.sessions) as session:
        for prison, count in per_prison.items():
            for _ in range(count):
                ids.append(add_device(session, prison=prison, online=online).id)
    return sorted(ids)


def make_template(
    ctx: Context,
    *,
    playbook: str = "touch.yml",
    selector: Selector | None = None,
    variables: dict[str, Any] | None = None,
    schema: dict[str, Any] | None = None,
    rollout: Rollout | None = None,
    timeout_s: int = 120,
    name: str = "touch",
    root: Path = TEST_PLAYBOOKS,
) -> int:
    data = TemplateIn(
        name=name,
        playbook=playbook,
        selector=selector or Selector(prisons=["MDI"]),
        variables=variables or {},
        variables_schema=schema or {"type": "object"},
        rollout=rollout or Rollout(),
        timeout_s=timeout_s,
    )
    with transaction(ctx.sessions) as session:
        template = service.create_template(
            session=session, actor="author", data=data, now=utcnow(), root=root
        )
        return template.id


def launch(
    ctx: Context,
    template_id: int,
    *,
    actor: str = "launcher",
    scope: Sequence[str] | None = None,
    inventory_builder: Any = local_inventory,
    root: Path = TEST_PLAYBOOKS,
    **body: Any,
) -> int:
    with transaction(ctx.sessions) as session:
        template = session.get(JobTemplate, template_id)
        assert template is not None
        plan = service.plan_launch(
            session=session,
            template=template,
            body=LaunchIn(template_id=template_id, **body),
            scope=scope,
            root=root,
        )
        job = service.launch(
            session=session,
            actor=actor,
            plan=plan,
            now=utcnow(),
            inventory_builder=inventory_builder,
        )
        return job.id


def job_and_hosts(ctx: Context, job_id: int) -> tuple[Job, dict[str, JobHost]]:
    with transaction(ctx.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        hosts = {
            h.device_id: h for h in session.scalars(select(JobHost).where(JobHost.job_id == job_id))
        }
        session.expunge_all()
        return job, hosts


def wait_for_event(ctx: Context, job_id: int, event: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with transaction(ctx.sessions) as session:
            found = session.scalar(
                select(func.count()).where(JobEvent.job_id == job_id, JobEvent.event == event)
            )
        if found:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {event} event for job {job_id} within {within_s} s")


def kill_sleepers(seconds: int) -> None:
    """Stop `sleep <seconds>` processes a local-connection test left behind."""
    for pid in sleepers(seconds):
        os.kill(pid, 15)


def sleepers(seconds: int) -> list[int]:
    """Processes of this user still running `sleep <seconds>`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            owner = entry.stat().st_uid
        except OSError:
            continue
        if owner == os.getuid() and cmdline[:2] == [b"sleep", str(seconds).encode()]:
            found.append(int(entry.name))
    return found
