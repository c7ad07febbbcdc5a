"""Fault pages: open faults for the prisons shown, their CSV, and the faults assigned to me."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import QueryParams

from facilities.faults import pages_fault, pages_report, queries
from facilities.faults.models import CATEGORIES, PRIORITIES
from facilities.faults.pages_common import (
    CATEGORY_LABELS,
    CONTROL_RE,
    OPEN,
    STATUS_LABELS,
    relative_due,
    sla_state,
    sub_navigation,
    templates,
)
from facilities.faults.queries import SORTS, FaultFilters, cursor_key
from facilities.faults.routes import location_paths
from fleet.api.deps import DbSession, Principal
from fleet.api.deps import get_context as app_context
from fleet.api.pagination import decode_cursor, encode_cursor
from fleet.db import transaction, utcnow
from fleet.estate.service import list_locations, location_by_path
from fleet.web.csv_safety import spreadsheet_safe
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import page_context

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
CSV_BATCH = 2_000
MAX_TRAIL = 200
SORT_LABELS = {
    "-reported_at": "Newest first",
    "reported_at": "Oldest first",
    "priority": "Most urgent first",
    "due_clear_at": "Due soonest first",
    "reference": "Reference",
}
STATUS_CHOICES = {"open": "Open (not yet cleared)", **STATUS_LABELS, "all": "Any status"}
CSV_FIELDS = (
    "reference", "prison_code", "location", "category", "priority", "status", "sla",
    "description", "reporter", "assignee", "team", "reported_at", "due_respond_at",
    "due_clear_at", "cleared_at", "closed_at", "recurring", "source",
)  # fmt: skip


@dataclass(frozen=True)
class FaultQuery:
    """The list's checked query string; `errors` maps a field to a sentence to show."""

    status: str = "open"
    category: str = ""
    priority: str = ""
    wing: str = ""
    breached: bool = False
    q: str = ""
    sort: str = "-reported_at"
    cursor: str = ""
    trail: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)

    def url(self, path: str = "/faults", **changes: Any) -> str:
        """This query with some fields changed; paging restarts unless a cursor is given."""
        changes.setdefault("cursor", "")
        changes.setdefault("trail", ())
        changed = replace(self, **changes)
        params = {
            "status": "" if changed.status == "open" else changed.status,
            "category": changed.category,
            "priority": changed.priority,
            "wing": changed.wing,
            "breached": "yes" if changed.breached else "",
            "q": changed.q,
            "sort": "" if changed.sort == "-reported_at" else changed.sort,
            "cursor": changed.cursor,
            "trail": ",".join(changed.trail),
        }
        shown = {k: v for k, v in params.items() if v}
        return path + ("?" + urlencode(shown) if shown else "")

    @property
    def page_number(self) -> int:
        return len(self.trail) + 1


def read_query(
    params: QueryParams, *, session: Session, principal: Principal
) -> tuple[FaultQuery, FaultFilters, list[Any] | None]:
    """The checked query, the service filters it means, and the `after` key of its page."""
    errors: dict[str, str] = {}

    def choice(name: str, allowed: Any, what: str, default: str = "") -> str:
        value = params.get(name, default).strip()
        if value and value not in allowed:
            errors[name] = f"Choose {what} from the list"
            return default
        return value

    wanted = choice("status", STATUS_CHOICES, "a status", "open")
    category = choice("category", CATEGORIES, "a category")
    priority = choice("priority", PRIORITIES, "a priority")
    sort = params.get("sort", "-reported_at")
    sort = sort if sort in SORTS else "-reported_at"
    wing = CONTROL_RE.sub("", params.get("wing", "")).strip().upper()[:64]
    within = None
    if wing:
        place = location_by_path(session=session, path=wing)
        if place is None or not principal.sees(place.prison_code):
            errors["wing"] = f"There is no wing or landing {wing} in your prisons"
            wing = ""
        else:
            within = place.id
    after, cursor = None, params.get("cursor", "").strip()
    trail = tuple(t for t in params.get("trail", "").split(",") if t)[-MAX_TRAIL:]
    if cursor:
        after = _after(cursor, sort)
        if after is None:
            errors["cursor"] = "That page link has expired; this is the first page"
            cursor, trail = "", ()
    breached = params.get("breached") == "yes"
    q = " ".join(CONTROL_RE.sub("", params.get("q", "")).split())[:100]
    query = FaultQuery(wanted, category, priority, wing, breached, q, sort, cursor, trail, errors)
    statuses = {"open": OPEN, "all": ()}.get(wanted, (wanted,))
    filters = FaultFilters(
        statuses=tuple(statuses),
        categories=(category,) if category else (),
        priorities=(priority,) if priority else (),
        within=within,
        breached=True if breached else None,
        q=q or None,
    )
    return query, filters, after


