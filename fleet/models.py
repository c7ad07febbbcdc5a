"""Imports every table so metadata is complete (for Alembic and tests)."""

from fleet.audit.models import AuditEvent
from fleet.auth.models import ApiToken, User, UserPrison
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
from fleet.web.models import SessionRevocation

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Credential",
    "DeadLetter",
    "Device",
    "DeviceEvent",
    "DeviceState",
    "EnrolmentToken",
    "HealthSample",
    "Location",
    "Prison",
    "SessionRevocation",
    "User",
    "UserPrison",
]
