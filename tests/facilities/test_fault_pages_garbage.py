"""Garbage into every fault form and query: a clear answer, and nothing stored changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.facilities.fault_site import WebClient, fault_site, seed_fault, stored, web_client
from tests.web.site import Site

NUL = "bell\x00broken"
REPORT_GARBAGE = [
    ({"location": ""}, "Choose where the fault is"),
    ({"location": "MDI-9-9-999"}, "There is no place MDI-9-9-999 in your prisons"),
    ({"location": "x" * 5000}, "There is no place"),
    ({"location": NUL}, "There is no place"),
    ({"category": "leaky roof"}, "Choose what kind of fault it is"),
    ({"priority": "P5"}, "Choose how urgent it is, from P1 to P4"),
    ({"priority": "P1' OR 1=1"}, "Choose how urgent it is, from P1 to P4"),
    ({"description": "   "}, "Describe what is wrong"),
    (
        {"description": "x" * 4001},
        "The description must be 4,000 characters or fewer; it has 4,001",
    ),
    ({"description": NUL}, "characters that cannot be stored"),
    ({"device": "d" * 65}, "A device id is at most 64"),
    ({"device": NUL}, "A device id is at most 64"),
    ({"device": "NOT-A-DEVICE"}, "No device &#39;NOT-A-DEVICE&#39; in MDI"),
]


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with fault_site(pg_url, tmp_path) as running:
        yield running


@pytest.fixture
def client(site: Site) -> Iterator[WebClient]:
    with web_client(site, "facilities") as signed_in:
        yield signed_in


def test_garbage_reports_come_back_with_a_sentence_and_store_nothing(
    site: Site, client: WebClient
) -> None:
    seed_fault(site.ctx)
    before = stored(site.ctx)
    for fields, sentence in REPORT_GARBAGE:
        answer = client.report(fields)
        assert answer.status_code == 422, (fields, answer.text[:300])
        assert "There is a problem" in answer.text
        assert sentence in answer.text, fields
    # A file where text belongs, a missing CSRF token, a damaged form key.
    token, key = client.form_tokens()
    as_file = client.http.post(
        "/faults/new",
        data={"csrf_token": token, "idempotency_key": key, "location": "MDI-1-1-001"},
        files={"description": ("x.txt", b"text as a file", "text/plain")},
    )
    assert as_file.status_code == 422
    assert "Describe what is wrong" in as_file.text
    forged = client.http.post("/faults/new", data={"location": "MDI-1-1-001"})
    assert forged.status_code == 403
    assert stored(site.ctx) == before
    damaged_key = client.report({"idempotency_key": "not a key; DROP TABLE fault"})
    assert damaged_key.status_code == 303  # a fresh key is used; the report itself was fine
    assert stored(site.ctx).faults == before.faults + 1


def test_the_json_answer_for_queued_reports_names_each_field(client: WebClient) -> None:
    token, key = client.form_tokens()
    answer = client.http.post(
        "/faults/new",
        data={"csrf_token": token, "idempotency_key": key, "priority": "P9"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {"location", "category", "priority", "description"}
    # A queued report whose place was typed in full, never picked, is still a place.
    typed = client.http.post(
        "/faults/new",
        data={
            "csrf_token": token,
            "idempotency_key": key,
            "place": " mdi-1-2-003 ",
            "category": "heating",
            "priority": "P2",
            "description": "Cold",
        },
        headers={"Accept": "application/json"},
    )
    assert typed.status_code == 201
    assert typed.json() == {
        "reference": "MDI-F-000001",
        "url": "/faults/MDI-F-000001?sent=new",
        "created": True,
    }


def test_garbage_moves_are_refused_and_change_nothing(site: Site, client: WebClient) -> None:
    reference = seed_fault(site.ctx)
    token, _ = client.form_tokens(f"/faults/{reference}")
    before = stored(site.ctx)
    cases = [
        ({"to": "exploded"}, 404, "Page not found"),
        ({"to": "closed"}, 409, "A reported fault cannot move to closed"),
        ({"to": "triaged", "version": "abc"}, 422, "The form was damaged"),
        ({"to": "triaged", "version": "99999999999999999999"}, 409, "Someone else changed"),
        ({"to": "triaged", "version": "-1"}, 422, "The form was damaged"),
        ({"to": "triaged", "note": "n" * 2001}, 422, "The note must be 2,000 characters"),
        ({"to": "triaged", "note": NUL}, 422, "cannot be stored"),
        ({"to": "cancelled"}, 422, "A cancelled fault needs a note saying why"),
    ]
    for fields, code, sentence in cases:
        data = {"csrf_token": token, "version": "1", **fields}
        answer = client.http.post(f"/faults/{reference}/moves", data=data)
        assert answer.status_code == code, (fields, answer.text[:300])
        assert sentence in answer.text, fields
    assert client.http.post(f"/faults/{reference}/moves", data={"to": "triaged"}).status_code == 403
    assert client.http.get("/faults/MDI-F-999999").status_code == 404
    assert client.http.get("/faults/XX-F-1").status_code == 404
    assert stored(site.ctx) == before
    # On hold needs a reason from the list.
    client.http.post(
        f"/faults/{reference}/moves", data={"csrf_token": token, "to": "triaged", "version": "1"}
    )
    client.http.post(
        f"/faults/{reference}/moves", data={"csrf_token": token, "to": "assigned", "version": "2"}
    )
    held = stored(site.ctx)
    for reason in ("", "holiday"):
        answer = client.http.post(
            f"/faults/{reference}/moves",
            data={"csrf_token": token, "to": "on_hold", "version": "3", "reason": reason},
        )
        assert answer.status_code == 422
        assert "reason" in answer.text
    assert stored(site.ctx) == held


def test_garbage_in_the_list_query_is_answered_not_crashed(site: Site, client: WebClient) -> None:
    seed_fault(site.ctx)
    for query, sentence in [
        ("status=burning", "Choose a status from the list"),
        ("category=%00", "Choose a category from the list"),
        ("priority=P0", "Choose a priority from the list"),
        ("wing=MDI-99", "There is no wing or landing MDI-99 in your prisons"),
        ("wing=%00%01", ""),
        ("cursor=not-a-cursor", "That page link has expired"),
        ("q=%00%27%22%3Cscript%3E", ""),
        ("sort=password", ""),
        ("breached=maybe", ""),
    ]:
        answer = client.http.get(f"/faults?{query}")
        assert answer.status_code == 200, query
        assert sentence in answer.text, query
        assert "<script>" not in answer.text
    bad_csv = client.http.get("/faults.csv?priority=P0")
    assert bad_csv.status_code == 400
    assert "Choose a priority from the list" in bad_csv.text
