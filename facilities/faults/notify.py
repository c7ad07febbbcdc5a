"""Telling people a fault is at risk or breached: email over SMTP and a JSON webhook per prison."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from facilities.faults.models import FaultNotificationRoute
from facilities.faults.sla import SlaChange
from fleet.audit.service import record
from fleet.db import utcnow
from fleet.notify import transport
from fleet.settings import Settings

log = logging.getLogger(__name__)

WORDS = {"at_risk": "is at risk of missing its target", "breached": "has missed its target"}


@dataclass(frozen=True)
class Route:
    email_to: str | None
    webhook_url: str | None


def route_for(*, session: Session, prison_code: str) -> Route:
    row = session.get(FaultNotificationRoute, prison_code)
    return Route(row.email_to, row.webhook_url) if row else Route(None, None)


def set_route(
    *,
    session: Session,
    actor: str,
    prison_code: str,
    email_to: str | None,
    webhook_url: str | None,
) -> Route:
    row = session.get(FaultNotificationRoute, prison_code)
    if row is None:
        row = FaultNotificationRoute(prison_code=prison_code)
        session.add(row)
    row.email_to, row.webhook_url, row.updated_by = email_to, webhook_url, actor
    row.updated_at = utcnow()
    record(
        session=session,
        actor=actor,
        action="fault.notifications_changed",
        target_type="prison",
        target_id=prison_code,
        prison_code=prison_code,
        detail={"email_to": email_to, "webhook_url": webhook_url},
    )
    session.flush()
    return Route(email_to, webhook_url)


def sentence(change: SlaChange) -> str:
    return (
        f"Fault {change.reference} ({change.priority}, {change.category.replace('_', ' ')}) "
        f"{WORDS[change.kind]} due {change.due.isoformat(timespec='minutes')}."
    )


def send_email(settings: Settings, to: str, change: SlaChange) -> None:
    subject = f"[{change.kind.replace('_', ' ')}] {change.reference}"
    transport.send_email(settings, to, subject, sentence(change))


def post_webhook(url: str, change: SlaChange) -> None:
    body = {
        "text": sentence(change),
        "reference": change.reference,
        "prison": change.prison_code,
        "kind": change.kind,
        "priority": change.priority,
        "category": change.category,
        "due": change.due.isoformat(),
    }
    transport.post_json(url, body)


def deliver(settings: Settings, routes: dict[str, Route], changes: Sequence[SlaChange]) -> int:
    """Send each change down its prison's routes; a failed channel is logged, the rest go on."""
    failures = 0
    for change in changes:
        route = routes.get(change.prison_code, Route(None, None))
        if route.email_to and settings.smtp_url:
            try:
                send_email(settings, route.email_to, change)
            except transport.DeliveryFailed:
                failures += 1
                log.exception(
                    "SLA email for %s (%s) to %s via %s failed",
                    change.reference,
                    change.kind,
                    route.email_to,
                    settings.smtp_url,
                )
        if route.webhook_url:
            try:
                post_webhook(route.webhook_url, change)
            except transport.DeliveryFailed:
                failures += 1
                log.exception(
                    "SLA webhook for %s (%s) to %s failed",
                    change.reference,
                    change.kind,
                    route.webhook_url,
                )
    return failures
