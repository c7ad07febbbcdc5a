"""The device page's remote actions: the panel, the confirmation step, sending, the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from fleet.api.deps import DbSession, Principal, get_context
from fleet.commands import service
from fleet.commands.models import DeviceCommand
from fleet.commands.routes import publish_commands
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from fleet.signing import load_signing_key
from fleet.web.shell import PagePrincipal, require_page_permission
from fleet.web.templating import CsrfChecked, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()

HISTORY_PAGE_SIZE = 10
# What the device page offers, in the order shown; ping stays an API-only check.
PANEL_ACTIONS = ("reboot", "restart_agent", "lock", "collect_diagnostics", "refresh_config")
ACTION_LABELS = {
    "reboot": "Reboot",
    "restart_agent": "Restart agent",
    "lock": "Lock",
    "collect_diagnostics": "Collect diagnostics",
    "refresh_config": "Refresh configuration",
    "ping": "Ping",
}
CONSEQUENCES = {
    "reboot": "The device restarts at once. Whoever is using it loses anything not saved "
    "and cannot use it until it has started again.",
    "lock": "The screen locks at once. Whoever is using it must unlock it again to carry on.",
}
STATUS_TAGS = {
    "queued": ("Queued", "govuk-tag--grey"),
    "delivered": ("Delivered", "govuk-tag--blue"),
    "done": ("Done", "govuk-tag--green"),
    "failed": ("Failed", "govuk-tag--red"),
    "rejected": ("Rejected", "govuk-tag--orange"),
    "expired": ("Expired", "govuk-tag--yellow"),
}


@dataclass(frozen=True)
class PanelAction:
    name: str
    label: str
    disruptive: bool


def allowed_actions(principal: Principal) -> list[PanelAction]:
    """The actions this person's role may send; disruptive ones need their own permission."""
    if not principal.can("commands:run"):
        return []
    disrupt = principal.can("commands:disrupt")
    return [
        PanelAction(name, ACTION_LABELS[name], name in service.DISRUPTIVE_ACTIONS)
        for name in PANEL_ACTIONS
        if disrupt or name not in service.DISRUPTIVE_ACTIONS
    ]


def refusal(device: Device) -> str | None:
    """Why this device cannot take actions, or None when it can."""
    try:
        service.check_device_accepts_commands(device)
    except service.CommandRefused as exc:
        return exc.message[:1].upper() + exc.message[1:] + "."
    return None


def _page_number(raw: str | None) -> int:
    try:
        number = int(raw or "1")
    except ValueError:
        return 1
    return min(max(number, 1), 10_000)


