"""Jinja2 environment with the GOV.UK Frontend macros, and the static asset mounts."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader

from fleet.settings import Settings

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


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
    return templates


def mount_assets(app: FastAPI, settings: Settings) -> None:
    """Serve govuk-frontend and MoJ Frontend from the npm install (no CDN)."""
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
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected) and secrets.compare_digest(str(expected), submitted or "")


def page_context(request: Request, **extra: Any) -> dict[str, Any]:
    return {"request": request, "csrf_token": csrf_token(request), **extra}
