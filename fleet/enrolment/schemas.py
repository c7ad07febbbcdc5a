"""Enrolment requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeviceKind = Literal["in_cell_phone", "tablet", "laptop", "kiosk"]


class EnrolmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prison_code: str = Field(min_length=2, max_length=8, description="Prison the device will join")
    kind: DeviceKind
    location: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+$",
        description="Location code such as MDI-1-1-001",
    )
    device_id: str | None = Field(
        default=None, max_length=64, description="Bind the token to an already registered device"
    )
    ttl_s: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)
    count: int = Field(default=1, ge=1, le=1000, description="How many one-time tokens to create")


class EnrolmentCreated(BaseModel):
    tokens: list[str]
    prison_code: str
    kind: str
    location: str | None
    expires_at: datetime


class RedeemRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: str = Field(min_length=8, max_length=200)
    serial: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/-]+$")
    hostname: str = Field(default="", max_length=200)
    agent: str = Field(default="", max_length=32)


class MqttCredentials(BaseModel):
    url: str
    username: str
    password: str


class RedeemResponse(BaseModel):
    device_id: str
    prison_code: str
    location: str | None
    mqtt: MqttCredentials
    signing_public_key: str
    config: dict[str, int | str | float | bool]
