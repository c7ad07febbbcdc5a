"""What the fault pages share: their templates, the words for each code, SLA state, visibility."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities.faults.models import Fault
from facilities.faults.sla import AT_RISK_SHARE, active_due, used_share
from fleet.api.deps import Principal
from fleet.web.shell import page_scope
from fleet.web.templating import make_templates

templates = make_templates()

CATEGORY_LABELS = {
    "in_cell_telephony": "In-cell telephone",
    "in_cell_device": "In-cell tablet or laptop",
    "power_electrical": "Power or electrical",
    "network_point": "Network point",
    "heating": "Heating",
    "plumbing": "Plumbing",
    "door_lock_cell_bell": "Door, lock or cell bell",
    "fire_safety": "Fire safety",
    "other": "Something else",
}
# (label, plain-language hint) so a person on a wing picks the right one without a manual.
PRIORITIES = {
    "P1": (
        "P1: emergency",
        "Safety, security or welfare at risk now: a cell bell, lock, fire alarm or all power out.",
    ),
    "P2": (
        "P2: urgent",
        "Stops a cell or service working today: no in-cell phone, no heating, a leak.",
    ),
    "P3": ("P3: routine", "Needs fixing, but people can manage for now: a faulty socket."),
    "P4": ("P4: can wait", "Can wait for planned work: decoration, minor wear."),
}
STATUS_LABELS = {
    "reported": "Reported",
    "triaged": "Triaged",
    "assigned": "Assigned",
    "in_progress": "In progress",
    "on_hold": "On hold",
    "cleared": "Cleared",
    "closed": "Closed",
    "cancelled": "Cancelled",
}
STATUS_TAGS = {
    "reported": "govuk-tag--blue",
    "triaged": "govuk-tag--light-blue",
    "assigned": "govuk-tag--purple",
    "in_progress": "govuk-tag--turquoise",
    "on_hold": "govuk-tag--yellow",
    "cleared": "govuk-tag--green",
    "closed": "govuk-tag--grey",
    "cancelled": "govuk-tag--grey",
}
HOLD_REASONS = {
    "awaiting_parts": "Waiting for parts (clock stops)",
    "awaiting_access": "Waiting for access to the cell or room (clock stops)",
    "awaiting_security_clearance": "Waiting for security clearance (clock stops)",
    "contractor_scheduled": "Contractor booked (clock keeps running)",
    "other": "Something else (clock keeps running)",
}
# Button text for each move a fault can make.
MOVE_LABELS = {
    "triaged": "Mark as triaged",
    "assigned": "Assign",
    "in_progress": "Start work",
    "on_hold": "Put on hold",
    "cleared": "Mark as cleared",
    "closed": "Close as verified",
    "cancelled": "Cancel this fault",
    "reopened": "Reopen",
}
EVENT_LABELS = {
    "reported": "Reported",
    "triaged": "Triaged",
    "assigned": "Assigned",
    "in_progress": "Work started",
    "on_hold": "Put on hold",
    "cleared": "Cleared",
    "closed": "Closed as verified",
    "cancelled": "Cancelled",
    "reopened": "Reopened",
}
OPEN = ("reported", "triaged", "assigned", "in_progress", "on_hold")
REFERENCE_RE = re.compile(r"^[A-Z]{2,5}-F-\d{1,9}$")
# Printable text plus line breaks and tabs; anything else cannot be stored or shown honestly.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

templates.env.globals.update(
    category_labels=CATEGORY_LABELS,
    priorities=PRIORITIES,
    status_labels=STATUS_LABELS,
    status_tags=STATUS_TAGS,
    when=lambda ts: ts.strftime("%d %b %Y %H:%M UTC") if ts else "Not yet",
)


def sla_state(fault: Fault, now: datetime) -> dict[str, str]:
    """The clock as a GOV.UK tag; the words carry the meaning, the colour only repeats it.

    Read from the due times as well as the marks the scheduled check leaves, so a fault past its
    target never shows as on time in the minutes before the next check.
    """
    open_now = fault.status in OPEN
    if fault.breached_at is not None or (
        open_now and fault.paused_since is None and now > active_due(fault)
    ):
        return {"text": "Breached", "classes": "govuk-tag--red"}
    if not open_now:
        return {"text": "Clock stopped", "classes": "govuk-tag--grey"}
    if fault.paused_since is not None:
        return {"text": "Clock paused", "classes": "govuk-tag--grey"}
    if fault.at_risk_at is not None or used_share(fault, now) >= AT_RISK_SHARE:
        return {"text": "At risk", "classes": "govuk-tag--orange"}
    return {"text": "On time", "classes": "govuk-tag--green"}


def visible_fault(
    request: Request, session: Session, principal: Principal, reference: str
) -> Fault:
    """The fault by reference within the prisons shown; anything else reads as not found."""
    reference = reference.upper()
    fault = None
    if REFERENCE_RE.fullmatch(reference):
        fault = session.scalars(select(Fault).where(Fault.reference == reference)).first()
    scope = page_scope(request, principal)
    if fault is None or (scope is not None and fault.prison_code not in scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return fault


def sub_navigation(active: str) -> list[dict[str, Any]]:
    """The faults area's own navigation (MoJ sub navigation)."""
    items = (
        ("open", "/faults", "Open faults"),
        ("new", "/faults/new", "Report a fault"),
        ("mine", "/faults/mine", "My assigned"),
        ("reports", "/faults/reports", "Reports"),
        ("places", "/places", "Find a place"),
    )
    return [{"href": href, "text": text, "active": key == active} for key, href, text in items]


def relative_due(due: datetime, now: datetime) -> str:
    """'due in 3 hours' or 'overdue by 2 days', for a glance at a list."""
    seconds = int((due - now).total_seconds())
    span = abs(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if span >= size:
            n = span // size
            words = f"{n} {unit}{'' if n == 1 else 's'}"
            break
    else:
        words = "less than a minute"
    return f"due in {words}" if seconds >= 0 else f"overdue by {words}"
