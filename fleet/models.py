"""Imports every table so metadata is complete (for Alembic and tests)."""

from facilities.faults.models import (
    Fault,
    FaultAttachment,
    FaultCounter,
    FaultEvent,
    FaultNotificationRoute,
    FaultTarget,
)
from fleet.alerts.models import Alert, AlertNotice, AlertRoute, AlertRule, QuietWindow
from fleet.audit.models import AuditEvent
from fleet.auth.models import ApiToken, User, UserPrison
from fleet.automation.models import DesiredConfig, DeviceTag
from fleet.commands.models import DeviceCommand
from fleet.db import Base
from fleet.devices.models import (
    Credential,
    Device,
    DeviceEvent,
    DeviceState,
    EnrolmentToken,
    HealthSample,
)
from fleet.estate.models import Location, Prison
from fleet.ingest.models import DeadLetter
from fleet.jobs.models import Job, JobEvent, JobHost, JobStage, JobTemplate
from fleet.rollout.models import Milestone, PlanSnapshot, PrisonPlan, Programme
from fleet.web.models import SessionRevocation

__all__ = [
    "Alert",
    "AlertNotice",
    "AlertRoute",
    "AlertRule",
    "ApiToken",
    "AuditEvent",
    "Base",
    "Credential",
    "DeadLetter",
    "DesiredConfig",
    "Device",
    "DeviceCommand",
    "DeviceEvent",
    "DeviceState",
    "DeviceTag",
    "EnrolmentToken",
    "Fault",
    "FaultAttachment",
    "FaultCounter",
    "FaultEvent",
    "FaultNotificationRoute",
    "FaultTarget",
    "HealthSample",
    "Job",
    "JobEvent",
    "JobHost",
    "JobStage",
    "JobTemplate",
    "Location",
    "Milestone",
    "PlanSnapshot",
    "Prison",
    "PrisonPlan",
    "Programme",
    "QuietWindow",
    "SessionRevocation",
    "User",
    "UserPrison",
]
