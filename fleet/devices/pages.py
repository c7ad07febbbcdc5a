"""Web pages for devices: the filterable list, its CSV export, one device, and its live state."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from fleet.api.deps import AppSettings, DbSession, Principal, current_principal_optional
from fleet.api.deps import get_context as app_context
from fleet.api.pagination import COUNT_CAP, encode_cursor
from fleet.db import transaction, utcnow
from fleet.devices import action_pages, charts, search_pages
from fleet.devices.listing import (
    DRIFT_LABELS,
    HEALTH_LABELS,
    KIND_LABELS,
    ONLINE_LABELS,
    PAGE_SIZES,
    ListQuery,
    absolute,
    describe,
    health_tag,
    read_query,
    relative,
    status_tag,
)
from fleet.devices.models import DEVICE_KINDS, HEALTH_LEVELS, LIFECYCLES, Device, DeviceState
from fleet.devices.schemas import default_step
from fleet.devices.search import DeviceFilters, cursor_key, devices_after, list_devices
from fleet.devices.service import DeviceDetail, device_detail
from fleet.estate.service import list_prisons
from fleet.ingest.history import HistoryUnavailable, query_health
from fleet.web.csv_safety import spreadsheet_safe
from fleet.web.shell import PagePrincipal, page_scope, require_page_permission
from fleet.web.templating import make_templates, page_context

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
router.include_router(action_pages.router)
router.include_router(search_pages.router)
templates = make_templates()

LIST_COUNT_CAP = COUNT_CAP
CSV_CAP = 200_000
CSV_BATCH = 2_000
LIVE_INTERVAL_S = 10
# (column heading, sort name or None)
COLUMNS = [
    ("Device", "id"),
    ("Prison", "prison"),
    ("Location", None),
    ("Kind", "kind"),
    ("Status and health", None),
    ("Battery", "battery"),
    ("Last seen", "last_seen"),
]
CSV_FIELDS = (
    "id", "serial", "kind", "prison_code", "location", "lifecycle", "online", "state",
    "last_seen", "health", "battery", "agent_version", "config_version",
)  # fmt: skip
EVENT_LABELS = {
    "online": "Came online",
    "offline": "Went offline",
    "lost": "Lost connection",
    "registered": "Registered",
    "enrolled": "Enrolled",
    "moved": "Moved",
    "retired": "Retired",
}
CHART_BOX = {
    "width": charts.WIDTH,
    "height": charts.HEIGHT,
    "left": charts.PAD_LEFT,
    "right": charts.PAD_RIGHT,
    "top": charts.PAD_TOP,
    "plot_w": charts.WIDTH - charts.PAD_LEFT - charts.PAD_RIGHT,
    "plot_h": charts.HEIGHT - charts.PAD_TOP - charts.PAD_BOTTOM,
}
RANGES = (("24h", "Last 24 hours", 86400, "%H:%M"), ("7d", "Last 7 days", 7 * 86400, "%d %b"))


@dataclass(frozen=True)
class ListRequest:
    scope: tuple[str, ...] | None  # the prison picked in the switcher, else the caseload
    prisons: list[tuple[str, str]]  # (code, name) a person may filter by
    query: ListQuery
    filters: DeviceFilters
    after: list[Any] | None


def _read(request: Request, session: DbSession, principal: Principal) -> ListRequest:
    """The checked query string, within the prisons the person is looking at."""
    scope = page_scope(request, principal)
    prisons = [(p.code, p.name) for p in list_prisons(session=session, caseload=scope)]
    query, filters, after = read_query(
        request.query_params, session=session, principal=principal, prisons=[c for c, _ in prisons]
    )
    return ListRequest(scope, prisons, query, filters, after)


@router.get("/devices", response_class=HTMLResponse)
def device_list(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "devices:read")
    wanted = _read(request, session, principal)
    query, prisons = wanted.query, wanted.prisons
    page = list_devices(
        session=session,
        scope=wanted.scope,
        filters=wanted.filters,
        sort=query.sort,
        limit=query.limit,
        after=wanted.after,
        count_cap=LIST_COUNT_CAP,
    )
    now = utcnow()
    rows = [
        {
            "row": row,
            "kind": KIND_LABELS.get(row.kind, row.kind),
            "status": status_tag(row.online, row.state),
            "health": health_tag(row.health),
            "last_seen": relative(row.last_seen, now),
            "last_seen_at": absolute(row.last_seen),
        }
        for row in page.rows
    ]
    first = (query.page_number - 1) * query.limit + 1 if page.rows else 0
    # The trail lists where each earlier page started ("-" for the first), so Previous works.
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
    return templates.TemplateResponse(
        request,
        "devices/list.html",
        page_context(
            request,
            page_title="Devices"
            + (f" (page {query.page_number})" if query.page_number > 1 else ""),
            principal=principal,
            active_nav="devices",
            query=query,
            prisons=prisons,
            rows=rows,
            count=page.count,
            count_capped=page.capped,
            first=first,
            last=first + len(rows) - 1,
            next_url=next_url,
            previous_url=previous_url,
            headings=_headings(query),
            options=_options(),
            selected=_selected(query, dict(prisons)),
            csv_url=query.url("/devices.csv"),
            csv_cap=CSV_CAP,
        ),
    )


def _headings(query: ListQuery) -> list[dict[str, Any]]:
    """Column headings; sortable ones link to the other direction, and say how they sort now."""
    headings = []
    for text, name in COLUMNS:
        heading: dict[str, Any] = {"text": text, "aria_sort": None, "href": None}
        if name:
            current = query.sort.lstrip("-") == name
            descending = query.sort.startswith("-")
            if current:
                heading["aria_sort"] = "descending" if descending else "ascending"
                heading["href"] = query.url(sort=name if descending else "-" + name)
            else:
                heading["aria_sort"] = "none"
                heading["href"] = query.url(sort=name)
        headings.append(heading)
    return headings


def _options() -> dict[str, list[tuple[str, str]]]:
    return {
        "kind": [(k, KIND_LABELS[k]) for k in DEVICE_KINDS],
        "online": list(ONLINE_LABELS.items()),
        "health": [(h, HEALTH_LABELS[h]) for h in HEALTH_LEVELS],
        "lifecycle": [(lc, lc.capitalize()) for lc in LIFECYCLES],
        "drift": list(DRIFT_LABELS.items()),
        "limit": [(str(n), f"{n} a page") for n in PAGE_SIZES],
    }


def _selected(query: ListQuery, prison_names: dict[str, str]) -> list[dict[str, Any]]:
    """The filters in force, each with a link that removes it (MoJ filter tags)."""
    shown = [
        ("prison", "Prison", prison_names.get(query.prison, query.prison)),
        ("wing", "Wing or landing", query.wing),
        ("kind", "Kind", KIND_LABELS.get(query.kind, "")),
        ("online", "Status", ONLINE_LABELS.get(query.online, "")),
        ("health", "Health", HEALTH_LABELS.get(query.health, "")),
        ("lifecycle", "Lifecycle", query.lifecycle.capitalize()),
        ("drift", "Configuration", DRIFT_LABELS.get(query.drift, "")),
        ("q", "Search", query.q),
    ]
    return [
        {"heading": heading, "text": text, "href": query.without(name)}
        for name, heading, text in shown
        if text
    ]


@router.get("/devices.csv")
def device_csv(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    require_page_permission(principal, "devices:read")
    wanted = _read(request, session, principal)
    query = wanted.query
    problems = {k: v for k, v in query.errors.items() if k != "cursor"}
    if problems:
        return Response(
            "The download was not made: " + "; ".join(problems.values()) + ".\n",
            status_code=status.HTTP_400_BAD_REQUEST,
            media_type="text/plain",
        )
    sessions = app_context(request).sessions
    rows = _csv_rows(sessions, wanted.scope, wanted.filters, query.sort)
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="devices-{stamp}.csv"'},
    )


def _csv_rows(
    sessions: sessionmaker[Session],
    scope: tuple[str, ...] | None,
    filters: DeviceFilters,
    sort: str,
) -> Iterator[str]:
    """Every matching device, read in batches in its own transaction while the body streams."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    written = 0
    after = None
    with transaction(sessions) as session:
        while True:
            rows, last = devices_after(
                session=session,
                scope=scope,
                filters=filters,
                sort=sort,
                limit=min(CSV_BATCH, CSV_CAP - written),
                after=after,
            )
            for row in rows:
                writer.writerow([spreadsheet_safe(getattr(row, f)) for f in CSV_FIELDS])
            written += len(rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if last is None:
                return
            if written >= CSV_CAP:
                log.info("device CSV stopped at %d rows with more to come", written)
                writer.writerow(
                    [f"# stopped at {CSV_CAP:,} devices; more match: narrow the filters"]
                )
                yield buffer.getvalue()
                return
            after = [cursor_key(sort, last[0]), last[1]]


def _visible_detail(session: DbSession, principal: Principal, device_id: str) -> DeviceDetail:
    """The device, or 404 for one that does not exist or is outside the caseload alike."""
    found = device_detail(session=session, device_id=device_id)
    if found is None or not principal.sees(found.device.prison_code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    return found


def live_state(state: DeviceState | None, now: datetime) -> dict[str, Any]:
    """The figures the device page refreshes, as text ready to show."""
    online = bool(state and state.online)
    raw = state.state if state else "unknown"
    metrics = state.metrics if state else {}
    return {
        "online": online,
        "state": raw,
        "status": status_tag(online, raw),
        "health": health_tag(state.health if state else "unknown"),
        "last_seen": state.last_seen.isoformat() if state and state.last_seen else None,
        "last_seen_text": relative(state.last_seen if state else None, now),
        "last_seen_at": absolute(state.last_seen if state else None),
        "agent_version": (state.agent_version if state else "") or "Not reported",
        "config_version": str(state.config_version) if state else "Not reported",
        "metrics": [[name, _metric_text(v)] for name, v in sorted(metrics.items())],
        "checked_at": absolute(now),
    }


def _metric_text(value: Any) -> str:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return charts.fmt(float(value)) if is_number else str(value)


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(
    device_id: str,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    principal: PagePrincipal,
) -> Response:
    require_page_permission(principal, "devices:read")
    found = _visible_detail(session, principal, device_id)
    now = utcnow()
    history, unavailable = [], False
    for key, title, span_s, time_format in RANGES:
        start, step_s = now - timedelta(seconds=span_s), default_step(span_s)
        try:
            series = query_health(
                settings, session=session, device_id=device_id, start=start, end=now, step_s=step_s
            )
        except HistoryUnavailable:
            log.exception("health history of %s could not be read for its page", device_id)
            unavailable = True
            break
        specs = charts.chart_specs(series, found.device.kind)
        drawn = [
            charts.draw(
                spec,
                series.get(spec.name, []),
                start=start,
                end=now,
                step_s=step_s,
                time_format=time_format,
            )
            for spec in specs
        ]
        history.append(
            {"key": key, "title": title, "charts": drawn, "table": _table(specs, series)}
        )
    return templates.TemplateResponse(
        request,
        "devices/device.html",
        page_context(
            request,
            page_title=f"Device {found.device.id}",
            principal=principal,
            active_nav="devices",
            found=found,
            kind=KIND_LABELS.get(found.device.kind, found.device.kind),
            live=live_state(found.state, now),
            live_interval_s=LIVE_INTERVAL_S,
            history=history,
            history_unavailable=unavailable,
            absolute=absolute,
            describe=describe,
            event_labels=EVENT_LABELS,
            box=CHART_BOX,
            panel=action_pages.panel_context(
                session=session,
                principal=principal,
                device=found.device,
                query=request.query_params,
            ),
        ),
    )


def _table(specs: list[charts.MetricSpec], series: dict[str, charts.Points]) -> dict[str, Any]:
    """The charts' points as one table: a row per time, a column per metric."""
    by_time: dict[datetime, dict[str, str]] = {}
    for spec in specs:
        for when, value in series.get(spec.name, []):
            by_time.setdefault(when, {})[spec.name] = charts.fmt(value)
    return {
        "head": [f"{s.title} ({s.unit})" for s in specs],
        "rows": [
            (when.strftime("%d %b %H:%M"), [by_time[when].get(s.name, "no data") for s in specs])
            for when in sorted(by_time)
        ],
    }


@router.get("/devices/{device_id}/live.json")
def device_live(device_id: str, request: Request, session: DbSession) -> JSONResponse:
    principal = current_principal_optional(request, session)
    if principal is None:
        return JSONResponse({"detail": "Sign in to see this device."}, status_code=401)
    require_page_permission(principal, "devices:read")
    device = session.get(Device, device_id)
    if device is None or not principal.sees(device.prison_code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    state = session.get(DeviceState, device_id)
    return JSONResponse(
        {"id": device.id, **live_state(state, utcnow())},
        headers={"Cache-Control": "no-store"},
    )
