"""Job templates and launching jobs from them: checks, targets, stages, the frozen inventory."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.audit.service import record
from fleet.devices.models import Device
from fleet.jobs.inventory import InventoryBuilder, fingerprint, mqtt_inventory
from fleet.jobs.models import Job, JobHost, JobStage, JobTemplate
from fleet.jobs.schemas import LaunchIn, Rollout, Selector, TemplateIn
from fleet.jobs.staging import PlannedStage, plan_stages
from fleet.jobs.targets import Target, describe_empty, resolve

PLAYBOOKS_DIR = Path(__file__).resolve().parents[2] / "playbooks"
# A job over this many devices needs a second person's approval even inside one prison.
APPROVAL_MIN_DEVICES = 500
# Variables that would let a template change how Ansible reaches a device.
RESERVED_PREFIXES = ("ansible_", "estate_")


class JobRefused(Exception):
    """A request the jobs service will not carry out: `status` is the HTTP answer."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def playbook_path(name: str, root: Path = PLAYBOOKS_DIR) -> Path:
    """The playbook file, or JobRefused if it is not a playbook shipped in `root`."""
    path = (root / name).resolve()
    if path.parent != root.resolve() or not path.is_file():
        shipped = ", ".join(sorted(p.name for p in root.glob("*.yml"))) or "none"
        raise JobRefused(
            422, f"there is no playbook {name!r}; the playbooks shipped are: {shipped}", "playbook"
        )
    return path


def check_schema(schema: dict[str, Any]) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise JobRefused(
            422, f"is not a valid JSON Schema: {exc.message}", "variables_schema"
        ) from exc


def check_variables(schema: dict[str, Any], variables: dict[str, Any]) -> None:
    """Refuse reserved names and anything the template's schema does not allow."""
    for key in variables:
        if key.startswith(RESERVED_PREFIXES):
            raise JobRefused(
                422,
                f"{key!r} is reserved (names starting ansible_ or estate_ decide how devices are "
                "reached); rename the variable",
                f"variables.{key}",
            )
    try:
        errors = sorted(
            Draft202012Validator(schema).iter_errors(variables),
            key=lambda e: [str(p) for p in e.absolute_path],
        )
    except (re.error, Unresolvable, SchemaError) as exc:
        # A template's own schema that cannot be applied (a bad pattern, a $ref to nowhere).
        raise JobRefused(
            422, f"the template's schema cannot be applied ({exc}); fix the template", "variables"
        ) from exc
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in ("variables", *first.absolute_path))
        raise JobRefused(422, f"does not fit the template's schema: {first.message}", where)


def _check_template(data: TemplateIn, root: Path) -> None:
    playbook_path(data.playbook, root)
    check_schema(data.variables_schema)
    for key in data.variables:
        if key.startswith(RESERVED_PREFIXES):
            raise JobRefused(422, f"{key!r} is a reserved variable name", f"variables.{key}")


def list_templates(*, session: Session) -> list[JobTemplate]:
    return list(session.scalars(select(JobTemplate).order_by(JobTemplate.name)))


def create_template(
    *, session: Session, actor: str, data: TemplateIn, now: datetime, root: Path = PLAYBOOKS_DIR
) -> JobTemplate:
    _check_template(data, root)
    if session.scalar(select(JobTemplate.id).where(JobTemplate.name == data.name)) is not None:
        raise JobRefused(422, f"a template called {data.name!r} already exists", "name")
    template = JobTemplate(**data.model_dump(mode="json"), created_by=actor, created_at=now)
    template.updated_at = now
    session.add(template)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="job_template.create",
        target_type="job_template",
        target_id=str(template.id),
        detail={"name": template.name, "playbook": template.playbook},
    )
    return template


def update_template(
    *,
    session: Session,
    actor: str,
    template: JobTemplate,
    data: TemplateIn,
    now: datetime,
    root: Path = PLAYBOOKS_DIR,
) -> JobTemplate:
    _check_template(data, root)
    clash = session.scalar(
        select(JobTemplate.id).where(JobTemplate.name == data.name, JobTemplate.id != template.id)
    )
    if clash is not None:
        raise JobRefused(422, f"a template called {data.name!r} already exists", "name")
    before = {"playbook": template.playbook, "selector": template.selector}
    for key, value in data.model_dump(mode="json").items():
        setattr(template, key, value)
    template.updated_at = now
    record(
        session=session,
        actor=actor,
        action="job_template.update",
        target_type="job_template",
        target_id=str(template.id),
        detail={"before": before, "after": {"playbook": data.playbook}},
    )
    return template


@dataclass(frozen=True)
class Plan:
    """What a launch would do: the targets, the stages, and whether it needs approval."""

    template: JobTemplate
    selector: Selector
    variables: dict[str, Any]
    rollout: Rollout
    check_mode: bool
    targets: list[Target]
    stages: list[PlannedStage]
    estate_wide: bool

    @property
    def prisons(self) -> list[str]:
        return sorted({t.prison_code for t in self.targets})


