"""One email over SMTP, one JSON POST to a webhook; failures raise DeliveryFailed."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from fleet.settings import Settings

WEBHOOK_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 10.0


class DeliveryFailed(Exception):
    """The relay or webhook refused the message or could not be reached."""


def send_email(settings: Settings, to: str, subject: str, body: str) -> None:
    if not settings.smtp_url:
        raise DeliveryFailed(f"no SMTP relay configured (ESTATE_SMTP_URL) to email {to}")
    parts = urlsplit(settings.smtp_url)
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    try:
        with smtplib.SMTP(
            parts.hostname or "localhost", parts.port or 25, timeout=SMTP_TIMEOUT_S
        ) as smtp:
            if parts.username:
                smtp.login(parts.username, parts.password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"email to {to} via {parts.hostname}:{parts.port}: {exc}") from exc


def post_json(url: str, body: dict[str, Any]) -> None:
    try:
        httpx.post(url, json=body, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"webhook {url}: {exc}") from exc
