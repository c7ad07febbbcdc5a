"""Redeem a one-time enrolment token with the control plane and receive the device identity."""

from __future__ import annotations

import logging
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from agents import AGENT_VERSION
from agents.identity import Identity, IdentityError

log = logging.getLogger(__name__)

REDEEM_PATH = "/api/v1/enrolments/redeem"
SERIAL_SOURCES = (
    Path("/sys/class/dmi/id/product_serial"),
    Path("/sys/class/dmi/id/product_uuid"),
    Path("/etc/machine-id"),
)
ASK_FOR_ANOTHER = "Ask IT support for a new token (they create one with `estate devices enrol`)."
NEXT_STEP = {
    404: "The token is not known to this server. Check it was copied in full and that --server "
    "points at the right control plane. " + ASK_FOR_ANOTHER,
    409: "This token has already been used: each token enrols exactly one device. "
    + ASK_FOR_ANOTHER,
    410: "This token has expired. " + ASK_FOR_ANOTHER,
    422: "The server refused the details sent with the token; correct the field it names "
    "(for example pass --serial) and try again.",
}


class EnrolmentError(Exception):
    """Enrolment failed; the message says what the server said and what to do next."""


def detect_serial() -> str | None:
    """The machine's serial number, or its machine id, when either is readable."""
    for source in SERIAL_SOURCES:
        try:
            value = source.read_text().strip()
        except OSError:
            continue
        if value and value.lower() not in {"none", "0", "to be filled by o.e.m."}:
            return value
    return None


def _detail_text(detail: Any) -> str:
    """Turn a JSON `detail` (a sentence, or FastAPI's list of field errors) into one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                msg = str(item.get("msg", item))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return orjson.dumps(detail).decode()


def _server_message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip()[:300]
    if isinstance(doc, dict) and "detail" in doc:
        return _detail_text(doc["detail"])
    return orjson.dumps(doc).decode()[:300]


def redeem_url(server: str) -> str:
    server = server.strip().rstrip("/")
    if not server.startswith(("http://", "https://")):
        raise EnrolmentError(f"--server {server!r} must be an http:// or https:// URL")
    return server + REDEEM_PATH


def redeem(
    server: str,
    token: str,
    *,
    serial: str,
    kind: str | None = None,
    hostname: str | None = None,
    timeout_s: float = 30.0,
) -> Identity:
    """POST the token to the control plane and return the identity it issues."""
    url = redeem_url(server)
    body: dict[str, Any] = {
        "token": token,
        "serial": serial,
        "hostname": hostname or socket.gethostname(),
        "agent": AGENT_VERSION,
    }
    if kind:
        body["kind"] = kind
    # redeem_url() admits only http and https, so no file: or custom scheme reaches urlopen.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        message = _server_message(exc.read())
        hint = NEXT_STEP.get(exc.code, "Try again later; if it keeps failing, tell IT support.")
        raise EnrolmentError(
            f"Enrolment refused by {url} (HTTP {exc.code}): {message}\n{hint}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrolmentError(
            f"Could not reach {url}: {reason}. Check the --server URL and the network connection."
        ) from None
    if status != 201:
        raise EnrolmentError(f"Unexpected answer from {url}: HTTP {status} (expected 201)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EnrolmentError(f"{url} answered 201 but not with JSON; is --server right?") from None
    if not isinstance(doc, dict):
        raise EnrolmentError(f"{url} answered 201 with something other than a JSON object")
    doc.update(server=server.rstrip("/"), serial=serial, kind=kind or "", enrolled_at=time.time())
    try:
        identity = Identity.from_document(doc, where=f"answer from {url}")
    except IdentityError as exc:
        raise EnrolmentError(
            f"The control plane sent an identity the agent cannot use: {exc}"
        ) from None
    log.info("enrolled as %s at %s", identity.device_id, identity.prison_code)
    return identity
