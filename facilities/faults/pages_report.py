"""The report-a-fault form: a place picker that works without JavaScript, and no lost work."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from facilities.attachments.storage import UPLOAD_TYPES, Unacceptable, accept
from facilities.faults import service
from facilities.faults.models import CATEGORIES, PRIORITIES
from facilities.faults.pages_common import (
    CATEGORY_LABELS,
    CONTROL_RE,
    sub_navigation,
    templates,
)
from facilities.faults.routes import attachment_storage, display_name
from fleet.api.deps import AppSettings, DbSession, Principal
from fleet.estate.models import Location
from fleet.estate.service import Refused, ancestors, list_locations, location_by_path
from fleet.settings import Settings
from fleet.web.shell import PagePrincipal, require_page_permission
from fleet.web.templating import CsrfChecked, page_context

router = APIRouter(include_in_schema=False)
DESCRIPTION_MAX = 4000
SHORT_MAX = 64
KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
PICK_LIMIT = 25


@dataclass
class ReportForm:
    """What the person typed, kept exactly so the form can come back with it."""

    location: str = ""
    place: str = ""  # the text typed into the place search
    category: str = ""
    priority: str = ""
    description: str = ""
    device: str = ""
    key: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, form: FormData) -> ReportForm:
        def text(name: str, limit: int) -> str:
            value = form.get(name)
            # A file sent where text belongs, or a megabyte of it, is not something to keep.
            return value[: limit * 2] if isinstance(value, str) else ""

        key = text("idempotency_key", 64).strip()
        return cls(
            location=text("location", SHORT_MAX).strip().upper(),
            place=CONTROL_RE.sub("", text("place", 100)).strip()[:100],
            category=text("category", 32),
            priority=text("priority", 2),
            description=text("description", DESCRIPTION_MAX),
            device=text("device", SHORT_MAX).strip(),
            key=key if KEY_RE.fullmatch(key) else new_key(),
        )

    def check(self, session: Session, principal: Principal) -> None:
        """Fill `errors` with a sentence per field a person can act on."""
        if not self.location:
            self.errors["location"] = "Choose where the fault is: search for the place or pick it"
        elif _place(session, principal, self.location) is None:
            self.errors["location"] = f"There is no place {self.location[:64]} in your prisons"
        if self.category not in CATEGORIES:
            self.errors["category"] = "Choose what kind of fault it is"
        if self.priority not in PRIORITIES:
            self.errors["priority"] = "Choose how urgent it is, from P1 to P4"
        described = self.description.strip()
        if not described:
            self.errors["description"] = "Describe what is wrong"
        elif len(self.description) > DESCRIPTION_MAX:
            self.errors["description"] = (
                f"The description must be {DESCRIPTION_MAX:,} characters or fewer; "
                f"it has {len(self.description):,}"
            )
        elif CONTROL_RE.search(self.description):
            self.errors["description"] = (
                "The description has characters that cannot be stored; retype it as plain text"
            )
        if len(self.device) > SHORT_MAX or CONTROL_RE.search(self.device):
            self.errors["device"] = f"A device id is at most {SHORT_MAX} letters and numbers"


def new_key() -> str:
    return secrets.token_urlsafe(18)


def _place(session: Session, principal: Principal, path: str) -> Location | None:
    if len(path) > SHORT_MAX or CONTROL_RE.search(path):
        return None
    place = location_by_path(session=session, path=path)
    return place if place is not None and principal.sees(place.prison_code) else None


def _described(session: Session, place: Location) -> str:
    """'Cell 001, Landing 1, Wing 1' - where it is, in words, innermost first."""
    return ", ".join(loc.name for loc in reversed(ancestors(session=session, location=place)))


def _choices(session: Session, places: list[Location]) -> list[dict[str, Any]]:
    """Places to pick from, each saying whether there is anything inside it to look at."""
    ids = [p.id for p in places]
    parents = set(
        session.scalars(
            select(Location.parent_id)
            .where(Location.parent_id.in_(ids))
            .group_by(Location.parent_id)
        )
    )
    return [
        {
            "path": p.path,
            "text": f"{p.path} - {p.name}",
            "kind": p.kind,
            "inside": p.id in parents,
        }
        for p in places
    ]


def _top_of_tree(session: Session, principal: Principal) -> list[Location]:
    stmt = select(Location).where(Location.parent_id.is_(None)).order_by(Location.path)
    if principal.scope is not None:
        stmt = stmt.where(Location.prison_code.in_(principal.scope))
    return list(session.scalars(stmt.limit(PICK_LIMIT)))


def _render(
    request: Request,
    session: Session,
    principal: Principal,
    form: ReportForm,
    *,
    picking: list[Location] | None = None,
    looking_in: Location | None = None,
    found: int | None = None,
    photo_dropped: bool = False,
    status_code: int = 200,
) -> Response:
    chosen = _place(session, principal, form.location) if form.location else None
    return templates.TemplateResponse(
        request,
        "faults/new.html",
        page_context(
            request,
            page_title=("Error: " if form.errors else "") + "Report a fault",
            principal=principal,
            active_nav="faults",
            sub_nav=sub_navigation("new"),
            form=form,
            chosen=chosen,
            chosen_words=_described(session, chosen) if chosen else "",
            picking=_choices(session, picking) if picking is not None else None,
            looking_in=looking_in,
            found=found,
            photo_dropped=photo_dropped,
            category_choices=[(c, CATEGORY_LABELS[c]) for c in CATEGORIES],
            upload_types=UPLOAD_TYPES,
        ),
        status_code=status_code,
    )


@router.get("/faults/new", response_class=HTMLResponse)
def report_form(
    request: Request, session: DbSession, principal: PagePrincipal, location: str = ""
) -> Response:
    """The empty form, or with the place filled in (the QR codes on landing sheets link here)."""
    require_page_permission(principal, "faults:report")
    form = ReportForm(key=new_key())
    wanted = location.strip().upper()[:SHORT_MAX]
    if wanted and _place(session, principal, wanted) is not None:
        form.location = wanted
        return _render(request, session, principal, form)
    if wanted:
        form.place = wanted
        form.errors["place"] = f"There is no place {wanted} in your prisons; search for it"
    return _render(request, session, principal, form, picking=_top_of_tree(session, principal))


def _pick(
    request: Request, session: Session, principal: Principal, form: ReportForm, data: FormData
) -> Response | None:
    """Answer the picker's buttons (find, look inside, change); None when the form is sent."""
    browse = data.get("browse")
    action = data.get("action")
    if isinstance(browse, str) and browse:
        inside = _place(session, principal, browse.strip().upper())
        if inside is not None:
            stmt = select(Location).where(Location.parent_id == inside.id).order_by(Location.path)
            children = [inside, *session.scalars(stmt.limit(PICK_LIMIT * 8))]
            return _render(request, session, principal, form, picking=children, looking_in=inside)
        form.errors["place"] = "That place is not in your prisons; search again"
        return _render(request, session, principal, form, picking=[], status_code=422)
    if action not in ("find", "change") and not form.location and form.place:
        if _take_typed_code(session, principal, form):
            return None
        action = "find"  # Enter pressed in the search box: show what matches, keep the rest
    if action == "find":
        form.location = ""
        if not form.place:
            return _render(
                request, session, principal, form, picking=_top_of_tree(session, principal)
            )
        page = list_locations(
            session=session, caseload=principal.scope, q=form.place, limit=PICK_LIMIT
        )
        return _render(
            request,
            session,
            principal,
            form,
            picking=[loc for loc, _ in page.rows],
            found=page.count,
        )
    if action == "change":
        form.location = ""
        return _render(request, session, principal, form, picking=_top_of_tree(session, principal))
    return None


