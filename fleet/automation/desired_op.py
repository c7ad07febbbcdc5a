"""The gateway's `desired` operation: the estate_desired_config task sets, publishes and waits."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.automation.config_link import store_report
from fleet.automation.desired import (
    DesiredRefused,
    device_drift,
    set_desired,
    signed_config,
)
from fleet.automation.link import DeviceLink, Presence, RemoteFailure, Unreachable
from fleet.automation.models import DesiredConfig
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import Device

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 120.0
MAX_WAIT_S = 3600.0
RECHECK_S = 1.0  # the applied version also arrives through ingest, which does not notify us


class DesiredOperation:
    """Sets one device's desired configuration for a job, audited as the job."""

    def __init__(
        self,
        ctx: Context,
        link: DeviceLink,
        key: Ed25519PrivateKey,
        *,
        actor: str,
        presence: Presence,
    ) -> None:
        self._ctx = ctx
        self._link = link
        self._key = key
        self._actor = actor
        self._presence = presence
        self._reported = threading.Condition()
        link.on_other = self._on_message

    def __call__(self, device_id: str, request: dict[str, Any]) -> dict[str, Any]:
        wait = request.get("wait", True) is not False
        timeout = min(max(float(request.get("timeout") or DEFAULT_WAIT_S), 1.0), MAX_WAIT_S)
        with transaction(self._ctx.sessions) as session:
            device = session.get(Device, device_id)
            if device is None:
                raise RemoteFailure("rejected", {"error": f"{device_id} is not an estate device"})
            doc = request.get("doc")
            current = session.get(DesiredConfig, device_id)
            if request.get("merge") and isinstance(doc, dict) and current is not None:
                doc = {**current.doc, **doc}  # sections given replace, the rest stay
            try:
                row, changed = set_desired(
                    session=session, actor=self._actor, device=device, doc=doc, now=utcnow()
                )
            except DesiredRefused as exc:
                raise RemoteFailure("rejected", {"error": exc.message, "field": exc.field}) from exc
            version, envelope = row.version, signed_config(row, self._key)
        if wait:
            self._link.listen(device_id, "config/reported")  # before publishing: see its report
        self._link.publish_retained(device_id, "config", envelope)
        with transaction(self._ctx.sessions) as session:
            published = session.get(DesiredConfig, device_id)
            if published is not None and published.version == version:
                published.published_at = utcnow()
        result = {"version": version, "changed": changed}
        if not wait:
            return {**result, "status": "published"}
        return {**result, **self._await(device_id, version, timeout)}

    def _await(self, device_id: str, version: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            with transaction(self._ctx.sessions) as session:
                drift = device_drift(session=session, device_id=device_id)
            if drift is not None and drift.applied_version >= version:
                return {"status": "applied", "applied_version": drift.applied_version}
            if drift is not None and drift.state == "failed":
                raise RemoteFailure("failed", {"error": drift.error, "version": version})
            if self._presence(device_id) is False:
                raise Unreachable(
                    f"device {device_id} is offline; version {version} is retained on its"
                    " config topic and applied when it reconnects"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemoteFailure(
                    "failed",
                    {"error": f"{device_id} did not report version {version} in {timeout:g} s"},
                )
            with self._reported:
                self._reported.wait(min(left, RECHECK_S))

    def _on_message(self, device_id: str, channel: str, message: mqtt.MQTTMessage) -> None:
        if channel != "config/reported":
            return
        store_report(self._ctx, message)
        with self._reported:
            self._reported.notify_all()
