"""Prisons and their location trees, limited to the caller's caseload."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Query, status

from fleet.api.deps import DbSession, Principal, ensure_prison_visible, require
from fleet.api.errors import invalid
from fleet.api.pagination import decode_cursor, encode_cursor
from fleet.estate import service
from fleet.estate.cache import estate_counts
from fleet.estate.models import Location, Prison
from fleet.estate.schemas import (
    Crumb,
    LocationCreate,
    LocationDetailOut,
    LocationKind,
    LocationOut,
    LocationPageOut,
    PrisonCountsOut,
    PrisonDetailOut,
    PrisonList,
    PrisonOut,
    WingOut,
)

router = APIRouter(tags=["estate"])


def raise_refused(exc: service.Refused, where: str = "body") -> NoReturn:
    """Answer a service refusal: 422 names the field to fix, other statuses carry the reason."""
    if exc.status == 422:
        loc = (where, exc.field) if exc.field else (where,)
        raise invalid(loc, exc.message) from exc
    raise HTTPException(exc.status, exc.message) from exc


def _prison_out(prison: Prison, counts: service.PrisonCounts) -> dict[str, Any]:
    return {
        "code": prison.code,
        "name": prison.name,
        "counts": PrisonCountsOut(
            locations=counts.locations,
            devices_expected=counts.cells,
            devices_enrolled=counts.devices_enrolled,
            devices_online=counts.devices_online,
            devices_healthy=counts.devices_healthy,
        ),
    }


@router.get("/prisons", response_model=PrisonList)
def list_prisons(session: DbSession, principal: Principal = require("estate:read")) -> PrisonList:
    """Prisons in your caseload with location and device counts."""
    prisons = service.list_prisons(session=session, caseload=principal.scope)
    shared = estate_counts.get(session)
    empty = service.PrisonCounts()
    items = [PrisonOut(**_prison_out(p, shared.value.get(p.code, empty))) for p in prisons]
    return PrisonList(items=items, count=len(items), counts_as_of=shared.as_of)


@router.get("/prisons/{code}", response_model=PrisonDetailOut)
def get_prison(
    code: str, session: DbSession, principal: Principal = require("estate:read")
) -> PrisonDetailOut:
    """One prison with its counts and a summary of each wing."""
    prison = service.get_prison(session=session, code=code)
    if prison is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "prison not found")
    ensure_prison_visible(principal, prison.code, "prison")
    counts = service.prison_counts(session=session, codes=[prison.code])[prison.code]
    wings = service.wing_summaries(session=session, prison_code=prison.code)
    return PrisonDetailOut(
        **_prison_out(prison, counts),
        wings=[WingOut(**vars(w)) for w in wings],
    )


def _location_out(location: Location, parent_path: str | None) -> LocationOut:
    return LocationOut(
        path=location.path,
        prison_code=location.prison_code,
        kind=location.kind,  # type: ignore[arg-type]
        name=location.name,
        parent=parent_path,
        capacity=location.capacity,
    )


def breadcrumb(session: DbSession, location: Location | None, prison: Prison) -> list[Crumb]:
    """Prison > wing > landing > cell, as far down as the location goes."""
    crumbs = [Crumb(kind="prison", code=prison.code, name=prison.name)]
    if location is not None:
        for loc in service.ancestors(session=session, location=location):
            crumbs.append(Crumb(kind=loc.kind, code=loc.path, name=loc.name))  # type: ignore[arg-type]
    return crumbs


@router.get("/locations", response_model=LocationPageOut)
def list_locations(
    session: DbSession,
    principal: Principal = require("estate:read"),
    prison: Annotated[list[str] | None, Query(description="Prison code; repeat for more")] = None,
    kind: Annotated[LocationKind | None, Query(description="Only this kind")] = None,
    parent: Annotated[str | None, Query(description="Only children of this path")] = None,
    q: Annotated[
        str | None, Query(max_length=64, description="Text in the path or name, any case")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> LocationPageOut:
    """Locations ordered by path, filtered and paged."""
    codes = sorted({p.strip().upper() for p in prison or [] if p.strip()})
    unknown = [c for c in codes if service.get_prison(session=session, code=c) is None]
    if unknown:
        raise invalid(("query", "prison"), f"unknown prison {unknown[0]!r}; see /api/v1/prisons")
    parent_id = None
    if parent:
        found = service.location_by_path(session=session, path=parent.strip())
        if found is None or not principal.sees(found.prison_code):
            raise invalid(("query", "parent"), f"no location {parent.strip().upper()!r}")
        parent_id = found.id
    after = str(decode_cursor(cursor, 1)[0]) if cursor else None
    page = service.list_locations(
        session=session,
        caseload=principal.scope,
        prison_codes=codes,
        kind=kind,
        parent_id=parent_id,
        q=q.strip() if q else None,
        after=after,
        limit=limit,
    )
    return LocationPageOut(
        items=[_location_out(loc, parent_path) for loc, parent_path in page.rows],
        count=page.count,
        next_cursor=encode_cursor([page.next_after]) if page.next_after else None,
    )


def _detail(session: DbSession, location: Location) -> LocationDetailOut:
    prison = session.get(Prison, location.prison_code)
    assert prison is not None
    parent = session.get(Location, location.parent_id) if location.parent_id else None
    return LocationDetailOut(
        **_location_out(location, parent.path if parent else None).model_dump(),
        breadcrumb=breadcrumb(session, location, prison),
        children=[
            _location_out(child, location.path)
            for child in service.children(session=session, location=location)
        ],
        devices=service.devices_beneath(session=session, location=location),
    )


@router.get("/locations/{path}", response_model=LocationDetailOut)
def get_location(
    path: str, session: DbSession, principal: Principal = require("estate:read")
) -> LocationDetailOut:
    """One location with its breadcrumb from the prison and its children."""
    location = service.location_by_path(session=session, path=path)
    if location is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "location not found")
    ensure_prison_visible(principal, location.prison_code, "location")
    return _detail(session, location)


@router.post(
    "/locations",
    status_code=status.HTTP_201_CREATED,
    response_model=LocationDetailOut,
    responses={409: {"description": "A location with that path already exists"}},
)
def create_location(
    body: LocationCreate,
    session: DbSession,
    principal: Principal = require("locations:write"),
) -> LocationDetailOut:
    """Add one location under an existing parent (wing > landing > cell; rooms anywhere above)."""
    if service.get_prison(session=session, code=body.prison_code.strip()) is not None:
        ensure_prison_visible(principal, body.prison_code.strip().upper(), "prison")
    try:
        location = service.create_location(
            session=session,
            actor=principal.username,
            prison_code=body.prison_code,
            path=body.path,
            kind=body.kind,
            name=body.name,
            parent_path=body.parent,
            capacity=body.capacity,
        )
    except service.Refused as exc:
        raise_refused(exc)
    return _detail(session, location)
