"""Jinja2 environment with the GOV.UK Frontend macros, and the static asset mounts."""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader

from fleet.settings import Settings
from fleet.web.shell import chosen_prison, navigation

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.loader = ChoiceLoader(
        [
            FileSystemLoader(str(TEMPLATES)),
            PrefixLoader(
                {"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja", "templates")}
            ),
        ]
    )
    templates.env.globals["service_name"] = "Estate"
    templates.env.globals["navigation"] = navigation
    templates.env.globals["chosen_prison"] = chosen_prison
    templates.env.globals["prison_name"] = prison_name
    return templates


def mount_assets(app: FastAPI, settings: Settings) -> None:
    """Serve govuk-frontend and MoJ Frontend from the npm install (no CDN)."""
    app.mount("/static/estate", StaticFiles(directory=STATIC), name="estate")
    root = Path(settings.web_assets_dir)
    govuk = root / "govuk-frontend" / "dist" / "govuk"
    moj = root / "@ministryofjustice" / "frontend" / "moj"
    if not govuk.is_dir() or not moj.is_dir():
        log.warning(
            "web assets missing under %s; run `make assets` (npm ci) so pages are styled", root
        )
        return
    app.mount("/assets", StaticFiles(directory=govuk / "assets"), name="assets")
    app.mount("/static/govuk", StaticFiles(directory=govuk), name="govuk")
    app.mount("/static/moj", StaticFiles(directory=moj), name="moj")


def csrf_token(request: Request) -> str:
    if "session" not in request.scope:
        return ""  # error pages rendered outside the session middleware carry no forms
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    if "session" not in request.scope:
        return False
    expected = request.session.get("csrf")
    return bool(expected) and secrets.compare_digest(str(expected), submitted or "")


def page_context(request: Request, **extra: Any) -> dict[str, Any]:
    return {"request": request, "csrf_token": csrf_token(request), **extra}


async def require_csrf(request: Request) -> None:
    """Refuse a form post that does not carry this browser's CSRF token."""
    form = await request.form()
    submitted = form.get("csrf_token")
    if not csrf_ok(request, submitted if isinstance(submitted, str) else None):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "The form had expired or did not come from this service. "
            "Go back, reload the page and try again.",
        )


CsrfChecked = Depends(require_csrf)


@lru_cache(maxsize=1)
def _prison_names() -> dict[str, str]:
    from fleet.estate.service import reference_prisons

    return dict(reference_prisons())


def prison_name(code: str | None) -> str:
    """A prison's name from the register, falling back to its code."""
    if not code:
        return ""
    return _prison_names().get(code, code)
