"""Browser-facing security: headers, CSRF on forms, sign-in throttling, session lifetime."""

from __future__ import annotations

import json
import time
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import update

from fleet.auth.models import User
from fleet.db import transaction
from fleet.web.security import SignInThrottle
from tests.web.site import PASSWORD, Site, running_site


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        yield running


@contextmanager
def signed_in_client(site: Site, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.base, timeout=10) as client:
        token = csrf_of(client, "/sign-in")
        answer = client.post(
            "/sign-in", data={"username": username, "password": PASSWORD, "csrf_token": token}
        )
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    return page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_pages_and_the_api_carry_the_security_headers(site: Site) -> None:
    with httpx.Client(base_url=site.base, timeout=10) as client:
        for path in ("/sign-in", "/api/v1/prisons", "/static/estate/live.js"):
            headers = client.get(path).headers
            csp = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp, path
            assert "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp, path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "same-origin", path
        cookie = httpx.get(f"{site.base}/sign-in", timeout=10).headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        # Not Secure outside production, where the site may be served over plain HTTP.
        assert "secure" not in cookie


def test_the_pages_need_no_inline_script(site: Site) -> None:
    with signed_in_client(site, "admin") as client:
        for path in ("/estate", "/prisons/MDI", "/attention", "/faults", "/sign-out"):
            html = client.get(path).text
            for chunk in html.split("<script")[1:]:
                assert chunk.lstrip().startswith(("src=", 'type="module" src=')), (path, chunk)
            assert " style=" not in html, path


def test_a_form_posted_without_its_csrf_token_is_refused(site: Site) -> None:
    with signed_in_client(site, "rollout") as client:
        choose = client.post("/prison", data={"prison": "MDI"})
        assert choose.status_code == 403
        forged = client.post("/prison", data={"prison": "MDI", "csrf_token": "guessed"})
        assert forged.status_code == 403
        sign_out = client.post("/sign-out", data={})
        assert sign_out.status_code == 403
        assert client.get("/estate").status_code == 200  # still signed in
        token = csrf_of(client, "/sign-out")
        assert client.post("/sign-out", data={"csrf_token": token}).status_code == 303
        assert client.get("/estate").status_code == 303  # now signed out


def _attempt(client: httpx.Client, username: str, password: str) -> httpx.Response:
    token = csrf_of(client, "/sign-in")
    return client.post(
        "/sign-in", data={"username": username, "password": password, "csrf_token": token}
    )


def test_sign_in_is_throttled_per_account(site: Site) -> None:
    with httpx.Client(base_url=site.base, timeout=10) as client:
        for _ in range(5):
            assert "not right" in _attempt(client, "support", "wrong password").text
        blocked = _attempt(client, "support", PASSWORD)
        assert blocked.status_code == 400
        assert "Too many failed attempts" in blocked.text
        # Another account from another address is unaffected.
        other = _attempt(client, "facilities", PASSWORD)
        assert other.status_code == 400  # same address: the address limit applies too
        assert "Too many failed attempts" in other.text


def test_throttle_counts_accounts_and_addresses_separately_and_forgets() -> None:
    now = [1000.0]
    throttle = SignInThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.retry_after("alice", "10.0.0.9") > 0  # the account is locked anywhere
    assert throttle.retry_after("bob", "10.0.0.1") > 0  # so is the address, for anyone
    assert throttle.retry_after("bob", "10.0.0.2") == 0
    now[0] += 61
    assert throttle.retry_after("alice", "10.0.0.1") == 0


def test_throttle_forgets_stale_entries_when_it_holds_many() -> None:
    now = [1000.0]
    throttle = SignInThrottle(max_failures=3, window_s=60, clock=lambda: now[0], max_keys=4)
    throttle.failed("alice", "10.0.0.1")
    throttle.failed("bob", "10.0.0.2")
    now[0] += 61
    throttle.failed("carol", "10.0.0.3")
    assert set(throttle._failures) == {"user:carol", "addr:10.0.0.3"}


def _forged_session_cookie(secret: str, data: dict[str, object]) -> str:
    payload = b64encode(json.dumps(data).encode())
    return TimestampSigner(secret).sign(payload).decode()


def test_a_session_ends_at_its_absolute_lifetime(site: Site) -> None:
    settings = site.ctx.settings
    with transaction(site.ctx.sessions) as session:
        user_id = session.query(User.id).filter(User.username == "admin").scalar()
    fresh = {"user_id": user_id, "issued_at": int(time.time())}
    stale = {"user_id": user_id, "issued_at": int(time.time()) - settings.session_max_age_s - 5}
    unstamped = {"user_id": user_id}
    for data, expected in ((fresh, 200), (stale, 303), (unstamped, 303)):
        cookie = _forged_session_cookie(settings.secret_key, data)
        with httpx.Client(base_url=site.base, timeout=10) as client:
            client.cookies.set("estate_session", cookie)
            assert client.get("/estate").status_code == expected, data


def test_a_deactivated_users_session_stops_working(site: Site) -> None:
    with signed_in_client(site, "support") as client:
        assert client.get("/attention").status_code == 200
        with transaction(site.ctx.sessions) as session:
            session.execute(update(User).where(User.username == "support").values(active=False))
        answer = client.get("/attention")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sign-in")


def test_signing_out_everywhere_ends_the_other_sessions_too(site: Site) -> None:
    with signed_in_client(site, "rollout") as laptop, signed_in_client(site, "rollout") as tablet:
        assert tablet.get("/estate").status_code == 200
        assert tablet.get("/api/v1/prisons").status_code == 200
        token = csrf_of(laptop, "/sign-out")
        assert laptop.post("/sign-out-everywhere", data={}).status_code == 403
        done = laptop.post("/sign-out-everywhere", data={"csrf_token": token})
        assert done.status_code == 303
        for client in (laptop, tablet):
            answer = client.get("/estate")
            assert answer.status_code == 303, "a revoked session still works"
            assert client.get("/api/v1/prisons").status_code == 401
    with signed_in_client(site, "rollout") as again:
        assert again.get("/estate").status_code == 200  # signing in afresh works
