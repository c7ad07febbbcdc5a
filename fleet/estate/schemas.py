"""Prisons and locations as the API shows and accepts them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LocationKind = Literal["wing", "landing", "cell", "room"]


class PrisonCountsOut(BaseModel):
    locations: int = Field(description="Locations of any kind recorded for the prison")
    devices_expected: int = Field(description="Cells, each expected to hold one in-cell device")
    devices_enrolled: int = Field(description="Devices enrolled (not registered, retired, revoked)")
    devices_online: int = Field(description="Enrolled devices connected now")
    devices_healthy: int = Field(description="Enrolled devices connected now and reporting ok")


class PrisonOut(BaseModel):
    code: str = Field(description="Prison code from the public register, e.g. MDI")
    name: str = Field(description="Prison name")
    counts: PrisonCountsOut


class WingOut(BaseModel):
    path: str = Field(description="Wing code, e.g. MDI-1")
    name: str
    landings: int = Field(description="Landings on the wing")
    cells: int = Field(description="Cells on the wing's landings")
    devices_enrolled: int = Field(description="Enrolled devices anywhere on the wing")
    devices_online: int = Field(description="Of those, connected now")


class PrisonDetailOut(PrisonOut):
    wings: list[WingOut] = Field(description="Each wing with its counts, ordered by code")


class PrisonList(BaseModel):
    items: list[PrisonOut]
    count: int = Field(description="Prisons listed (only those in your caseload)")
    counts_as_of: datetime | None = Field(
        default=None,
        description="When the counts were taken: they are shared between requests for up to "
        "3 seconds",
    )


class Crumb(BaseModel):
    kind: Literal["prison", "wing", "landing", "cell", "room"]
    code: str = Field(description="Prison code or location path")
    name: str


class LocationOut(BaseModel):
    path: str = Field(description="Location code, unique across the estate, e.g. MDI-1-1-001")
    prison_code: str
    kind: LocationKind
    name: str
    parent: str | None = Field(description="Parent location's path; null under the prison")
    capacity: int = Field(description="People the location holds (cells) or 0")


class LocationPageOut(BaseModel):
    items: list[LocationOut]
    count: int = Field(description="Locations matching the filters, across all pages")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at end")


class LocationDetailOut(LocationOut):
    breadcrumb: list[Crumb] = Field(description="From the prison down to this location")
    children: list[LocationOut] = Field(description="Locations directly beneath, by path")
    devices: int = Field(description="Devices (not retired) here or anywhere beneath")


class LocationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prison_code: str = Field(min_length=2, max_length=8, description="Prison code, e.g. MDI")
    path: str = Field(
        min_length=3,
        max_length=64,
        description="New location's code: the prison code, then '-'-separated parts, "
        "e.g. MDI-1-1-021",
    )
    kind: LocationKind = Field(
        description="wing (under the prison), landing (under a wing), cell (under a landing) "
        "or room (under the prison or a wing)"
    )
    name: str = Field(min_length=1, max_length=200, description="Name people use, e.g. Cell 021")
    parent: str | None = Field(
        default=None,
        max_length=64,
        description="Parent's path; when omitted it is the path without its last part "
        "(MDI-1-1-021 -> MDI-1-1), or the prison for a wing",
    )
    capacity: int | None = Field(
        default=None, ge=0, le=1000, description="People it holds; defaults to 1 for a cell"
    )
