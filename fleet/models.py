"""Imports every table so metadata is complete (for Alembic and tests)."""

from facilities.faults.models import (
    Fault,
    FaultAttachment,
    FaultCounter,
    FaultEvent,
    FaultNotificationRoute,
    FaultTarget,
)
from fleet.audit.models import AuditEvent
from fleet.auth.models import ApiToken, User, UserPrison
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
from fleet.rollout.models import Milestone, PlanSnapshot, PrisonPlan, Programme
from fleet.web.models import SessionRevocation

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Credential",
    "DeadLetter",
    "Device",
    "DeviceCommand",
    "DeviceEvent",
    "DeviceState",
    "EnrolmentToken",
    "Fault",
    "FaultAttachment",
    "FaultCounter",
    "FaultEvent",
    "FaultNotificationRoute",
    "FaultTarget",
    "HealthSample",
    "Location",
    "Milestone",
    "PlanSnapshot",
    "Prison",
    "PrisonPlan",
    "Programme",
    "SessionRevocation",
    "User",
    "UserPrison",
]
