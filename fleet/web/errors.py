"""GOV.UK-style error pages for browsers; the API under /api keeps its JSON errors."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet.api.deps import current_principal_optional, get_context
from fleet.db import transaction
from fleet.web.shell import SignInRequired, sign_in_url
from fleet.web.templating import make_templates, page_context

log = logging.getLogger(__name__)
templates = make_templates()

PAGES = {
    403: ("You do not have permission to see this page", None),
    404: (
        "Page not found",
        "If you typed the web address, check it is correct. If you pasted it, check you "
        "copied the entire address.",
    ),
    500: ("Sorry, there is a problem with the service", "Try again later."),
}


def wants_html(request: Request) -> bool:
    """A browser page request, as opposed to the API, assets or a script's fetch."""
    path = request.url.path
    if path.startswith(("/api/", "/static/", "/assets/")) or path in ("/healthz", "/metrics"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status_code: int, detail: str | None = None) -> Response:
    title, advice = PAGES.get(status_code, PAGES[500])
    principal = None
    try:
        # Best effort: the header shows who is signed in, but an error page must never fail.
        with transaction(get_context(request).sessions) as session:
            principal = current_principal_optional(request, session)
    except Exception:
        log.exception("could not load the signed-in user for the %s page", status_code)
    message = advice
    if status_code == 403:
        message = detail or "Ask your administrator if you need access."
    return templates.TemplateResponse(
        request,
        "error.html",
        page_context(request, page_title=title, title=title, message=message, principal=principal),
        status_code=status_code,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if wants_html(request) and exc.status_code in PAGES:
        return error_page(request, exc.status_code, str(exc.detail))
    return await http_exception_handler(request, exc)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(sign_in_url(exc.next_path), status_code=303)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if wants_html(request):
        return error_page(request, 500)
    return Response(
        '{"detail":"Internal server error; the details are in the server log."}',
        status_code=500,
        media_type="application/json",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(500, _server_error)
