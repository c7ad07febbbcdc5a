"""Finding devices, their detail and health history; registering, moving and retiring them."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse

from fleet.api.deps import (
    AppSettings,
    DbSession,
    Issuer,
    Principal,
    ensure_prison_visible,
    require,
)
from fleet.api.errors import invalid
from fleet.api.pagination import BAD_CURSOR, COUNT_CAP, decode_cursor, encode_cursor
from fleet.broker.dynsec import DynsecError
from fleet.db import utcnow
from fleet.devices import search, service
from fleet.devices.models import Device
from fleet.devices.schemas import (
    MAX_POINTS,
    AuditEntryOut,
    DeviceCreate,
    DeviceDetailOut,
    DeviceEventOut,
    DeviceItem,
    DeviceKind,
    DevicePageOut,
    Health,
    HealthHistoryOut,
    HealthPoint,
    Lifecycle,
    MoveRequest,
    RetireRequest,
    Sort,
    default_step,
    parse_step,
    parse_when,
)
from fleet.estate.routes import breadcrumb, raise_refused
from fleet.estate.service import Refused, get_prison, location_by_path

log = logging.getLogger(__name__)
router = APIRouter(tags=["devices"])

# Moving a device between prisons changes whose caseload it is in, so only estate-wide admins may.
CROSS_PRISON_ROLE = "estate-admin"


def _within(session: DbSession, principal: Principal, name: str, path: str | None) -> list[int]:
    if not path:
        return []
    location = location_by_path(session=session, path=path.strip())
    if location is None or not principal.sees(location.prison_code):
        raise invalid(("query", name), f"no location {path.strip().upper()!r}")
    return [location.id]


@router.get("/devices", response_model=DevicePageOut)
def list_devices(
    session: DbSession,
    principal: Principal = require("devices:read"),
    prison: Annotated[list[str] | None, Query(description="Prison code; repeat for more")] = None,
    kind: Annotated[DeviceKind | None, Query(description="Only this kind")] = None,
    lifecycle: Annotated[Lifecycle | None, Query(description="Only this lifecycle")] = None,
    online: Annotated[bool | None, Query(description="true: connected now; false: not")] = None,
    health: Annotated[Health | None, Query(description="Only this health level")] = None,
    drift: Annotated[
        bool | None,
        Query(
            description="true: behind its desired configuration version; false: on it, or "
            "no desired configuration set"
        ),
    ] = None,
    wing: Annotated[str | None, Query(description="Only devices on this wing, e.g. MDI-1")] = None,
    landing: Annotated[
        str | None, Query(description="Only devices on this landing, e.g. MDI-1-2")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Text in the id, serial or location path, any case"),
    ] = None,
    sort: Annotated[Sort, Query(description="Order; '-' for descending; nulls last")] = "id",
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> DevicePageOut:
    """Devices in your caseload with their live state, filtered, sorted and paged."""
    codes = sorted({p.strip().upper() for p in prison or [] if p.strip()})
    for code in codes:
        if get_prison(session=session, code=code) is None:
            raise invalid(("query", "prison"), f"unknown prison {code!r}; see /api/v1/prisons")
    after = None
    if cursor:
        made_for, key, last_id = decode_cursor(cursor, 3)
        if made_for != sort:
            raise invalid(
                ("query", "cursor"),
                f"this cursor was made for sort={made_for}; start again without it",
            )
        try:
            after = [search.cursor_key(sort, key), str(last_id)]
        except (TypeError, ValueError) as exc:
            raise invalid(("query", "cursor"), BAD_CURSOR) from exc
    filters = search.DeviceFilters(
        prisons=tuple(codes),
        kind=kind,
        lifecycle=lifecycle,
        online=online,
        health=health,
        drift=drift,
        within=tuple(
            _within(session, principal, "wing", wing)
            + _within(session, principal, "landing", landing)
        ),
        q=q.strip() if q and q.strip() else None,
    )
    page = search.list_devices(
        session=session,
        scope=principal.scope,
        filters=filters,
        sort=sort,
        limit=limit,
        after=after,
        count_cap=COUNT_CAP,
    )
    return DevicePageOut(
        items=[DeviceItem.model_validate(row._asdict()) for row in page.rows],
        count=page.count,
        count_capped=page.capped,
        next_cursor=encode_cursor([sort, *page.last]) if page.last else None,
    )


def _detail(session: DbSession, device_id: str) -> DeviceDetailOut:
    found = service.device_detail(session=session, device_id=device_id)
    assert found is not None
    device, state = found.device, found.state
    return DeviceDetailOut(
        id=device.id,
        serial=device.serial,
        kind=device.kind,  # type: ignore[arg-type]
        prison_code=device.prison_code,
        location=found.path[-1].path if found.path else None,
        lifecycle=device.lifecycle,  # type: ignore[arg-type]
        hostname=device.hostname,
        created_at=device.created_at,
        enrolled_at=device.enrolled_at,
        retired_at=device.retired_at,
        online=state.online if state else False,
        state=state.state if state else "unknown",
        last_seen=state.last_seen if state else None,
        health=state.health if state else "unknown",  # type: ignore[arg-type]
        battery=state.battery if state else None,
        agent_version=state.agent_version if state else None,
        config_version=state.config_version if state else None,
        boot=state.boot if state else None,
        seq=state.seq if state else None,
        last_report_ts=state.last_report_ts if state else None,
        metrics=state.metrics if state else {},
        breadcrumb=breadcrumb(session, found.path[-1] if found.path else None, found.prison),
        events=[DeviceEventOut(ts=e.ts, kind=e.kind, detail=e.detail) for e in found.events],
        audit=[
            AuditEntryOut(id=a.id, ts=a.ts, actor=a.actor, action=a.action, detail=a.detail)
            for a in found.audit
        ],
    )


def _visible_device(session: DbSession, principal: Principal, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    ensure_prison_visible(principal, device.prison_code, "device")
    return device


@router.post(
    "/devices",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceDetailOut,
    responses={
        404: {"description": "The prison is outside your caseload"},
        409: {"description": "That serial is already registered; the body names the device"},
    },
)
def register_device(
    body: DeviceCreate,
    session: DbSession,
    principal: Principal = require("devices:enrol"),
) -> Any:
    """Record a device before it enrols, so its token and location can be prepared."""
    if get_prison(session=session, code=body.prison_code.strip()) is not None:
        ensure_prison_visible(principal, body.prison_code.strip().upper(), "prison")
    try:
        device = service.register_device(
            session=session,
            actor=principal.username,
            serial=body.serial,
            kind=body.kind,
            prison_code=body.prison_code,
            location_path=body.location,
            visible=principal.scope,
        )
    except Refused as exc:
        if exc.status == status.HTTP_409_CONFLICT:
            return JSONResponse({"detail": exc.message, **exc.extra}, status_code=exc.status)
        raise_refused(exc)
    return _detail(session, device.id)


@router.get("/devices/{device_id}", response_model=DeviceDetailOut)
def get_device(
    device_id: str, session: DbSession, principal: Principal = require("devices:read")
) -> DeviceDetailOut:
    """One device: live state, latest metrics, where it is, recent events and audit entries."""
    _visible_device(session, principal, device_id)
    return _detail(session, device_id)


@router.post(
    "/devices/{device_id}/move",
    response_model=DeviceDetailOut,
    responses={409: {"description": "The device is retired; it cannot be moved"}},
)
def move_device(
    device_id: str,
    body: MoveRequest,
    session: DbSession,
    principal: Principal = require("devices:write"),
) -> DeviceDetailOut:
    """Put the device at another location (another prison: estate administrators only)."""
    device = _visible_device(session, principal, device_id)
    try:
        service.move_device(
            session=session,
            actor=principal.username,
            device=device,
            location_path=body.location,
            visible=principal.scope,
            may_change_prison=principal.role == CROSS_PRISON_ROLE,
        )
    except Refused as exc:
        raise_refused(exc)
    return _detail(session, device_id)


@router.post("/devices/{device_id}/retire", response_model=DeviceDetailOut)
def retire_device(
    device_id: str,
    body: RetireRequest,
    session: DbSession,
    issuer: Issuer,
    principal: Principal = require("devices:revoke"),
) -> DeviceDetailOut:
    """Take the device out of service and disable its broker login; retiring again is a no-op."""
    device = _visible_device(session, principal, device_id)
    try:
        service.retire_device(
            session=session,
            issuer=issuer,
            actor=principal.username,
            device=device,
            reason=body.reason,
        )
    except DynsecError as exc:
        log.exception("could not disable broker identity of %s while retiring it", device_id)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the device's broker login could not be disabled ({exc}); nothing was changed, "
            "try again shortly",
        ) from exc
    return _detail(session, device_id)


@router.get("/devices/{device_id}/health", response_model=HealthHistoryOut)
def device_health(
    device_id: str,
    session: DbSession,
    settings: AppSettings,
    principal: Principal = require("devices:read"),
    start: Annotated[
        str, Query(alias="from", description="ISO 8601 time, or relative like -24h, -7d")
    ] = "-24h",
    end: Annotated[str, Query(alias="to", description="ISO 8601 time, 'now' or -1h")] = "now",
    step: Annotated[
        str | None,
        Query(description="Seconds between points, like 30s, 5m, 1h; default from range"),
    ] = None,
) -> HealthHistoryOut:
    """Health metrics of one device over a time range, one point per step."""
    from fleet.ingest.history import HistoryUnavailable, query_health

    _visible_device(session, principal, device_id)
    now = utcnow()
    times = {}
    for name, text in (("from", start), ("to", end)):
        try:
            times[name] = parse_when(text, now)
        except ValueError as exc:
            raise invalid(("query", name), str(exc)) from exc
    if times["from"] >= times["to"]:
        raise invalid(("query", "from"), "must be earlier than 'to'")
    span_s = (times["to"] - times["from"]).total_seconds()
    try:
        step_s = parse_step(step) if step else default_step(span_s)
    except ValueError as exc:
        raise invalid(("query", "step"), str(exc)) from exc
    if span_s / step_s > MAX_POINTS:
        raise invalid(
            ("query", "step"),
            f"{int(span_s // step_s)} points per metric is too many (at most {MAX_POINTS}); "
            f"use a step of at least {int(span_s // MAX_POINTS) + 1}s or a shorter range",
        )
    try:
        series = query_health(
            settings,
            session=session,
            device_id=device_id,
            start=times["from"],
            end=times["to"],
            step_s=step_s,
        )
    except ValueError as exc:
        raise invalid(("query",), str(exc)) from exc
    except HistoryUnavailable as exc:
        log.exception("health history of %s could not be read", device_id)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "health history is unavailable right now (the time-series database did not "
            "answer); try again shortly",
        ) from exc
    return HealthHistoryOut(
        device_id=device_id,
        start=times["from"],
        end=times["to"],
        step_s=step_s,
        series={
            name: [HealthPoint(ts=ts, value=value) for ts, value in points]
            for name, points in series.items()
        },
    )
