"""Fault reports: open faults, time to clear, SLA compliance, recurrences, CSV; caseload-scoped."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import pytest

from facilities.faults import lifecycle, service
from facilities.reports import pages as reports_pages
from fleet.auth.service import create_user
from fleet.context import Context
from fleet.db import transaction, utcnow
from tests.estate.factories import Api

Move = tuple[str, timedelta, dict[str, Any]]
WORKER = "works.team"


def logged(
    ctx: Context,
    location: str,
    category: str,
    priority: str,
    at: datetime,
    moves: tuple[Move, ...] = (),
) -> str:
    """A fault reported at `at` and moved on at the given offsets from it; its reference."""
    with transaction(ctx.sessions) as session:
        fault = service.report_fault(
            session=session,
            actor="tester",
            location_path=location,
            category=category,
            priority=priority,
            description="Seen on rounds",
            now=at,
        )
        for to, after, extra in moves:
            lifecycle.transition(
                session=session, actor="tester", fault=fault, to=to, now=at + after, **extra
            )
        return fault.reference


def cleared_after(
    hours: float, respond_after: timedelta = timedelta(minutes=30)
) -> tuple[Move, ...]:
    """Triaged, assigned and started at `respond_after`, cleared `hours` after the report."""
    return (
        ("triaged", respond_after, {}),
        ("assigned", respond_after + timedelta(minutes=1), {"assignee": WORKER}),
        ("in_progress", respond_after + timedelta(minutes=2), {}),
        ("cleared", timedelta(hours=hours), {"resolution": "Fixed"}),
    )


def seed_history(ctx: Context) -> dict[str, Any]:
    """Faults whose report figures are known in advance (see each line)."""
    now = utcnow()
    day = timedelta(days=1)
    refs: dict[str, Any] = {}
    with transaction(ctx.sessions) as session:
        create_user(session=session, username=WORKER, role="facilities", prisons=[])
    # Cell bell P1 (respond 1 h, clear 4 h): one in time both ways, one late both ways.
    refs["on_time"] = logged(ctx, "MDI-1-1-001", "door_lock_cell_bell", "P1", now - 10 * day,
                             cleared_after(3))  # fmt: skip
    refs["late"] = logged(ctx, "MDI-1-1-002", "door_lock_cell_bell", "P1", now - 9 * day,
                          cleared_after(10, respond_after=timedelta(hours=2)))  # fmt: skip
    # Heating P3 (1 day, 5 days), never touched in 8 days: both targets missed, still open.
    refs["ignored"] = logged(ctx, "MDI-1-2-001", "heating", "P3", now - 8 * day)
    # Plumbing P4 reported yesterday: both targets still ahead, so pending.
    refs["pending"] = logged(ctx, "MDI-2-1-001", "plumbing", "P4", now - day)
    cancel: Move = ("cancelled", timedelta(hours=1), {"note": "duplicate"})
    refs["cancelled"] = logged(ctx, "MDI-2-1-002", "plumbing", "P4", now - 2 * day, (cancel,))
    # The same place and category three times in 30 days: recurring. P4 (5 days, 20 days).
    refs["recurring"] = [
        logged(ctx, "MDI-1-2", "network_point", "P4", now - n * day) for n in (25, 15, 2)
    ]
    refs["lei"] = logged(ctx, "LEI-1-1-001", "heating", "P2", now - 5 * day)
    # Long ago: outside the default 30 days.
    refs["old"] = logged(ctx, "MDI-2-2-001", "heating", "P3", now - 100 * day, cleared_after(48))
    return refs


def _report(api: Api, query: str = "", **who: Any) -> dict[str, Any]:
    answer = api.get(f"/api/v1/fault-reports{query}", **who)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


MDI_USER = {"role": "facilities", "prisons": ("MDI",)}


def test_report_figures_for_a_prison(api: Api, fault_context: Context) -> None:
    refs = seed_history(fault_context)
    body = _report(api, **MDI_USER)
    assert body["prisons"] == ["MDI"]
    assert body["period"]["days"] == 30
    assert {(o["category"], o["count"]) for o in body["open"]} == {
        ("heating", 1), ("plumbing", 1), ("network_point", 3)
    }  # fmt: skip
    assert {o["prison_code"] for o in body["open"]} == {"MDI"}
    assert body["clearance"] == [
        {"category": "door_lock_cell_bell", "cleared": 2, "mean_hours": pytest.approx(6.5)}
    ]
    compliance = {c["category"]: c for c in body["compliance"]}
    door = compliance["door_lock_cell_bell"]
    assert (door["respond_met"], door["respond_missed"], door["respond_pct"]) == (1, 1, 50.0)
    assert (door["clear_met"], door["clear_missed"], door["clear_pct"]) == (1, 1, 50.0)
    assert (compliance["heating"]["respond_pct"], compliance["heating"]["clear_pct"]) == (0.0, 0.0)
    plumbing = compliance["plumbing"]  # the cancelled one is left out, the other pending
    outcomes = ("respond_met", "respond_missed", "clear_met", "clear_missed")
    assert [plumbing[k] for k in outcomes] == [0, 0, 0, 0]
    assert plumbing["respond_pct"] is None
    network = compliance["network_point"]
    assert [network[k] for k in outcomes] == [0, 2, 0, 1]
    assert body["overall"] == {
        "open": 5,
        "cleared": 2,
        "mean_hours_to_clear": 6.5,
        "respond_pct": 20.0,  # 1 of 5 due
        "clear_pct": 25.0,  # 1 of 4 due
    }
    assert body["recurring"] == [
        {
            "location": "MDI-1-2",
            "prison_code": "MDI",
            "category": "network_point",
            "count": 3,
            "references": refs["recurring"],
        }
    ]


def test_period_and_estate_scope(api: Api, fault_context: Context) -> None:
    seed_history(fault_context)
    today = utcnow().date()
    estate = _report(api)  # an estate admin without a caseload
    assert estate["prisons"] is None
    assert estate["overall"]["open"] == 6
    assert ("LEI", "heating", 1) in {
        (o["prison_code"], o["category"], o["count"]) for o in estate["open"]
    }
    long_ago = (today - timedelta(days=120)).isoformat()
    longer = _report(api, f"?from={long_ago}&prison=mdi", **MDI_USER)
    assert longer["period"] == {"first": long_ago, "last": today.isoformat(), "days": 121}
    heating = {c["category"]: c for c in longer["clearance"]}["heating"]
    assert (heating["cleared"], heating["mean_hours"]) == (1, pytest.approx(48))
    old = (today - timedelta(days=110)).isoformat()
    earlier = _report(api, f"?from={old}&to={(today - timedelta(days=90)).isoformat()}")
    assert earlier["recurring"] == []  # recurrence is judged up to the end of the period
    assert [c["category"] for c in earlier["compliance"]] == ["heating"]


def test_caseload_scoping_on_the_api_and_csv(api: Api, fault_context: Context) -> None:
    seed_history(fault_context)
    lei = _report(api, role="viewer", prisons=("LEI",))
    assert lei["prisons"] == ["LEI"]
    assert lei["overall"]["open"] == 1
    assert lei["recurring"] == []
    assert lei["clearance"] == []
    for url in ("/api/v1/fault-reports?prison=LEI", "/api/v1/fault-reports/open.csv?prison=LEI"):
        outside = api.get(url, **MDI_USER)
        assert outside.status_code == 404, url
        assert "LEI" in outside.json()["detail"]
    rows = list(csv.reader(io.StringIO(api.get("/api/v1/fault-reports/open.csv", **MDI_USER).text)))
    assert rows[0] == ["prison_code", "category", "open_now"]
    assert sorted(rows[1:]) == [["MDI", "heating", "1"], ["MDI", "network_point", "3"],
                                ["MDI", "plumbing", "1"]]  # fmt: skip
    assert api.get("/api/v1/fault-reports").status_code == 200
    assert api.client.get("/api/v1/fault-reports").status_code == 401


def test_every_section_exports_as_csv(api: Api, fault_context: Context) -> None:
    refs = seed_history(fault_context)
    answers = {
        s: api.get(f"/api/v1/fault-reports/{s}.csv", **MDI_USER)
        for s in ("clearance", "compliance", "recurring")
    }
    for section, answer in answers.items():
        assert answer.status_code == 200, section
        assert answer.headers["content-type"].startswith("text/csv")
        assert f"faults-{section}-" in answer.headers["content-disposition"]
    clearance = list(csv.reader(io.StringIO(answers["clearance"].text)))
    assert clearance == [["category", "cleared", "mean_hours_to_clear"],
                         ["door_lock_cell_bell", "2", "6.5"]]  # fmt: skip
    compliance = list(csv.reader(io.StringIO(answers["compliance"].text)))
    assert ["heating", "0", "1", "0.0", "0", "1", "0.0"] in compliance
    assert ["plumbing", "0", "0", "", "0", "0", ""] in compliance
    recurring = list(csv.reader(io.StringIO(answers["recurring"].text)))
    assert recurring[1] == ["MDI-1-2", "MDI", "network_point", "3", " ".join(refs["recurring"])]
    assert api.get("/api/v1/fault-reports/everything.csv").status_code == 422


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("?from=yesterday", "query.from", "'yesterday' is not a date; write it like 2026-11-01"),
        ("?to=2026-13-45", "query.to", "'2026-13-45' is not a date"),
        ("?from=2026-06-02&to=2026-06-01", "query.from", "is after the end (2026-06-01)"),
        ("?from=2024-01-01&to=2026-01-01", "query.from", "at most 366 days"),
        ("?to=2999-01-01", "query.to", "cannot end after today"),
        ("?prison=ZZZZ", "query.prison", "unknown prison 'ZZZZ'"),
        ("?prison=" + "A" * 30, "query.prison", "unknown prison 'AAAAAAAA'"),
        ("?from=" + "9" * 41, "query.from", "at most 40 characters"),
    ],
)
def test_bad_periods_and_prisons_are_refused_with_the_field(
    api: Api, query: str, field: str, says: str
) -> None:
    answer = api.get(f"/api/v1/fault-reports{query}")
    assert answer.status_code == 422, answer.text
    error = answer.json()["errors"][0]
    assert error["field"] == field
    assert says in error["message"]


def test_the_reports_page_without_javascript(api: Api, fault_context: Context) -> None:
    refs = seed_history(fault_context)
    page = api.get("/faults/reports", headers={"accept": "text/html"}, **MDI_USER)
    assert page.status_code == 200
    html = page.text
    assert 'data-figure="open">5<' in html
    assert 'data-figure="respond">20.0%<' in html
    for table in ("open-category", "open-prison", "clearance", "compliance", "recurring"):
        assert f'id="table-{table}"' in html
    for chart in ("open-category", "open-prison", "clearance", "compliance"):
        assert f'aria-labelledby="chart-{chart}-title"' in html
    for ref in refs["recurring"]:
        assert f'href="/faults/{ref}"' in html
    assert 'href="/places/MDI-1-2"' in html
    assert "/api/v1/fault-reports/open.csv?prison=MDI&amp;from=" in html
    assert "LEI-F-" not in html

    bad = api.get(
        "/faults/reports?from=soon&to=2026-01-01&prison=LEI",
        headers={"accept": "text/html"},
        **MDI_USER,
    )
    assert bad.status_code == 400
    assert "govuk-error-summary" in bad.text
    assert "&#39;soon&#39; is not a date" in bad.text
    assert 'value="soon"' in bad.text  # what was typed is kept
    assert "Choose one of your prisons" in bad.text


def test_the_page_lists_the_places_that_came_back_most_often_first(
    api: Api, fault_context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_history(fault_context)  # MDI-1-2: network point, 3 times
    now = utcnow()
    worst = [
        logged(fault_context, "MDI-2-2-002", "heating", "P4", now - timedelta(days=n))
        for n in (9, 7, 5, 3)
    ]
    monkeypatch.setattr(reports_pages, "RECURRING_SHOWN", 1)
    html = api.get("/faults/reports", headers={"accept": "text/html"}, **MDI_USER).text
    table = html.split('id="table-recurring"', 1)[1].split("</table>", 1)[0]
    assert "2 recurring faults: the 1 that came back most often; the CSV has them all" in table
    assert 'data-place="MDI-2-2-002"' in table
    assert 'data-place="MDI-1-2"' not in table
    assert all(f'href="/faults/{ref}"' in table for ref in worst)
    assert len(_report(api, **MDI_USER)["recurring"]) == 2
