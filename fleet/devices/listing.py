"""The device pages' query string (filters, sort, cursor trail) and how device facts are worded."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from fleet.api.deps import Principal
from fleet.api.pagination import decode_cursor
from fleet.devices.models import DEVICE_KINDS, HEALTH_LEVELS, LIFECYCLES
from fleet.devices.search import SORTS, DeviceFilters, cursor_key
from fleet.estate.service import location_by_path

KIND_LABELS = {
    "in_cell_phone": "In-cell phone",
    "tablet": "Tablet",
    "laptop": "Laptop",
    "kiosk": "Kiosk",
}
HEALTH_LABELS = {
    "ok": "Healthy",
    "warning": "Warning",
    "critical": "Critical",
    "unknown": "Unknown",
}
ONLINE_LABELS = {"yes": "Online", "no": "Offline"}
DRIFT_LABELS = {"yes": "Behind its desired configuration", "no": "On its desired configuration"}
HEALTH_TAG = {
    "ok": "govuk-tag--green",
    "warning": "govuk-tag--yellow",
    "critical": "govuk-tag--red",
    "unknown": "govuk-tag--grey",
}
PAGE_SIZES = (10, 25, 50, 100, 200)
DEFAULT_SIZE = 50
DEFAULT_SORT = "id"
MAX_TRAIL = 200  # earlier pages remembered for "Previous"; beyond this, start again


@dataclass(frozen=True)
class ListQuery:
    """Everything the list page's URL says, already checked; `errors` maps field id to message."""

    prison: str = ""
    wing: str = ""
    kind: str = ""
    online: str = ""
    health: str = ""
    lifecycle: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_SIZE
    cursor: str = ""
    trail: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    drift: str = ""

    def filter_params(self) -> dict[str, str]:
        """Filters and sort as query parameters, leaving out what is at its default."""
        params = {
            "prison": self.prison,
            "wing": self.wing,
            "kind": self.kind,
            "online": self.online,
            "health": self.health,
            "lifecycle": self.lifecycle,
            "drift": self.drift,
            "q": self.q,
        }
        if self.sort != DEFAULT_SORT:
            params["sort"] = self.sort
        if self.limit != DEFAULT_SIZE:
            params["limit"] = str(self.limit)
        return {k: v for k, v in params.items() if v}

    def url(self, path: str = "/devices", **changes: Any) -> str:
        """This query with some fields changed; paging restarts unless the cursor is given."""
        changes.setdefault("cursor", "")
        changes.setdefault("trail", ())
        changed = replace(self, **changes)
        params = changed.filter_params()
        if changed.cursor:
            params["cursor"] = changed.cursor
        if changed.trail:
            params["trail"] = ",".join(changed.trail)
        return path + ("?" + urlencode(params) if params else "")

    def without(self, name: str) -> str:
        return self.url(**{name: ""})

    @property
    def page_number(self) -> int:
        return len(self.trail) + 1


def _choice(params: QueryParams, name: str, allowed: Any, errors: dict[str, str], what: str) -> str:
    value = params.get(name, "").strip()
    if value and value not in allowed:
        errors[name] = f"Choose {what} from the list"
        return ""
    return value


def read_query(
    params: QueryParams, *, session: Session, principal: Principal, prisons: list[str]
) -> tuple[ListQuery, DeviceFilters, list[Any] | None]:
    """The checked query, the service filters it means and the `after` key of its page."""
    errors: dict[str, str] = {}
    prison = params.get("prison", "").strip().upper()
    if prison and prison not in prisons:
        errors["prison"] = "Choose a prison from the list"
        prison = ""
    kind = _choice(params, "kind", DEVICE_KINDS, errors, "a kind")
    online = _choice(params, "online", ONLINE_LABELS, errors, "online or offline")
    health = _choice(params, "health", HEALTH_LEVELS, errors, "a health level")
    lifecycle = _choice(params, "lifecycle", LIFECYCLES, errors, "a lifecycle")
    drift = _choice(params, "drift", DRIFT_LABELS, errors, "a configuration state")
    sort = params.get("sort", DEFAULT_SORT)
    if sort not in SORTS:
        sort = DEFAULT_SORT
    try:
        limit = int(params.get("limit", DEFAULT_SIZE))
    except ValueError:
        limit = DEFAULT_SIZE
    if limit not in PAGE_SIZES:
        limit = DEFAULT_SIZE
    q = params.get("q", "").strip()[:100]
    wing = params.get("wing", "").strip().upper()[:64]
    within: tuple[int, ...] = ()
    if wing:
        place = location_by_path(session=session, path=wing)
        if place is None or not principal.sees(place.prison_code):
            errors["wing"] = f"There is no wing or landing {wing} in your prisons"
        else:
            within = (place.id,)
    trail = tuple(t for t in params.get("trail", "").split(",") if t)[-MAX_TRAIL:]
    cursor = params.get("cursor", "").strip()
    after = None
    if cursor:
        after = _after(cursor, sort)
        if after is None:
            errors["cursor"] = "That page link has expired; this is the first page"
            cursor, trail = "", ()
    query = ListQuery(
        prison, wing, kind, online, health, lifecycle, q, sort, limit, cursor, trail, errors
    )
    query = replace(query, drift=drift)
    filters = DeviceFilters(
        prisons=(prison,) if prison else (),
        kind=kind or None,
        lifecycle=lifecycle or None,
        online={"yes": True, "no": False}.get(online),
        health=health or None,
        drift={"yes": True, "no": False}.get(drift),
        within=within,
        q=q or None,
    )
    return query, filters, after


def _after(cursor: str, sort: str) -> list[Any] | None:
    """The service's `after` key for a cursor from this sort, or None if it is not one."""
    try:
        made_for, key, last_id = decode_cursor(cursor, 3)
        if made_for != sort:
            return None
        return [cursor_key(sort, key), str(last_id)]
    except (RequestValidationError, TypeError, ValueError):
        return None


def relative(when: datetime | None, now: datetime) -> str:
    """How long ago, in words a person reads at a glance."""
    if when is None:
        return "Never"
    seconds = int((now - when).total_seconds())
    if seconds < 60:
        return "Just now" if seconds > -60 else "In the future (clock skew)"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "Just now"


def absolute(when: datetime | None) -> str:
    return when.strftime("%d %b %Y %H:%M:%S UTC") if when else "Never"


def status_tag(online: bool, state: str) -> dict[str, str]:
    """Connection as a GOV.UK tag; the words carry the meaning, the colour only repeats it."""
    if online:
        return {"text": "Online", "classes": "govuk-tag--green"}
    if state == "lost":
        return {"text": "Offline (lost)", "classes": "govuk-tag--orange"}
    if state == "unknown":
        return {"text": "Never reported", "classes": "govuk-tag--grey"}
    return {"text": "Offline", "classes": "govuk-tag--grey"}


def health_tag(health: str) -> dict[str, str]:
    return {"text": HEALTH_LABELS.get(health, health), "classes": HEALTH_TAG.get(health, "")}


def describe(detail: dict[str, Any]) -> str:
    """An event's or audit entry's detail as one line of text."""
    parts = [
        f"{key.replace('_', ' ')}: {value}" for key, value in detail.items() if value is not None
    ]
    return "; ".join(parts) or "No further detail"