def _take_typed_code(session: Session, principal: Principal, form: ReportForm) -> bool:
    """A location code typed in full into the search box is as good as one picked."""
    exact = _place(session, principal, form.place.upper()) if form.place else None
    if exact is not None and not form.location:
        form.location = exact.path
    return exact is not None


async def _photo(data: FormData, settings: Settings) -> tuple[bytes, str, str] | None:
    """(bytes, content type, name) of a chosen photo; None when none was chosen."""
    upload = data.get("photo")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    content = await upload.read(settings.attachment_max_bytes + 1)
    if not content:
        return None
    return content, accept(content, settings.attachment_max_bytes), upload.filename


@router.post("/faults/new", dependencies=[CsrfChecked])
async def report(
    request: Request, session: DbSession, settings: AppSettings, principal: PagePrincipal
) -> Response:
    """Send the report; a retry with the same form key lands on the first fault, never a second."""
    require_page_permission(principal, "faults:report")
    data = await request.form()
    try:
        photo, photo_problem = None, None
        try:
            photo = await _photo(data, settings)
        except Unacceptable as exc:
            photo_problem = exc.message
        # The database work waits on row locks (a twin request holding the prison's fault
        # counter), so it runs on a worker thread: waiting on the event loop would stop the
        # twin from ever committing.
        return await run_in_threadpool(
            _report, request, session, settings, principal, data, photo, photo_problem
        )
    finally:
        await data.close()  # the uploaded photo's spooled temporary file


def _report(
    request: Request,
    session: Session,
    settings: Settings,
    principal: Principal,
    data: FormData,
    photo: tuple[bytes, str, str] | None,
    photo_problem: str | None,
) -> Response:
    form = ReportForm.read(data)
    queued = "application/json" in request.headers.get("accept", "")
    if queued:
        # Sent from the device's queue: no picker to show, only the report or what is wrong.
        _take_typed_code(session, principal, form)
    elif (picked := _pick(request, session, principal, form, data)) is not None:
        return picked
    form.check(session, principal)
    if photo_problem is not None:
        form.errors["photo"] = photo_problem
    if not form.errors:
        try:
            fault, created = service.report_once(
                session=session,
                actor=principal.username,
                idempotency_key=form.key,
                location_path=form.location,
                category=form.category,
                priority=form.priority,
                description=form.description,
                device_id=form.device or None,
                visible=principal.scope,
            )
        except Refused as exc:
            form.errors[exc.field or "location"] = exc.message[0].upper() + exc.message[1:]
    if form.errors:
        if queued:
            return JSONResponse({"errors": form.errors}, status_code=422)
        return _render(
            request,
            session,
            principal,
            form,
            photo_dropped="photo" not in form.errors and photo is not None,
            status_code=422,
        )
    if created and photo is not None:
        content, content_type, name = photo
        service.add_attachment(
            session=session,
            actor=principal.username,
            fault=fault,
            key=attachment_storage(settings).put(content),
            content_type=content_type,
            size=len(content),
            filename=display_name(name),
        )
    url = f"/faults/{fault.reference}?sent={'new' if created else 'again'}"
    if queued:
        return JSONResponse(
            {"reference": fault.reference, "url": url, "created": created},
            status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
