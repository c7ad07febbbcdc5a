"""Faults API: report, find, move through the workflow, attach photos and read them back."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Header, HTTPException, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select

from facilities.attachments.storage import (
    UPLOAD_TYPES,
    LocalDirectoryStorage,
    Unacceptable,
    UnknownKey,
    accept,
)
from facilities.faults import fleet_raised, lifecycle, queries, recurring, service
from facilities.faults.administration import router as administration
from facilities.faults.models import Fault, FaultAttachment
from facilities.faults.schemas import (
    AttachmentOut,
    Category,
    DevicesBackOut,
    FaultCreate,
    FaultDetailOut,
    FaultEventOut,
    FaultItem,
    FaultPageOut,
    MoveRefusedOut,
    Priority,
    RecurringOut,
    Sort,
    Status,
    TransitionRequest,
)
from facilities.faults.workflow import NEXT, IllegalMove
from fleet.api.deps import AppSettings, DbSession, Principal, ensure_prison_visible, require
from fleet.api.errors import invalid
from fleet.api.pagination import BAD_CURSOR, COUNT_CAP, decode_cursor, encode_cursor
from fleet.estate.models import Location
from fleet.estate.routes import raise_refused
from fleet.estate.service import Refused, get_prison, location_by_path

log = logging.getLogger(__name__)
router = APIRouter(tags=["faults"])

MAX_ID_DIGITS = 9  # fault ids are 32-bit; longer numbers cannot name one


def location_paths(session: DbSession, faults: list[Fault]) -> dict[int, str]:
    ids = {f.location_id for f in faults}
    if not ids:
        return {}
    rows = session.execute(select(Location.id, Location.path).where(Location.id.in_(ids)))
    return {row.id: row.path for row in rows}


def _item(fault: Fault, path: str) -> dict[str, Any]:
    return {
        **{c: getattr(fault, c) for c in FaultItem.model_fields if hasattr(Fault, c)},
        "location": path,
        "device": fault.device_id,
        "paused": fault.paused_since is not None,
        "at_risk": fault.at_risk_at is not None,
        "breached": fault.breached_at is not None,
    }


def _attachment_out(fault: Fault, a: FaultAttachment) -> AttachmentOut:
    return AttachmentOut(
        id=a.id,
        content_type=a.content_type,
        size=a.size,
        filename=a.filename,
        uploaded_by=a.uploaded_by,
        created_at=a.created_at,
        url=f"/api/v1/faults/{fault.id}/attachments/{a.id}",
    )


def _detail(session: DbSession, fault: Fault) -> FaultDetailOut:
    events = queries.timeline(session=session, fault=fault)
    devices = None
    if fault.source == "fleet":
        back = fleet_raised.devices_back(session=session, fault=fault)
        devices = DevicesBackOut(online=back.online, total=back.total)
    return FaultDetailOut(
        devices=devices,
        **_item(fault, location_paths(session, [fault])[fault.location_id]),
        next=list(NEXT[fault.status]),
        timeline=[
            FaultEventOut(
                ts=e.ts,
                actor=e.actor,
                action=e.action,
                from_status=e.from_status,
                to_status=e.to_status,
                note=e.note,
                detail=e.detail,
            )
            for e in events
        ],
        attachments=[
            _attachment_out(fault, a) for a in queries.attachments(session=session, fault=fault)
        ],
    )


def _visible_fault(
    session: DbSession, principal: Principal, key: str, *, for_change: bool = False
) -> Fault:
    """By numeric id or by reference; outside the caseload answers as not found.

    `for_change` locks the row, so two people moving one fault at once take turns."""
    stmt = select(Fault)
    if key.isascii() and key.isdigit():
        if len(key) > MAX_ID_DIGITS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "fault not found")
        stmt = stmt.where(Fault.id == int(key))
    else:
        stmt = stmt.where(Fault.reference == key.upper())
    if for_change:
        stmt = stmt.with_for_update()
    fault = session.scalars(stmt).first()
    if fault is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "fault not found")
    ensure_prison_visible(principal, fault.prison_code, "fault")
    return fault


@router.post(
    "/faults",
    status_code=status.HTTP_201_CREATED,
    response_model=FaultDetailOut,
    responses={
        200: {
            "model": FaultDetailOut,
            "description": "A retry with the same Idempotency-Key: the fault reported first",
        }
    },
)
def report_fault(
    body: FaultCreate,
    session: DbSession,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=64,
            pattern=r"^[A-Za-z0-9._:-]+$",
            description="One value per form; a retry with it returns the first fault (200)",
        ),
    ] = None,
    principal: Principal = require("faults:report"),
) -> FaultDetailOut:
    """Log a fault at a place in your caseload; due times come from the targets."""
    try:
        fault, created = service.report_once(
            session=session,
            actor=principal.username,
            idempotency_key=idempotency_key,
            location_path=body.location,
            category=body.category,
            priority=body.priority,
            description=body.description,
            device_id=body.device,
            team=body.team,
            visible=principal.scope,
            blocks_rollout=body.blocks_rollout,
        )
    except Refused as exc:
        raise_refused(exc)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _detail(session, fault)


@router.get("/faults", response_model=FaultPageOut)
def list_faults(
    session: DbSession,
    principal: Principal = require("faults:read"),
    prison: Annotated[list[str] | None, Query(description="Prison code; repeat for more")] = None,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    location: Annotated[
        str | None, Query(max_length=64, description="This place and everything beneath it")
    ] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    breached: bool | None = None,
    at_risk: bool | None = None,
    flagged: Annotated[
        bool | None, Query(alias="recurring", description="Only faults flagged recurring")
    ] = None,
    source: Annotated[
        Literal["staff", "fleet"] | None, Query(description="Reported by people or the fleet")
    ] = None,
    blocks_rollout: bool | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100, description="Text in the reference or description, or a location code"
        ),
    ] = None,
    assignee: Annotated[
        str | None, Query(max_length=64, description="Only faults assigned to this username")
    ] = None,
    sort: Annotated[Sort, Query(description="Order; '-' for descending")] = "-reported_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> FaultPageOut:
    """Faults in your caseload, filtered, sorted and paged."""
    codes = sorted({p.strip().upper() for p in prison or [] if p.strip()})
    for code in codes:
        if get_prison(session=session, code=code) is None:
            raise invalid(("query", "prison"), f"unknown prison {code!r}; see /api/v1/prisons")
    within = None
    if location:
        place = location_by_path(session=session, path=location.strip())
        if place is None or not principal.sees(place.prison_code):
            raise invalid(("query", "location"), f"no location {location.strip().upper()!r}")
        within = place.id
    after = None
    if cursor:
        made_for, key, last_id = decode_cursor(cursor, 3)
        if made_for != sort:
            raise invalid(("query", "cursor"), f"this cursor was made for sort={made_for}")
        try:
            after = [queries.cursor_key(sort, key), int(last_id)]
        except (TypeError, ValueError) as exc:
            raise invalid(("query", "cursor"), BAD_CURSOR) from exc
    filters = queries.FaultFilters(
        prisons=tuple(codes),
        statuses=tuple(status_ or ()),
        priorities=tuple(priority or ()),
        categories=tuple(category or ()),
        within=within,
        device_id=device.strip() if device else None,
        breached=breached,
        at_risk=at_risk,
        recurring=flagged,
        source=source,
        blocks_rollout=blocks_rollout,
        assignee=assignee.strip().lower() if assignee and assignee.strip() else None,
        q=q.strip() if q and q.strip() else None,
    )
    page = queries.list_faults(
        session=session,
        scope=principal.scope,
        filters=filters,
        sort=sort,
        limit=limit,
        after=after,
        count_cap=COUNT_CAP,
    )
    paths = location_paths(session, page.faults)
    return FaultPageOut(
        items=[FaultItem.model_validate(_item(f, paths[f.location_id])) for f in page.faults],
        count=page.count,
        count_capped=page.capped,
        next_cursor=encode_cursor([sort, *page.last]) if page.last else None,
    )


@router.get("/faults/recurring", response_model=list[RecurringOut])
def recurring_faults(
    session: DbSession, principal: Principal = require("faults:read")
) -> list[RecurringOut]:
    """Places with three or more faults of one category in the last 30 days."""
    groups = recurring.recurring_groups(session=session, scope=principal.scope)
    return [RecurringOut.model_validate(g, from_attributes=True) for g in groups]


@router.get("/faults/{key}", response_model=FaultDetailOut)
def get_fault(
    key: str, session: DbSession, principal: Principal = require("faults:read")
) -> FaultDetailOut:
    """One fault, by id or reference, with its timeline, attachments and next moves."""
    return _detail(session, _visible_fault(session, principal, key))


@router.post(
    "/faults/{key}/transitions",
    response_model=FaultDetailOut,
    responses={status.HTTP_409_CONFLICT: {"model": MoveRefusedOut}},
)
def transition(
    key: str,
    body: TransitionRequest,
    session: DbSession,
    principal: Principal = require("faults:write"),
) -> Any:
    """Move the fault on; an illegal move answers 409 with the moves allowed from here."""
    fault = _visible_fault(session, principal, key, for_change=True)
    try:
        lifecycle.transition(
            session=session,
            actor=principal.username,
            fault=fault,
            to=body.to,
            note=body.note,
            reason=body.reason,
            resolution=body.resolution,
            version=body.version,
            assignee=body.assignee,
        )
    except IllegalMove as exc:
        return _move_refused(str(exc), fault)
    except Refused as exc:
        if exc.status == status.HTTP_409_CONFLICT:
            return _move_refused(exc.message, fault)
        raise_refused(exc)
    return _detail(session, fault)


def _move_refused(message: str, fault: Fault) -> JSONResponse:
    body = MoveRefusedOut.model_validate(
        {"detail": message, "status": fault.status, "allowed": list(NEXT[fault.status])}
    )
    return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)


def attachment_storage(settings: AppSettings) -> LocalDirectoryStorage:
    return LocalDirectoryStorage(settings.effective_attachments_dir)


def display_name(name: str | None) -> str:
    """The client's file name for display only: its last part, printable, bounded."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:200] or "attachment"


