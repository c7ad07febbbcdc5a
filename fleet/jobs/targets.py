"""Turning a job's selector into the enrolled devices it targets, within a caseload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from fleet.automation.models import DeviceTag
from fleet.devices.models import Device
from fleet.estate.models import Location
from fleet.estate.service import get_prison, location_by_path, subtree_ids
from fleet.jobs.schemas import Selector
from fleet.rollout.models import PrisonPlan, Programme


class SelectorRefused(Exception):
    """The selector names something that does not exist or cannot be reached."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Target:
    device_id: str
    prison_code: str
    kind: str
    location: str | None


def _visible(scope: Sequence[str] | None, code: str) -> bool:
    return scope is None or code in scope


def _prison_condition(
    session: Session, selector: Selector, scope: Sequence[str] | None
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if scope is not None:
        conds.append(Device.prison_code.in_(scope))
    if selector.prisons:
        codes = sorted({code.strip().upper() for code in selector.prisons})
        for code in codes:
            # Outside the caseload reads as unknown, so a prison's existence does not leak.
            if get_prison(session=session, code=code) is None or not _visible(scope, code):
                raise SelectorRefused("selector.prisons", f"there is no prison {code!r} for you")
        conds.append(Device.prison_code.in_(codes))
    if selector.programmes:
        for programme_id in selector.programmes:
            if session.get(Programme, programme_id) is None:
                raise SelectorRefused(
                    "selector.programmes", f"there is no rollout programme {programme_id}"
                )
        planned = select(PrisonPlan.prison_code).where(
            PrisonPlan.programme_id.in_(selector.programmes)
        )
        conds.append(Device.prison_code.in_(planned))
    return conds


def _wing_condition(
    session: Session, selector: Selector, scope: Sequence[str] | None
) -> ColumnElement[bool] | None:
    if not selector.wings:
        return None
    places: list[Location] = []
    for path in sorted({p.strip().upper() for p in selector.wings}):
        place = location_by_path(session=session, path=path)
        if place is None or not _visible(scope, place.prison_code):
            raise SelectorRefused("selector.wings", f"there is no location {path!r} for you")
        places.append(place)
    return or_(*(Device.location_id.in_(subtree_ids(place.id)) for place in places))


def resolve(*, session: Session, selector: Selector, scope: Sequence[str] | None) -> list[Target]:
    """Every enrolled device the selector matches and the caseload `scope` reaches, by id."""
    conds = [Device.lifecycle == "enrolled", *_prison_condition(session, selector, scope)]
    if selector.kinds:
        conds.append(Device.kind.in_(selector.kinds))
    wings = _wing_condition(session, selector, scope)
    if wings is not None:
        conds.append(wings)
    if selector.device_ids:
        conds.append(Device.id.in_(sorted(set(selector.device_ids))))
    if selector.tags:
        tagged = select(DeviceTag.device_id).where(DeviceTag.tag.in_(selector.tags))
        conds.append(Device.id.in_(tagged))
    rows = session.execute(
        select(Device.id, Device.prison_code, Device.kind, Location.path)
        .outerjoin(Location, Location.id == Device.location_id)
        .where(*conds)
        .order_by(Device.id)
    )
    return [Target(r[0], r[1], r[2], r[3]) for r in rows]


def describe_empty(selector: Selector) -> str:
    """The sentence answered when a selector matches no device."""
    parts = []
    if selector.prisons:
        parts.append("prisons " + ", ".join(selector.prisons))
    if selector.kinds:
        parts.append("kinds " + ", ".join(selector.kinds))
    if selector.wings:
        parts.append("wings " + ", ".join(selector.wings))
    if selector.programmes:
        parts.append("programmes " + ", ".join(str(p) for p in selector.programmes))
    if selector.device_ids:
        parts.append(f"{len(selector.device_ids)} named device(s)")
    if selector.tags:
        parts.append("tags " + ", ".join(selector.tags))
    what = "; ".join(parts) if parts else "no restriction"
    return (
        f"the selector ({what}) matches no enrolled device you can reach; "
        "widen it or check the devices are enrolled"
    )
