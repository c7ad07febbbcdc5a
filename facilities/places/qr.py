"""QR codes that open the fault report form at one place, drawn as SVG on the server."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import segno
from markupsafe import Markup, escape

REPORT_FORM = "/faults/new"


def report_url(base: str, path: str) -> str:
    """The report form with the place filled in, as an absolute address a phone can open."""
    return f"{base.rstrip('/')}{REPORT_FORM}?{urlencode({'location': path})}"


@dataclass(frozen=True)
class QrCode:
    path: str
    name: str
    url: str
    svg: Markup


def qr_svg(url: str, label: str) -> Markup:
    """A QR code for `url` as inline SVG, sized by the page (viewBox only), named for readers."""
    # Error level M survives a scuffed or partly covered print; a border of 4 modules is the
    # quiet zone the standard asks for, so codes cut close together still scan.
    code = segno.make(url, error="m", micro=False)
    drawn = code.svg_inline(scale=1, border=4, omitsize=True, svgclass="places-qr__code")
    named = drawn.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return Markup(named)  # noqa: S704 - segno's own markup; the only text put in is escaped


def sheet(base: str, places: list[tuple[str, str]]) -> list[QrCode]:
    """One QR code per (code, name), each opening the report form at that place."""
    out = []
    for path, name in places:
        url = report_url(base, path)
        out.append(QrCode(path, name, url, qr_svg(url, f"QR code: report a fault at {path}")))
    return out
