"""Request and response bodies for job templates, jobs, their hosts and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleet.devices.schemas import DeviceKind

CODE = r"^[A-Za-z0-9]{2,8}$"
DEVICE_ID = r"^[A-Za-z0-9_-]{1,64}$"
PLAYBOOK = r"^[A-Za-z0-9_-]+\.ya?ml$"


class Selector(BaseModel):
    """Which enrolled devices a job targets: every field narrows, values within one widen."""

    model_config = ConfigDict(extra="forbid")

    prisons: list[str] = Field(default_factory=list, max_length=200, description="Prison codes")
    kinds: list[DeviceKind] = Field(default_factory=list, max_length=4)
    wings: list[str] = Field(
        default_factory=list, max_length=200, description="Location paths such as MDI-1"
    )
    programmes: list[int] = Field(
        default_factory=list, max_length=50, description="Rollout programme ids"
    )
    device_ids: list[str] = Field(default_factory=list, max_length=5000)
    tags: list[str] = Field(
        default_factory=list, max_length=50, description="Device tags, e.g. pilot or education"
    )

    def names_a_place(self) -> bool:
        """Whether the selector is restricted to places or devices (not estate-wide)."""
        return bool(self.prisons or self.wings or self.programmes or self.device_ids)


class Rollout(BaseModel):
    """How a job is staged: a canary, bake time, then waves; pause when failures pass a bar."""

    model_config = ConfigDict(extra="forbid")

    canary: int = Field(default=0, ge=0, le=1000, description="Devices in the canary stage")
    bake_s: int = Field(
        default=0, ge=0, le=7 * 24 * 3600, description="Seconds to wait after each stage"
    )
    waves: Literal["percent", "prison"] = "percent"
    wave_percent: list[int] = Field(
        default_factory=lambda: [100],
        min_length=1,
        max_length=20,
        description="Cumulative share of the remaining devices done by the end of each wave",
    )
    failure_threshold_pct: float = Field(
        default=100.0,
        ge=0,
        le=100,
        description="Pause when the share of failed or unreachable devices so far is above this",
    )

    @model_validator(mode="after")
    def _percent_rises_to_100(self) -> Rollout:
        steps = self.wave_percent
        if any(p <= 0 or p > 100 for p in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError("wave_percent must rise strictly, each 1-100, and end at 100")
        return self


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    playbook: str = Field(
        pattern=PLAYBOOK, max_length=200, description="A playbook in playbooks/, e.g. reboot.yml"
    )
    selector: Selector = Field(default_factory=Selector)
    variables: dict[str, Any] = Field(default_factory=dict, description="Default variables")
    variables_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema the variables must satisfy at launch",
    )
    forks: int = Field(default=10, ge=1, le=200)
    timeout_s: int = Field(default=1800, ge=10, le=24 * 3600)
    check_mode: bool = False
    rollout: Rollout = Field(default_factory=Rollout)


class TemplateOut(TemplateIn):
    id: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class TemplateListOut(BaseModel):
    items: list[TemplateOut]


class LaunchIn(BaseModel):
    """Launch a template; anything given here replaces the template's value for this job."""

    model_config = ConfigDict(extra="forbid")

    template_id: int
    selector: Selector | None = None
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Merged over the template's defaults"
    )
    check_mode: bool | None = None
    rollout: Rollout | None = None
    preview: bool = Field(default=False, description="Only show the targets; run nothing")


class TargetOut(BaseModel):
    device_id: str
    prison_code: str
    kind: str
    location: str | None


class StageOut(BaseModel):
    position: int
    label: str
    devices: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None


class PreviewOut(BaseModel):
    matched: int
    prisons: list[str]
    estate_wide: bool
    needs_approval: bool
    stages: list[StageOut]
    targets: list[TargetOut] = Field(description="The first 200 targets")


class JobOut(BaseModel):
    id: int
    template_id: int | None
    parent_id: int | None
    origin: str
    name: str
    playbook: str
    selector: dict[str, Any]
    variables: dict[str, Any]
    forks: int
    timeout_s: int
    check_mode: bool
    rollout: dict[str, Any]
    status: str
    explanation: str
    prison_codes: list[str]
    estate_wide: bool
    launched_by: str
    approved_by: str | None
    approved_at: datetime | None
    inventory_sha256: str
    cancel_requested: bool
    next_stage_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stages: list[StageOut] = Field(default_factory=list)
    hosts: dict[str, int] = Field(default_factory=dict, description="Hosts counted by status")


class JobListOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class HostOut(BaseModel):
    device_id: str
    prison_code: str
    stage: int
    status: str
    ok: int
    changed: int
    failures: int
    skipped: int
    message: str
    retry_when_online: bool
    retried_by_job_id: int | None
    updated_at: datetime


class HostListOut(BaseModel):
    items: list[HostOut]


class EventOut(BaseModel):
    id: int
    stage: int
    counter: int
    event: str
    host: str | None
    task: str
    stdout: str
    failed: bool
    created_at: datetime


class EventListOut(BaseModel):
    items: list[EventOut]
    last_id: int = Field(description="Pass as after= to read only newer events")
    status: str = Field(description="The job's status when these events were read")


class ArtifactOut(BaseModel):
    path: str = Field(description="Relative to the job's artifacts: <device id>/<file name>")
    bytes: int


class ArtifactListOut(BaseModel):
    items: list[ArtifactOut]


class RerunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: Literal["failed", "unreachable", "failed_and_unreachable"] = "failed_and_unreachable"


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)