def plan_launch(
    *,
    session: Session,
    template: JobTemplate,
    body: LaunchIn,
    scope: Sequence[str] | None,
    root: Path = PLAYBOOKS_DIR,
) -> Plan:
    """Check a launch and work out its targets and stages, changing nothing."""
    playbook_path(template.playbook, root)
    selector = body.selector or Selector.model_validate(template.selector)
    variables = {**template.variables, **body.variables}
    check_variables(template.variables_schema or {"type": "object"}, variables)
    targets = resolve(session=session, selector=selector, scope=scope)
    if not targets:
        raise JobRefused(422, describe_empty(selector), "selector")
    rollout = body.rollout or Rollout.model_validate(template.rollout or {})
    return Plan(
        template=template,
        selector=selector,
        variables=variables,
        rollout=rollout,
        check_mode=template.check_mode if body.check_mode is None else body.check_mode,
        targets=targets,
        stages=plan_stages(targets, rollout),
        # A caseload is a restriction to prisons in itself; only the whole estate needs approval.
        estate_wide=(scope is None and not selector.names_a_place())
        or len(targets) >= APPROVAL_MIN_DEVICES,
    )


def create_job(
    *,
    session: Session,
    actor: str,
    name: str,
    playbook: str,
    template_id: int | None,
    selector: dict[str, Any],
    variables: dict[str, Any],
    options: dict[str, Any],
    stages: Sequence[PlannedStage],
    targets: Sequence[Target],
    needs_approval: bool,
    estate_wide: bool,
    now: datetime,
    inventory_builder: InventoryBuilder = mqtt_inventory,
    parent: Job | None = None,
    origin: str = "launch",
) -> Job:
    """Store a job with its stages, hosts and frozen inventory; audited as its launch."""
    ids = [t.device_id for t in targets]
    devices = list(session.scalars(select(Device).where(Device.id.in_(ids)).order_by(Device.id)))
    inventory = inventory_builder(session, devices)
    job = Job(
        template_id=template_id,
        parent_id=parent.id if parent else None,
        origin=origin,
        name=name,
        playbook=playbook,
        selector=selector,
        variables=variables,
        forks=options["forks"],
        timeout_s=options["timeout_s"],
        check_mode=options["check_mode"],
        rollout=options["rollout"],
        status="awaiting_approval" if needs_approval else "queued",
        prison_codes=sorted({t.prison_code for t in targets}),
        estate_wide=estate_wide,
        launched_by=actor,
        inventory=inventory,
        inventory_sha256=fingerprint(inventory),
        created_at=now,
    )
    session.add(job)
    session.flush()
    prison_of = {t.device_id: t.prison_code for t in targets}
    for position, stage in enumerate(stages):
        session.add(
            JobStage(
                job_id=job.id, position=position, label=stage.label, device_ids=stage.device_ids
            )
        )
        for device_id in stage.device_ids:
            session.add(
                JobHost(
                    job_id=job.id,
                    device_id=device_id,
                    prison_code=prison_of[device_id],
                    stage=position,
                    updated_at=now,
                )
            )
    session.flush()
    audit_job(
        session,
        actor,
        origin,
        job,
        playbook=playbook,
        template_id=template_id,
        parent_id=job.parent_id,
        devices=len(ids),
        prisons=job.prison_codes,
        stages=len(stages),
        inventory_sha256=job.inventory_sha256,
        needs_approval=needs_approval,
        check_mode=job.check_mode,
    )
    return job


def audit_job(session: Session, actor: str, action: str, job: Job, **detail: Any) -> None:
    """One `job.<action>` audit event, filed under the prison when the job touches only one."""
    record(
        session=session,
        actor=actor,
        action=f"job.{action}",
        target_type="job",
        target_id=str(job.id),
        prison_code=job.prison_codes[0] if len(job.prison_codes) == 1 else None,
        detail={"status": job.status, **detail},
    )


def launch(
    *,
    session: Session,
    actor: str,
    plan: Plan,
    now: datetime,
    inventory_builder: InventoryBuilder = mqtt_inventory,
) -> Job:
    """Create the job a checked plan describes; estate-wide jobs wait for approval."""
    template = plan.template
    return create_job(
        session=session,
        actor=actor,
        name=template.name,
        playbook=template.playbook,
        template_id=template.id,
        selector=plan.selector.model_dump(mode="json"),
        variables=plan.variables,
        options={
            "forks": template.forks,
            "timeout_s": template.timeout_s,
            "check_mode": plan.check_mode,
            "rollout": plan.rollout.model_dump(mode="json"),
        },
        stages=plan.stages,
        targets=plan.targets,
        needs_approval=plan.estate_wide,
        estate_wide=plan.estate_wide,
        now=now,
        inventory_builder=inventory_builder,
    )


def job_visible(job: Job, scope: Sequence[str] | None) -> bool:
    """A caseload sees a job only when every prison it touches is in the caseload."""
    return scope is None or set(job.prison_codes) <= set(scope)
