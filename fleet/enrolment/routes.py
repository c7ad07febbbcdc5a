"""Enrolment tokens (people) and their redemption (devices); revoking a device."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from fleet.api.deps import AppSettings, DbSession, Issuer, Principal, ensure_prison_visible, require
from fleet.api.errors import invalid
from fleet.devices.models import Device
from fleet.enrolment import service
from fleet.enrolment.schemas import (
    EnrolmentCreate,
    EnrolmentCreated,
    MqttCredentials,
    RedeemRequest,
    RedeemResponse,
)

router = APIRouter(tags=["enrolment"])


def _raise(exc: service.EnrolmentError) -> None:
    if exc.status == 422:
        raise invalid(("body",), exc.message) from exc
    raise HTTPException(exc.status, exc.message) from exc


@router.post(
    "/enrolments",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrolmentCreated,
    responses={
        404: {"description": "The prison is outside your caseload"},
        409: {"description": "The device named is not waiting to enrol"},
    },
)
def create_enrolments(
    body: EnrolmentCreate,
    session: DbSession,
    settings: AppSettings,
    principal: Principal = require("devices:enrol"),
) -> EnrolmentCreated:
    """Create one-time, expiring enrolment tokens for devices joining a prison."""
    ensure_prison_visible(principal, body.prison_code.upper(), "prison")
    try:
        created = service.create_tokens(
            session=session,
            settings=settings,
            actor=principal.username,
            prison_code=body.prison_code,
            kind=body.kind,
            location_path=body.location,
            device_id=body.device_id,
            ttl_s=body.ttl_s,
            count=body.count,
        )
    except service.EnrolmentError as exc:
        _raise(exc)
        raise
    return EnrolmentCreated(
        tokens=created.tokens,
        prison_code=body.prison_code.upper(),
        kind=body.kind,
        location=created.location.path if created.location else None,
        expires_at=created.expires_at,
    )


@router.post(
    "/enrolments/redeem",
    status_code=status.HTTP_201_CREATED,
    response_model=RedeemResponse,
    responses={
        404: {"description": "The enrolment token is not recognised"},
        409: {"description": "The token was already used, or the serial belongs to another device"},
        410: {"description": "The enrolment token has expired"},
    },
)
def redeem_enrolment(
    body: RedeemRequest, session: DbSession, settings: AppSettings, issuer: Issuer
) -> RedeemResponse:
    """Called by the agent: exchange a one-time token for the device's identity."""
    try:
        done = service.redeem(
            session=session,
            settings=settings,
            issuer=issuer,
            token=body.token,
            serial=body.serial,
            hostname=body.hostname,
            agent_version=body.agent,
        )
    except service.EnrolmentError as exc:
        # The token was claimed before the refusal; keep nothing of this attempt.
        session.rollback()
        _raise(exc)
        raise
    return RedeemResponse(
        device_id=done.device.id,
        prison_code=done.device.prison_code,
        location=done.location.path if done.location else None,
        mqtt=MqttCredentials(
            url=service.device_broker_url(settings), username=done.username, password=done.password
        ),
        signing_public_key=done.signing_public_key,
        config=done.config,
    )


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=500, description="Why the device is revoked")


@router.post("/devices/{device_id}/revoke", tags=["devices"])
def revoke(
    device_id: str,
    body: RevokeRequest,
    session: DbSession,
    issuer: Issuer,
    principal: Principal = require("devices:revoke"),
) -> dict[str, str]:
    """Disconnect the device at once and refuse it from now on (lost or stolen hardware)."""
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(404, "device not found")
    ensure_prison_visible(principal, device.prison_code, "device")
    service.revoke_device(
        session=session,
        issuer=issuer,
        device_id=device_id,
        actor=principal.username,
        reason=body.reason,
    )
    return {"device_id": device_id, "lifecycle": "revoked"}
