"""Who sees and changes which faults on the pages: caseloads, roles, and photos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.facilities.fault_site import (
    PNG,
    browser_page,
    fault_site,
    seed_fault,
    stored,
    web_client,
)
from tests.web.site import Site


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with fault_site(pg_url, tmp_path) as running:
        yield running


def test_a_photo_is_shown_only_to_people_who_may_see_the_fault(
    site: Site, browser: Browser, tmp_path: Path
) -> None:
    photo = tmp_path / "leak.png"
    photo.write_bytes(PNG)
    context, page = browser_page(browser, site, "facilities", "/faults/new?location=MDI-1-1-002")
    page.get_by_label("Plumbing").check()
    page.get_by_label("P2: urgent").check()
    page.get_by_label("What is wrong?").fill("Water on the floor")
    page.get_by_label("Photo (optional)").set_input_files(str(photo))
    page.get_by_role("button", name="Send report", exact=True).click()
    image = page.get_by_role("img", name="Photo leak.png added by facilities")
    expect(image).to_be_visible()
    # The browser fetched and decoded the stored bytes: a one-pixel image.
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 1", arg=image.element_handle()
    )
    src = image.get_attribute("src")
    assert src is not None
    assert src.startswith("/api/v1/faults/")
    context.close()

    # A viewer of the same prison may look; facilities staff of another prison may not.
    viewer, page = browser_page(browser, site, "mdi.viewer", "/faults/MDI-F-000001")
    expect(page.get_by_role("img", name="Photo leak.png added by facilities")).to_be_visible()
    assert page.request.get(f"{site.base}{src}").body() == PNG
    viewer.close()
    with web_client(site, "lei.facilities") as other:
        assert other.http.get("/faults/MDI-F-000001").status_code == 404
        assert other.http.get(src).status_code == 404
    signed_out = browser.new_context()
    assert signed_out.request.get(f"{site.base}{src}").status == 401
    signed_out.close()


def test_not_an_image_or_too_large_comes_back_with_the_form_kept(site: Site) -> None:
    with web_client(site, "facilities") as client:
        fake = client.report(
            {"description": "Photo of the socket"},
            files={"photo": ("socket.png", b"#!/bin/sh\nrm -rf /\n", "image/png")},
        )
        assert fake.status_code == 422
        assert "content is not a JPEG, PNG or HEIC photo, or a PDF" in fake.text
        assert "Photo of the socket" in fake.text
        huge = client.report(
            {}, files={"photo": ("big.png", PNG + b"\0" * 20_000_000, "image/png")}
        )
        assert huge.status_code == 422
        assert "The file is larger than" in huge.text
    assert stored(site.ctx).faults == 0
    assert not list((site.ctx.settings.effective_attachments_dir).glob("*/*"))


def test_lists_and_pages_keep_to_the_caseload(site: Site) -> None:
    mdi = seed_fault(site.ctx, description="MDI bell")
    lei = seed_fault(site.ctx, location="LEI-1-1-001", actor="admin", description="LEI bell")
    with web_client(site, "lei.facilities") as other:
        listed = other.http.get("/faults")
        assert "LEI bell" in listed.text
        assert "MDI bell" not in listed.text
        assert "MDI bell" not in other.http.get("/faults.csv").text
        assert other.http.get(f"/faults/{mdi}").status_code == 404
        token, _ = other.form_tokens(f"/faults/{lei}")
        refused = other.http.post(
            f"/faults/{mdi}/moves", data={"csrf_token": token, "to": "triaged", "version": "1"}
        )
        assert refused.status_code == 404
        wrong_place = other.report({"location": "MDI-1-1-001"})
        assert wrong_place.status_code == 422
        assert "There is no place MDI-1-1-001 in your prisons" in wrong_place.text
    with web_client(site, "admin") as admin:
        both = admin.http.get("/faults").text
        assert "MDI bell" in both
        assert "LEI bell" in both
    assert stored(site.ctx).versions == (1, 1)


def test_roles_read_where_allowed_and_change_only_with_the_write_permission(
    site: Site, browser: Browser
) -> None:
    reference = seed_fault(site.ctx)
    context, page = browser_page(browser, site, "mdi.viewer", f"/faults/{reference}")
    expect(page.get_by_text("Your role can read this fault but not change it")).to_be_visible()
    expect(page.locator("form.faults-move")).to_have_count(0)
    context.close()
    with web_client(site, "mdi.viewer") as viewer:
        assert viewer.http.get("/faults/new").status_code == 403
        token, _ = viewer.form_tokens("/faults")
        move = viewer.http.post(
            f"/faults/{reference}/moves",
            data={"csrf_token": token, "to": "triaged", "version": "1"},
        )
        assert move.status_code == 403
    # IT support may report a fault but not work it.
    with web_client(site, "support") as support:
        assert support.report({}).status_code == 303
        token, _ = support.form_tokens(f"/faults/{reference}")
        move = support.http.post(
            f"/faults/{reference}/moves",
            data={"csrf_token": token, "to": "triaged", "version": "1"},
        )
        assert move.status_code == 403
    assert stored(site.ctx).versions == (1, 1)


def test_assigning_to_someone_who_cannot_work_the_fault_is_refused(site: Site) -> None:
    reference = seed_fault(site.ctx)
    with web_client(site, "facilities") as client:
        token, _ = client.form_tokens(f"/faults/{reference}")
        client.http.post(
            f"/faults/{reference}/moves",
            data={"csrf_token": token, "to": "triaged", "version": "1"},
        )
        before = stored(site.ctx)
        for person in ("lei.facilities", "mdi.viewer", "nobody.at.all"):
            refused = client.http.post(
                f"/faults/{reference}/moves",
                data={"csrf_token": token, "to": "assigned", "version": "2", "assignee": person},
            )
            assert refused.status_code == 422
            assert "cannot be assigned faults in MDI" in refused.text
        assert stored(site.ctx) == before
