"""One fault's page: details, SLA clocks, the timeline, photos, and the moves open to it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import FormData

from facilities.faults import fleet_raised, lifecycle, queries
from facilities.faults.models import Fault
from facilities.faults.pages_common import (
    CATEGORY_LABELS,
    CONTROL_RE,
    EVENT_LABELS,
    HOLD_REASONS,
    MOVE_LABELS,
    sla_state,
    sub_navigation,
    templates,
    visible_fault,
)
from facilities.faults.schemas import NOTE_MAX
from facilities.faults.workflow import NEXT, IllegalMove
from fleet.api.deps import DbSession, Principal
from fleet.db import utcnow
from fleet.devices.listing import describe
from fleet.estate.models import Location
from fleet.estate.service import Refused, ancestors
from fleet.web.shell import PagePrincipal, require_page_permission
from fleet.web.templating import CsrfChecked, page_context

router = APIRouter(include_in_schema=False)
# Fields each move's form shows; the workflow decides which of them are required.
MOVE_FIELDS = {
    "triaged": ("note",),
    "assigned": ("assignee", "note"),
    "in_progress": ("note",),
    "on_hold": ("reason", "note"),
    "cleared": ("resolution", "note"),
    "closed": ("note",),
    "cancelled": ("note",),
    "reopened": ("note",),
}
SENT = {
    "new": "Your fault report was sent.",
    "again": "This report had already been sent, so no second fault was made.",
}


class FaultReference(Convertor[str]):
    """Only references (MDI-F-000123) match, so /faults/new, /faults/reports… stay free."""

    regex = "[A-Za-z]{2,5}-[Ff]-[0-9]{1,9}"

    def convert(self, value: str) -> str:
        return value.upper()

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fault_reference", FaultReference())


def _timeline(session: DbSession, fault: Fault) -> list[dict[str, Any]]:
    """Newest first, as the MoJ timeline reads."""
    items = []
    for event in queries.timeline(session=session, fault=fault):
        detail = {k: v for k, v in event.detail.items() if k not in ("resolution",)}
        if "reason" in detail:
            detail["reason"] = HOLD_REASONS.get(detail["reason"], detail["reason"])
        if "category" in detail:
            detail["category"] = CATEGORY_LABELS.get(detail["category"], detail["category"])
        if detail.get("source") == "staff":
            del detail["source"]  # said by the byline; only "fleet" is news
        items.append(
            {
                "label": EVENT_LABELS.get(event.action, event.action),
                "actor": event.actor,
                "ts": event.ts,
                "note": event.note,
                "resolution": event.detail.get("resolution"),
                "detail": describe(detail) if detail else "",
            }
        )
    return list(reversed(items))


def _page(
    request: Request,
    session: DbSession,
    principal: Principal,
    fault: Fault,
    *,
    problem: str = "",
    attempt: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    place = session.get(Location, fault.location_id)
    assert place is not None  # a fault's location is a foreign key
    chain = ancestors(session=session, location=place)
    moves = list(NEXT[fault.status]) if principal.can("faults:write") else []
    devices = None
    if fault.source == "fleet":
        devices = fleet_raised.devices_back(session=session, fault=fault)
    return templates.TemplateResponse(
        request,
        "faults/fault.html",
        page_context(
            request,
            page_title=("Error: " if problem or errors else "") + f"Fault {fault.reference}",
            principal=principal,
            active_nav="faults",
            sub_nav=sub_navigation(""),
            fault=fault,
            place=place,
            place_words=", ".join(loc.name for loc in reversed(chain)),
            sla=sla_state(fault, utcnow()),
            timeline=_timeline(session, fault),
            photos=queries.attachments(session=session, fault=fault),
            moves=[(m, MOVE_LABELS[m], MOVE_FIELDS[m]) for m in moves],
            hold_reasons=HOLD_REASONS,
            people=lifecycle.assignable_people(session=session, prison_code=fault.prison_code)
            if "assigned" in moves
            else [],
            devices=devices,
            problem=problem,
            attempt=attempt or {},
            errors=errors or {},
            note_max=NOTE_MAX,
            sent=SENT.get(request.query_params.get("sent", "")),
            moved=EVENT_LABELS.get(request.query_params.get("moved", "")),
        ),
        status_code=status_code,
    )


@router.get("/faults/{reference:fault_reference}", response_class=HTMLResponse)
def fault_page(
    reference: str, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    require_page_permission(principal, "faults:read")
    return _page(request, session, principal, visible_fault(request, session, principal, reference))


def _attempt(form: FormData) -> dict[str, str]:
    """The move form as typed; text only, bounded, so it can be shown again."""
    fields = ("to", "version", "note", "reason", "resolution", "assignee")
    return {
        name: value[: NOTE_MAX * 2] if isinstance(value := form.get(name), str) else ""
        for name in fields
    }


def _move_errors(attempt: dict[str, str]) -> dict[str, str]:
    errors = {}
    for name in ("note", "resolution", "assignee"):
        if len(attempt[name]) > NOTE_MAX:
            errors[name] = f"The {name} must be {NOTE_MAX:,} characters or fewer"
        elif CONTROL_RE.search(attempt[name]):
            errors[name] = f"The {name} has characters that cannot be stored; retype it"
    if attempt["reason"] and attempt["reason"] not in HOLD_REASONS:
        errors["reason"] = "Choose a reason from the list"
    if not attempt["version"].isascii() or not attempt["version"].isdigit():
        errors["version"] = "The form was damaged; reload the page and try again"
    return errors


@router.post("/faults/{reference:fault_reference}/moves", dependencies=[CsrfChecked])
async def move(
    reference: str, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    """Make one move; a stale or refused move shows the page again and changes nothing."""
    form = await request.form()
    # The row lock below can wait on a twin request; waiting on the event loop would stop that
    # twin from ever committing, so the database work runs on a worker thread.
    return await run_in_threadpool(_move, reference, request, session, principal, form)


def _move(
    reference: str, request: Request, session: Session, principal: Principal, form: FormData
) -> Response:
    require_page_permission(principal, "faults:write")
    found = visible_fault(request, session, principal, reference)
    fault = session.scalars(select(Fault).where(Fault.id == found.id).with_for_update()).one()
    attempt = _attempt(form)
    if attempt["to"] not in MOVE_LABELS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    errors = _move_errors(attempt)
    if errors:
        return _page(
            request, session, principal, fault, attempt=attempt, errors=errors, status_code=422
        )
    try:
        lifecycle.transition(
            session=session,
            actor=principal.username,
            fault=fault,
            to=attempt["to"],
            note=attempt["note"] or None,
            reason=attempt["reason"] or None,
            resolution=attempt["resolution"] or None,
            assignee=attempt["assignee"] or None,
            version=int(attempt["version"][:9]),
        )
    except IllegalMove as exc:
        # The version matched, so this is not a race: the move is simply not open from here.
        why = str(exc)
        problem = f"{why[0].upper()}{why[1:]}. Nothing was saved; choose one of the steps below."
        return _page(request, session, principal, fault, problem=problem, status_code=409)
    except Refused as exc:
        if exc.status == status.HTTP_409_CONFLICT:
            return _page(request, session, principal, fault, problem=_stale(fault), status_code=409)
        field = exc.field or "note"
        return _page(
            request,
            session,
            principal,
            fault,
            attempt=attempt,
            errors={field: exc.message[0].upper() + exc.message[1:]},
            status_code=422,
        )
    return RedirectResponse(
        f"/faults/{fault.reference}?moved={attempt['to']}", status_code=status.HTTP_303_SEE_OTHER
    )


def _stale(fault: Fault) -> str:
    return (
        f"Someone else changed this fault while you had it open; it is now "
        f"{fault.status.replace('_', ' ')}. Nothing you sent was saved. "
        "Check the timeline, then choose again."
    )
