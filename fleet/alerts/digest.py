"""Notification digests: each route's new alerts gathered over its window, sent as one message.

Each alert goes down each route once: the alert_notice rows are claimed and committed before
sending, and removed again if the send fails so the next pass retries them.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from fleet.alerts.models import Alert, AlertNotice, AlertRoute
from fleet.alerts.quiet import PRISON_TZ
from fleet.alerts.service import SEVERITY_RANK
from fleet.notify.transport import DeliveryFailed, post_json, send_email
from fleet.settings import Settings

log = logging.getLogger(__name__)

LINES_PER_MESSAGE = 50


@dataclass(frozen=True)
class AlertLine:
    id: int
    severity: str
    summary: str
    opened_at: datetime
    status: str


@dataclass(frozen=True)
class Digest:
    id: str
    route_id: int
    prison_code: str
    email_to: str | None
    webhook_url: str | None
    alerts: tuple[AlertLine, ...]

    @property
    def subject(self) -> str:
        counts = Counter(a.severity for a in self.alerts)
        parts = ", ".join(f"{counts[s]} {s}" for s in SEVERITY_RANK if counts[s])
        noun = "alert" if len(self.alerts) == 1 else "alerts"
        return f"[Estate] {self.prison_code}: {len(self.alerts)} new {noun} ({parts})"

    def lines(self) -> list[str]:
        shown = [
            f"{a.severity.upper():8} {a.opened_at.astimezone(PRISON_TZ):%H:%M} {a.summary}"
            + ("" if a.status != "resolved" else " (since resolved)")
            for a in self.alerts[:LINES_PER_MESSAGE]
        ]
        if len(self.alerts) > LINES_PER_MESSAGE:
            shown.append(f"... and {len(self.alerts) - LINES_PER_MESSAGE} more in the alert queue.")
        return shown

    def text(self) -> str:
        return "\n".join([self.subject, "", *self.lines()])

    def webhook_body(self) -> dict[str, object]:
        return {
            "text": self.text(),
            "prison": self.prison_code,
            "count": len(self.alerts),
            "alerts": [
                {
                    "id": a.id,
                    "severity": a.severity,
                    "summary": a.summary,
                    "opened_at": a.opened_at.isoformat(),
                }
                for a in self.alerts
            ],
        }


def _pending(session: Session, route: AlertRoute) -> list[Alert]:
    severities = [
        s for s, rank in SEVERITY_RANK.items() if rank <= SEVERITY_RANK[route.min_severity]
    ]
    told = exists().where(AlertNotice.route_id == route.id, AlertNotice.alert_id == Alert.id)
    return list(
        session.scalars(
            select(Alert)
            .where(
                Alert.prison_code == route.prison_code,
                Alert.severity.in_(severities),
                # A new route tells of what opens from now on, not of the estate's history.
                Alert.opened_at >= route.created_at,
                ~told,
            )
            .order_by(Alert.opened_at, Alert.id)
        )
    )


def claim_digests(*, session: Session, now: datetime) -> list[Digest]:
    """Digests whose window has passed, with their alerts claimed (commit before sending)."""
    routes = session.scalars(
        select(AlertRoute).order_by(AlertRoute.id).with_for_update(skip_locked=True)
    )
    digests = []
    for route in routes:
        pending = _pending(session, route)
        if not pending:
            continue
        if pending[0].opened_at > now - timedelta(minutes=route.digest_minutes):
            continue  # still gathering: the window runs from the first alert waiting
        digest = Digest(
            id=uuid.uuid4().hex,
            route_id=route.id,
            prison_code=route.prison_code,
            email_to=route.email_to,
            webhook_url=route.webhook_url,
            alerts=tuple(
                AlertLine(a.id, a.severity, a.summary, a.opened_at, a.status) for a in pending
            ),
        )
        session.add_all(
            AlertNotice(route_id=route.id, alert_id=a.id, digest=digest.id, sent_at=now)
            for a in pending
        )
        route.last_sent_at = now
        digests.append(digest)
    session.flush()
    return digests


def send(settings: Settings, digest: Digest) -> tuple[int, list[str]]:
    """Send one digest down its channels; (channels that took it, problems)."""
    sent, problems = 0, []
    if digest.email_to:
        try:
            send_email(settings, digest.email_to, digest.subject, digest.text())
            sent += 1
        except DeliveryFailed as exc:
            problems.append(str(exc))
    if digest.webhook_url:
        try:
            post_json(digest.webhook_url, digest.webhook_body())
            sent += 1
        except DeliveryFailed as exc:
            problems.append(str(exc))
    return sent, problems


def release(*, session: Session, digests: Sequence[Digest]) -> None:
    """Forget the claims of digests that could not be sent, so the next pass retries them."""
    if digests:
        session.execute(delete(AlertNotice).where(AlertNotice.digest.in_([d.id for d in digests])))
