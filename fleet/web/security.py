"""Browser-facing protections: security headers, session lifetime and revocation, throttling."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.web.models import SessionRevocation

# Pages load only our own scripts and stylesheets; no inline script, no inline style attributes.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
# The API docs page loads Swagger UI from a CDN with inline script, so it keeps its own rules.
_DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path", "") in _DOCS_PATHS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if docs and name == "content-security-policy":
                        continue
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


SESSION_ISSUED_AT = "issued_at"
# Stylesheets, scripts and images need no signed-in user, so they skip the database check.
_STATIC_PATHS = ("/static/", "/assets/")


def revoke_web_sessions(*, session: Session, user_id: int) -> None:
    """End every web sign-in of this user made until now ("sign out everywhere")."""
    row = session.get(SessionRevocation, user_id)
    if row is None:
        session.add(SessionRevocation(user_id=user_id, revoked_at=utcnow()))
    else:
        row.revoked_at = utcnow()
    session.flush()


def web_session_revoked(*, session: Session, user_id: int, issued_at: float) -> bool:
    row = session.get(SessionRevocation, user_id)
    return row is not None and row.revoked_at.timestamp() >= issued_at


class SessionGuard:
    """ASGI middleware ending a signed-in session at its absolute lifetime or once revoked.

    The lifetime counts from sign-in however active the session is. Must sit inside
    SessionMiddleware so that `scope["session"]` is loaded.
    """

    def __init__(
        self,
        app: ASGIApp,
        ctx: Context,
        max_age_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.max_age_s = max_age_s
        self.clock = clock

    def _still_valid(self, user_id: int, issued_at: float) -> bool:
        with transaction(self.ctx.sessions) as session:
            return not web_session_revoked(session=session, user_id=user_id, issued_at=issued_at)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        web = scope.get("session") if scope["type"] == "http" else None
        if web and "user_id" in web and not scope.get("path", "").startswith(_STATIC_PATHS):
            issued = web.get(SESSION_ISSUED_AT)
            user_id = web["user_id"]
            if (
                not isinstance(issued, int | float)
                or not isinstance(user_id, int)
                or self.clock() - issued > self.max_age_s
                or not await anyio.to_thread.run_sync(self._still_valid, user_id, issued)
            ):
                web.clear()
        await self.app(scope, receive, send)


class SignInThrottle:
    """Counts failed sign-ins per account and per client address in a sliding window.

    Kept in process memory: each API process throttles on its own, so with N processes
    an attacker gets at most N times the allowance. Failures are also audited in the
    database, which is where a shared limit would be counted from.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.max_keys = max_keys
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()}", f"addr:{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures.setdefault(key, deque())
        while stamps and now - stamps[0] > self.window_s:
            stamps.popleft()
        return stamps

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(username, address):
                stamps = self._recent(key, now)
                if len(stamps) >= self.max_failures:
                    wait = max(wait, self.window_s - (now - stamps[0]))
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(username, address):
                self._recent(key, now).append(now)
            if len(self._failures) > self.max_keys:
                self._forget_stale(now)

    def _forget_stale(self, now: float) -> None:
        # Guessing many usernames must not grow memory without bound.
        for key in [k for k in self._failures if not self._recent(k, now)]:
            del self._failures[key]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(username, "")[0], None)
