"""The service header's search box: straight to a device by id or serial, else the device list."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.api.deps import DbSession, Principal
from fleet.devices.models import Device
from fleet.web.shell import PagePrincipal, require_page_permission

router = APIRouter(include_in_schema=False)
MAX_QUERY = 100


def exact_device(*, session: Session, principal: Principal, text: str) -> Device | None:
    """The one device in the caseload whose id or serial is `text` (in any letter case)."""
    if "\x00" in text:
        return None  # no id or serial holds a NUL character, and the database cannot take one
    spellings = {text, text.upper(), text.lower()}
    for spelling in spellings:
        device = session.get(Device, spelling)
        if device is not None and principal.sees(device.prison_code):
            return device
    by_serial = session.scalars(select(Device).where(Device.serial.in_(spellings))).all()
    visible = [d for d in by_serial if principal.sees(d.prison_code)]
    return visible[0] if len(visible) == 1 else None


@router.get("/search")
def search(request: Request, session: DbSession, principal: PagePrincipal) -> Response:
    """An exact id or serial opens the device; anything else lists the devices it matches."""
    require_page_permission(principal, "devices:read")
    text = request.query_params.get("q", "").strip()[:MAX_QUERY]
    if not text:
        return RedirectResponse("/devices", status_code=status.HTTP_303_SEE_OTHER)
    device = exact_device(session=session, principal=principal, text=text)
    target = f"/devices/{device.id}" if device else "/devices?" + urlencode({"q": text})
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
