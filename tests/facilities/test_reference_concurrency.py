"""Under concurrency: references stay unique and gap-free, and one move wins a race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.estate.factories import Api
from tests.facilities.builders import fault_body, move, report

CONCURRENT = 20


def test_twenty_concurrent_reports_get_unique_gap_free_references(api: Api) -> None:
    api.auth("facilities")  # made once up front, so the threads share one user

    def one(i: int) -> str:
        cell = f"MDI-{i % 2 + 1}-{i % 4 // 2 + 1}-00{i % 3 + 1}"
        response = report(api, location=cell, description=f"Fault number {i}")
        assert response.status_code == 201, response.text
        return str(response.json()["reference"])

    with ThreadPoolExecutor(CONCURRENT) as pool:
        references = list(pool.map(one, range(CONCURRENT)))
    expected = [f"MDI-F-{n:06d}" for n in range(1, CONCURRENT + 1)]
    assert sorted(references) == expected
    assert report(api, location="LEI-1-1-001").json()["reference"] == "LEI-F-000001"
    assert report(api).json()["reference"] == f"MDI-F-{CONCURRENT + 1:06d}"


def test_racing_moves_on_one_fault_let_exactly_one_through(api: Api) -> None:
    fid = report(api).json()["id"]
    api.auth("facilities")

    def triage(_: int) -> int:
        return move(api, fid, "triaged", note="taking it").status_code

    with ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(triage, range(10)))
    assert codes == [200] + [409] * 9
    timeline = api.get(f"/api/v1/faults/{fid}").json()["timeline"]
    assert [e["action"] for e in timeline] == ["reported", "triaged"]


def test_a_resubmitted_form_creates_one_fault_even_when_the_copies_race(api: Api) -> None:
    api.auth("facilities")
    headers = {"Idempotency-Key": "form-7f3a2c"}

    def submit(_: int) -> tuple[int, str]:
        response = api.post("/api/v1/faults", role="facilities", json=fault_body(), headers=headers)
        return response.status_code, str(response.json()["reference"])

    with ThreadPoolExecutor(5) as pool:
        results = sorted(pool.map(submit, range(5)))
    assert [code for code, _ in results] == [200, 200, 200, 200, 201]
    assert {ref for _, ref in results} == {"MDI-F-000001"}
    retry = api.post("/api/v1/faults", role="facilities", json=fault_body(), headers=headers)
    assert retry.status_code == 200
    assert retry.json()["reference"] == "MDI-F-000001"
    other_user = api.post("/api/v1/faults", role="it-support", json=fault_body(), headers=headers)
    assert other_user.status_code == 201
    assert other_user.json()["reference"] == "MDI-F-000002"
    fresh = report(api)
    assert fresh.json()["reference"] == "MDI-F-000003"
    bad = api.post(
        "/api/v1/faults", json=fault_body(), headers={"Idempotency-Key": "no spaces allowed"}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "header.idempotency-key"
