"""Web pages to find a place fast: search, browse the tree with open faults, print QR sheets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, Response

from facilities.faults.pages_common import (
    CATEGORY_LABELS,
    STATUS_LABELS,
    STATUS_TAGS,
    sub_navigation,
)
from facilities.places import qr
from facilities.places.service import (
    PrisonRow,
    children_of,
    fault_history,
    prisons_with_places,
    search,
)
from fleet.api.deps import AppSettings, DbSession, Principal
from fleet.estate.models import Location, Prison
from fleet.estate.routes import breadcrumb
from fleet.estate.service import children, get_prison, location_by_path
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
KIND_LABELS = {"wing": "Wing", "landing": "Landing", "cell": "Cell", "room": "Room"}
templates.env.globals.update(
    kind_labels=KIND_LABELS,
    category_labels=CATEGORY_LABELS,
    status_labels=STATUS_LABELS,
    status_tags=STATUS_TAGS,
)
READ = "estate:read"
Q_MAX = 64
HISTORY_SHOWN = 20


def _page(
    request: Request,
    principal: Principal,
    template: str,
    status_code: int = status.HTTP_200_OK,
    **extra: Any,
) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        page_context(
            request,
            principal=principal,
            active_nav="faults",
            subnav=sub_navigation("places"),
            can_report=principal.can("faults:report"),
            **extra,
        ),
        status_code=status_code,
    )


def _index(
    request: Request,
    session: DbSession,
    principal: Principal,
    q: str = "",
    error: str = "",
    status_code: int = status.HTTP_200_OK,
) -> Response:
    scope = page_scope(request, principal)
    found = None
    if q and not error:
        found = search(session=session, scope=scope, q=q)
    prisons: list[PrisonRow] = []
    top = None
    if found is None:  # browsing, not searching: start from the prisons in view
        prisons = prisons_with_places(session=session, scope=scope)
        if len(prisons) == 1:
            top = children_of(session=session, prison_code=prisons[0].code, parent_id=None)
    return _page(
        request,
        principal,
        "places/index.html",
        status_code,
        page_title=("Error: " if error else "") + "Find a place",
        q=q,
        error=error,
        found=found,
        prisons=prisons,
        top=top,
    )


@router.get("/places", response_class=HTMLResponse)
def places_page(
    request: Request, session: DbSession, principal: PagePrincipal, q: str = ""
) -> Response:
    """Search by code or name, or browse from the prisons in your caseload down."""
    require_page_permission(principal, READ)
    text = "".join(ch for ch in q if ch.isprintable()).strip()
    if len(text) > Q_MAX:
        return _index(
            request,
            session,
            principal,
            q=text,
            error=f"Search for at most {Q_MAX} characters: a code like MDI-1-1-001 or a name",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    return _index(request, session, principal, q=text)


def _not_found(request: Request, session: DbSession, principal: Principal, code: str) -> Response:
    shown = code[:Q_MAX]
    return _index(
        request,
        session,
        principal,
        q=shown,
        error=f"No place in your prisons has the code {shown!r}. Search for it by code or name",
        status_code=status.HTTP_404_NOT_FOUND,
    )


def _visible(
    request: Request, session: DbSession, principal: Principal, code: str
) -> Prison | Location | None:
    """The prison or location with this code, if the page's scope includes it."""
    scope = page_scope(request, principal)
    code = code.strip().upper()
    if len(code) > Q_MAX:
        return None
    place: Prison | Location | None
    if "-" in code:
        place = location_by_path(session=session, path=code)
        prison_code = place.prison_code if place else None
    else:
        place = get_prison(session=session, code=code)
        prison_code = place.code if place else None
    if place is None or (scope is not None and prison_code not in scope):
        return None
    return place


@router.get("/places/{code}", response_class=HTMLResponse)
def place_page(
    code: str, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    """A prison or location: where it sits, what is beneath it, and its faults."""
    require_page_permission(principal, READ)
    place = _visible(request, session, principal, code)
    if place is None:
        return _not_found(request, session, principal, code)
    if isinstance(place, Prison):
        return _page(
            request,
            principal,
            "places/place.html",
            page_title=place.name,
            prison=place,
            location=None,
            crumbs=breadcrumb(session, None, place),
            rows=children_of(session=session, prison_code=place.code, parent_id=None),
            history=None,
        )
    prison = get_prison(session=session, code=place.prison_code)
    assert prison is not None
    history = fault_history(session=session, location=place, limit=HISTORY_SHOWN)
    return _page(
        request,
        principal,
        "places/place.html",
        page_title=f"{place.name}, {place.path}",
        prison=prison,
        location=place,
        crumbs=breadcrumb(session, place, prison),
        rows=children_of(session=session, prison_code=place.prison_code, parent_id=place.id),
        history=history,
        report_href=qr.report_url("", place.path),
    )


@router.get("/places/{code}/qr-sheet", response_class=HTMLResponse)
def qr_sheet_page(
    code: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: PagePrincipal,
) -> Response:
    """A printable A4 sheet: one QR code per cell or room on a landing, opening the report form."""
    require_page_permission(principal, READ)
    place = _visible(request, session, principal, code)
    if place is None:
        return _not_found(request, session, principal, code)
    if not isinstance(place, Location) or place.kind != "landing":
        landings = []
        if isinstance(place, Location):
            landings = [c for c in children(session=session, location=place) if c.kind == "landing"]
        what = "a prison" if isinstance(place, Prison) else f"a {place.kind}"
        return _page(
            request,
            principal,
            "places/qr_wrong_kind.html",
            status.HTTP_400_BAD_REQUEST,
            page_title="QR sheets are made for one landing",
            place=place,
            what=what,
            landings=landings,
        )
    prison = get_prison(session=session, code=place.prison_code)
    assert prison is not None
    base = settings.public_base_url or str(request.base_url)
    places = [(c.path, c.name) for c in children(session=session, location=place)]
    return _page(
        request,
        principal,
        "places/qr_sheet.html",
        page_title=f"QR codes for {place.name}, {place.path}",
        prison=prison,
        landing=place,
        crumbs=breadcrumb(session, place, prison),
        codes=qr.sheet(base, places),
    )
