"""Finding a place: search by code or name, browse with open faults, QR sheets; caseload-scoped."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError

from facilities.places.qr import qr_svg, report_url
from facilities.places.service import looks_like_code
from fleet.context import Context
from fleet.db import utcnow
from fleet.settings import Settings
from tests.estate.factories import Api, api_for
from tests.facilities.test_fault_reports import Move, logged

HTML = {"accept": "text/html"}


def _fault(ctx: Context, location: str, category: str = "plumbing", status: str = "") -> str:
    """A P3 fault reported an hour ago, cancelled if asked; its reference."""
    cancel: Move = ("cancelled", timedelta(minutes=5), {"note": "duplicate"})
    moves = (cancel,) if status == "cancelled" else ()
    return logged(ctx, location, category, "P3", utcnow() - timedelta(hours=1), moves)


def _page(
    api: Api, url: str, role: str = "facilities", prisons: tuple[str, ...] = ("MDI",)
) -> httpx.Response:
    return api.get(url, role=role, prisons=prisons, headers=HTML)


def _places(html: str) -> list[str]:
    return re.findall(r'<tr class="govuk-table__row" data-place="([^"]+)"', html)


def _open(html: str, place: str) -> int:
    row = html.split(f'data-place="{place}"', 1)[1].split("</tr>", 1)[0]
    return int(re.search(r'data-cell="open">(\d+)<', row).group(1))  # type: ignore[union-attr]


def test_search_by_full_code_partial_code_and_name(api: Api) -> None:
    exact = _page(api, "/places?q=mdi-1-1-001")
    assert exact.status_code == 200
    assert _places(exact.text) == ["MDI-1-1-001"]
    assert 'href="/faults/new?location=MDI-1-1-001"' in exact.text

    landing = _page(api, "/places?q=MDI-1-1")
    assert _places(landing.text) == ["MDI-1-1", "MDI-1-1-001", "MDI-1-1-002", "MDI-1-1-003"]
    assert 'href="/places/MDI-1-1/qr-sheet"' in landing.text

    by_name = _page(api, "/places?q=landing 2")
    assert _places(by_name.text) == ["MDI-1-2", "MDI-2-2"]

    nothing = _page(api, "/places?q=MDI-9")
    assert nothing.status_code == 200
    assert _places(nothing.text) == []
    assert "No place in your prisons matches \u2018MDI-9\u2019" in nothing.text


def test_search_and_places_stay_inside_the_caseload(api: Api) -> None:
    assert _places(_page(api, "/places?q=LEI").text) == []
    assert _places(_page(api, "/places?q=Cell 001").text) == [
        "MDI-1-1-001", "MDI-1-2-001", "MDI-2-1-001", "MDI-2-2-001"
    ]  # fmt: skip
    for url in ("/places/LEI", "/places/LEI-1", "/places/LEI-1-1/qr-sheet"):
        answer = _page(api, url)
        assert answer.status_code == 404, url
        assert "No place in your prisons has the code" in answer.text
    everywhere = _page(api, "/places?q=Cell 001", role="estate-admin", prisons=())
    assert "LEI-1-1-001" in _places(everywhere.text)
    assert _page(api, "/places/LEI-1", role="estate-admin", prisons=()).status_code == 200


def test_the_tree_counts_open_faults_at_and_beneath_each_place(
    api: Api, fault_context: Context
) -> None:
    first = _fault(fault_context, "MDI-1-1-001")
    _fault(fault_context, "MDI-1-1-001", category="heating")
    _fault(fault_context, "MDI-1-2")
    _fault(fault_context, "MDI-1-1-002", status="cancelled")  # closed: not open
    _fault(fault_context, "LEI-1-1-001")

    home = _page(api, "/places")  # one prison in the caseload: its wings straight away
    assert _places(home.text) == ["MDI-1", "MDI-2"]
    assert (_open(home.text, "MDI-1"), _open(home.text, "MDI-2")) == (3, 0)

    wing = _page(api, "/places/MDI-1").text
    assert _places(wing) == ["MDI-1-1", "MDI-1-2"]
    assert (_open(wing, "MDI-1-1"), _open(wing, "MDI-1-2")) == (2, 1)
    assert "Report a fault here" in wing

    landing = _page(api, "/places/MDI-1-1").text
    assert (_open(landing, "MDI-1-1-001"), _open(landing, "MDI-1-1-002")) == (2, 0)
    assert 'href="/places/MDI-1-1/qr-sheet"' in landing

    cell = _page(api, "/places/MDI-1-1-001").text
    assert 'href="/faults/new?location=MDI-1-1-001"' in cell
    assert f'href="/faults/{first}"' in cell
    assert "2 faults here and beneath" in cell
    assert 'href="/faults?status=all&amp;wing=MDI-1-1-001"' in cell

    admin = _page(api, "/places", role="estate-admin", prisons=()).text
    assert _places(admin) == ["LEI", "MDI"]  # Leicester, Moorland: those with places
    assert (_open(admin, "LEI"), _open(admin, "MDI")) == (1, 3)


def test_a_viewer_browses_but_is_not_offered_the_report_form(api: Api) -> None:
    page = _page(api, "/places/MDI-1-1-001", role="viewer")
    assert page.status_code == 200
    assert "Report a fault here" not in page.text
    assert "/faults/new?location=" not in page.text


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/places?q=" + "M" * 65, 400, "Search for at most 64 characters"),
        ("/places/NOT-A-PLACE", 404, "No place in your prisons has the code &#39;NOT-A-PLACE&#39;"),
        ("/places/%3Cscript%3E", 404, "has the code &#39;&lt;script&gt;&#39;"),
        ("/places/" + "X-" * 40, 404, "No place in your prisons has the code"),
        ("/places/MDI-1-1-001/qr-sheet", 400, "MDI-1-1-001 is a cell, not a landing"),
        ("/places/MDI-1/qr-sheet", 400, 'href="/places/MDI-1-2/qr-sheet"'),
        ("/places/MDI/qr-sheet", 400, "MDI is a prison, not a landing"),
    ],
)
def test_garbage_gets_a_clear_answer(api: Api, url: str, status: int, says: str) -> None:
    answer = _page(api, url)
    assert answer.status_code == status, answer.text[:500]
    assert says in answer.text
    assert "govuk-error-summary" in answer.text


def test_qr_sheet_has_one_code_per_cell_opening_the_report_form(api: Api) -> None:
    sheet = _page(api, "/places/MDI-1-1/qr-sheet")
    assert sheet.status_code == 200
    cards = re.findall(
        r'<li class="places-qr" data-place="([^"]+)" data-url="([^"]+)">', sheet.text
    )
    base = str(api.client.base_url).rstrip("/")
    assert cards == [(p, f"{base}/faults/new?location={p}") for p in
                     ("MDI-1-1-001", "MDI-1-1-002", "MDI-1-1-003")]  # fmt: skip
    for path, url in cards:
        assert url == report_url(base, path)
        # The drawn code is exactly the one made for that address, so it encodes it.
        assert str(qr_svg(url, f"QR code: report a fault at {path}")) in sheet.text
    assert sheet.text.count('<svg role="img"') == 3
    assert "/static/estate/css/places-print.css" in sheet.text


def test_qr_codes_point_at_the_configured_public_address(fault_context: Context) -> None:
    settings = fault_context.settings.model_copy(
        update={"public_base_url": "https://estate.example.gov.uk"}
    )
    ctx = Context(settings)
    try:
        with api_for(ctx) as api:
            sheet = _page(api, "/places/MDI-2-2/qr-sheet").text
    finally:
        ctx.close()
    assert 'data-url="https://estate.example.gov.uk/faults/new?location=MDI-2-2-001"' in sheet
    assert str(api.client.base_url) not in sheet.split("<main", 1)[1]


def test_codes_and_names_are_told_apart() -> None:
    assert all(looks_like_code(code) for code in ("MDI-1-1", "1-1-001", "mdi-2"))
    assert not looks_like_code("E-wing")
    assert not looks_like_code("Cell 001")
    assert not looks_like_code("MDI")


def test_the_public_address_setting_refuses_what_a_phone_could_not_open() -> None:
    assert Settings(public_base_url=" https://estate.example.gov.uk/ ").public_base_url == (
        "https://estate.example.gov.uk"
    )
    for bad in ("estate.example.gov.uk", "ftp://estate", "https://estate/?next=x"):
        with pytest.raises(
            ValidationError, match=re.escape("a URL like https://estate.example.gov.uk")
        ):
            Settings(public_base_url=bad)
