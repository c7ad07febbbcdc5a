"""Gives every HTTP request an id: echoed in X-Request-ID and carried by its log lines."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.ops.logging import log_context

HEADER = "X-Request-ID"
# Ids from a proxy or client are trusted only in a shape that is safe to log and echo.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def request_id_from(header: str | None) -> str:
    """The caller's id when it is sane (1-64 of A-Z a-z 0-9 -), otherwise a fresh one."""
    if header is not None and SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI, so the id is in context for the server's access log line as well."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [value for name, value in scope["headers"] if name == b"x-request-id"]
        header = given[0].decode("latin-1") if given else None
        request_id = request_id_from(header)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)