def _after(cursor: str, sort: str) -> list[Any] | None:
    try:
        made_for, key, last_id = decode_cursor(cursor, 3)
        if made_for != sort:
            return None
        return [cursor_key(sort, key), int(last_id)]
    except Exception:  # any cursor we did not make is simply not a page we can continue
        return None


def _rows(session: Session, faults: list[Any]) -> list[dict[str, Any]]:
    paths = location_paths(session, faults)
    now = utcnow()
    return [
        {
            "fault": f,
            "location": paths[f.location_id],
            "sla": sla_state(f, now),
            "due": relative_due(f.due_clear_at, now),
        }
        for f in faults
    ]


def _wings(session: Session, scope: tuple[str, ...] | None) -> list[tuple[str, str]]:
    page = list_locations(session=session, caseload=scope, kind="wing", limit=200)
    return [(loc.path, f"{loc.path} - {loc.name}") for loc, _ in page.rows]


@router.get("/faults", response_class=HTMLResponse)
def open_faults(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "faults:read")
    scope = page_scope(request, principal)
    query, filters, after = read_query(request.query_params, session=session, principal=principal)
    page = queries.list_faults(
        session=session, scope=scope, filters=filters, sort=query.sort, limit=PAGE_SIZE, after=after
    )
    next_url = (
        query.url(
            cursor=encode_cursor([query.sort, *page.last]),
            trail=(*query.trail, query.cursor or "-"),
        )
        if page.last
        else None
    )
    previous_url = None
    if query.page_number > 1:
        earlier = query.trail[-1]
        previous_url = query.url(cursor="" if earlier == "-" else earlier, trail=query.trail[:-1])
    first = (query.page_number - 1) * PAGE_SIZE + 1 if page.faults else 0
    return templates.TemplateResponse(
        request,
        "faults/list.html",
        page_context(
            request,
            page_title="Open faults" + (f" (page {query.page_number})" if first > 1 else ""),
            principal=principal,
            active_nav="faults",
            sub_nav=sub_navigation("open"),
            query=query,
            rows=_rows(session, page.faults),
            count=page.count,
            first=first,
            last=first + len(page.faults) - 1,
            next_url=next_url,
            previous_url=previous_url,
            wings=_wings(session, scope),
            status_choices=STATUS_CHOICES,
            sort_labels=SORT_LABELS,
            category_choices=[(c, CATEGORY_LABELS[c]) for c in CATEGORIES],
            csv_url=query.url("/faults.csv"),
            can_report=principal.can("faults:report"),
        ),
    )


@router.get("/faults.csv")
def faults_csv(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "faults:read")
    query, filters, _ = read_query(request.query_params, session=session, principal=principal)
    problems = {k: v for k, v in query.errors.items() if k != "cursor"}
    if problems:
        return Response(
            "The download was not made: " + "; ".join(problems.values()) + ".\n",
            status_code=400,
            media_type="text/plain",
        )
    rows = _csv_rows(
        app_context(request).sessions, page_scope(request, principal), filters, query.sort
    )
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="faults-{stamp}.csv"'},
    )


def _csv_rows(
    sessions: sessionmaker[Session],
    scope: tuple[str, ...] | None,
    filters: FaultFilters,
    sort: str,
) -> Iterator[str]:
    """Every matching fault, read in batches in its own transaction while the body streams."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    after = None
    with transaction(sessions) as session:
        while True:
            page = queries.list_faults(
                session=session,
                scope=scope,
                filters=filters,
                sort=sort,
                limit=CSV_BATCH,
                after=after,
            )
            for row in _rows(session, page.faults):
                fault = row["fault"]
                values = {"location": row["location"], "sla": row["sla"]["text"]}
                writer.writerow(
                    [spreadsheet_safe(values.get(f, getattr(fault, f, None))) for f in CSV_FIELDS]
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if page.last is None:
                return
            after = [cursor_key(sort, page.last[0]), page.last[1]]


@router.get("/faults/mine", response_class=HTMLResponse)
def my_faults(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "faults:read")
    page = queries.list_faults(
        session=session,
        scope=page_scope(request, principal),
        filters=FaultFilters(statuses=OPEN, assignee=principal.username),
        sort="due_clear_at",
        limit=500,
    )
    return templates.TemplateResponse(
        request,
        "faults/mine.html",
        page_context(
            request,
            page_title="My assigned faults",
            principal=principal,
            active_nav="faults",
            sub_nav=sub_navigation("mine"),
            rows=_rows(session, page.faults),
            count=page.count,
        ),
    )


# The report form and /faults/mine come before /faults/{reference}, which matches references only.
router.include_router(pages_report.router)
router.include_router(pages_fault.router)