def command_history(
    *, session: Session, device_id: str, page: int, size: int = HISTORY_PAGE_SIZE
) -> dict[str, Any]:
    """One page of the device's commands, newest first, with links to the pages around it."""
    total = session.scalar(
        select(func.count()).select_from(DeviceCommand).where(DeviceCommand.device_id == device_id)
    )
    pages = max(1, -(-int(total or 0) // size))
    page = min(page, pages)
    rows = session.scalars(
        select(DeviceCommand)
        .where(DeviceCommand.device_id == device_id)
        .order_by(DeviceCommand.created_at.desc(), DeviceCommand.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    here = f"/devices/{device_id}"
    return {
        "rows": [
            {
                "command": c,
                "label": ACTION_LABELS.get(c.action, c.action),
                "tag": STATUS_TAGS.get(c.status, (c.status.capitalize(), "govuk-tag--grey")),
            }
            for c in rows
        ],
        "count": int(total or 0),
        "page": page,
        "pages": pages,
        "first": (page - 1) * size + 1,
        "previous": f"{here}?commands={page - 1}#command-history" if page > 1 else None,
        "next": f"{here}?commands={page + 1}#command-history" if page < pages else None,
    }


def _banner(session: Session, device_id: str, sent: str | None) -> dict[str, Any] | None:
    """What became of the command just sent from this page (named by ?sent=)."""
    command = session.get(DeviceCommand, sent) if sent and len(sent) <= 32 else None
    if command is None or command.device_id != device_id:
        return None
    label = ACTION_LABELS.get(command.action, command.action)
    if command.status in ("failed", "rejected", "expired"):
        reason = f": {command.output}" if command.output else ""
        return {"ok": False, "text": f"{label} {command.status}{reason}"}
    state = {
        "queued": "is queued for the device",
        "delivered": "was delivered to the device",
        "done": "was carried out by the device",
    }
    return {
        "ok": True,
        "text": f"{label} {state.get(command.status, 'is ' + command.status)}. "
        "What the device replies shows in the command history.",
    }


def panel_context(
    *, session: Session, principal: Principal, device: Device, query: Any
) -> dict[str, Any]:
    """What the device page needs for its action panel and command history."""
    history = None
    if principal.can("commands:read"):
        history = command_history(
            session=session, device_id=device.id, page=_page_number(query.get("commands"))
        )
    return {
        "actions": allowed_actions(principal),
        "refused": refusal(device),
        "history": history,
        "banner": _banner(session, device.id, query.get("sent")),
        "consequences": CONSEQUENCES,
    }


def _visible_device(session: Session, principal: Principal, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None or not principal.sees(device.prison_code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    return device


def _refused(
    request: Request, principal: Principal, device: Device, reason: str, code: int
) -> Response:
    return templates.TemplateResponse(
        request,
        "devices/action_refused.html",
        page_context(
            request,
            page_title="The action was not sent",
            principal=principal,
            active_nav="devices",
            device=device,
            reason=reason,
        ),
        status_code=code,
    )


@router.post("/devices/{device_id}/actions", dependencies=[CsrfChecked])
async def send_action(
    device_id: str, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    """Send one action from the device page; reboot and lock ask to be confirmed first."""
    require_page_permission(principal, "commands:run")
    form = await request.form()
    # Queueing waits on the device's row lock and publishing waits on the broker; neither may
    # stall the event loop, so both run on a worker thread.
    return await run_in_threadpool(_send_action, device_id, request, session, principal, form)


def _send_action(
    device_id: str, request: Request, session: Session, principal: Principal, form: FormData
) -> Response:
    device = _visible_device(session, principal, device_id)
    action = str(form.get("action") or "")
    if action not in PANEL_ACTIONS:
        return _refused(
            request,
            principal,
            device,
            f"There is no action called {action[:40] or '(none)'}. "
            "Go back to the device and choose one of its buttons.",
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    if action in service.DISRUPTIVE_ACTIONS and not principal.can("commands:disrupt"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Your role ({principal.role}) may not {action} devices."
        )
    reason = refusal(device)
    if reason:
        return _refused(request, principal, device, reason, status.HTTP_409_CONFLICT)
    if action in service.DISRUPTIVE_ACTIONS and form.get("confirmed") != "yes":
        return templates.TemplateResponse(
            request,
            "devices/confirm_action.html",
            page_context(
                request,
                page_title=f"{ACTION_LABELS[action]} device {device.id}?",
                principal=principal,
                active_nav="devices",
                device=device,
                action=action,
                label=ACTION_LABELS[action],
                consequence=CONSEQUENCES[action],
            ),
        )
    ctx = get_context(request)
    # Committed before publishing, as the API does, so an immediate reply finds its row.
    with transaction(ctx.sessions) as own:
        command = service.queue_command(
            session=own,
            actor=principal.username,
            device=own.get(Device, device.id) or device,
            action=action,
            params={},
            now=utcnow(),
        )
        envelope = service.signed_envelope(command, load_signing_key(ctx.settings))
    publish_commands(request, session, [(command.id, device.id, envelope)])
    return RedirectResponse(
        f"/devices/{device.id}?sent={command.id}", status_code=status.HTTP_303_SEE_OTHER
    )