@router.post(
    "/faults/{key}/attachments", status_code=status.HTTP_201_CREATED, response_model=AttachmentOut
)
def add_attachment(
    key: str,
    session: DbSession,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description=f"{UPLOAD_TYPES}")],
    principal: Principal = require("faults:report"),
) -> AttachmentOut:
    """Attach a photo or PDF; its type is judged by its content, never its name."""
    fault = _visible_fault(session, principal, key)
    data = file.file.read(settings.attachment_max_bytes + 1)
    try:
        content_type = accept(data, settings.attachment_max_bytes)
    except Unacceptable as exc:
        raise HTTPException(exc.status, exc.message) from exc
    stored_key = attachment_storage(settings).put(data)
    attachment = service.add_attachment(
        session=session,
        actor=principal.username,
        fault=fault,
        key=stored_key,
        content_type=content_type,
        size=len(data),
        filename=display_name(file.filename),
    )
    return _attachment_out(fault, attachment)


@router.get("/faults/{key}/attachments/{attachment_id}")
def get_attachment(
    key: str,
    attachment_id: str,
    session: DbSession,
    settings: AppSettings,
    principal: Principal = require("faults:read"),
) -> StreamingResponse:
    """The stored file, with the type found when it was uploaded."""
    fault = _visible_fault(session, principal, key)
    attachment = session.get(FaultAttachment, attachment_id)
    if attachment is None or attachment.fault_id != fault.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "attachment not found")
    try:
        chunks = attachment_storage(settings).stream(attachment.id)
    except UnknownKey as exc:
        log.error("attachment %s of fault %s is missing from storage", attachment.id, fault.id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "attachment not found") from exc
    return StreamingResponse(
        chunks,
        media_type=attachment.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"},
    )


# Targets and alert routes are administered beside the faults, under the same prefix.
router.include_router(administration)
