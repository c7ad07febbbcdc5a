"""Synchronous client for Mosquitto's dynamic security plugin ($CONTROL/dynamic-security/v1).

Commands go out as one JSON message per round trip and each answer is matched by its
correlationData on the shared response topic. The roles themselves are in fleet.broker.acls.
"""

from __future__ import annotations

import logging
import secrets
import threading
from types import TracebackType
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion

from agents.protocol import DEVICE_ID_RE
from fleet.broker.acls import (
    CONTROL_ROLE,
    DEVICE_ROLE_PREFIX,
    INGEST_ROLE,
    Acl,
    client_changes,
    control_acls,
    device_acls,
    device_role_name,
    ingest_acls,
    role_changes,
)
from fleet.broker.urls import BrokerAddress, BrokerConnectError, close_client, connect_client

log = logging.getLogger(__name__)

COMMAND_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
SERVICE_TEXTNAMES = {
    INGEST_ROLE: "Estate ingest: reads device reports",
    CONTROL_ROLE: "Estate control plane: sends commands and configuration",
}


class DynsecError(Exception):
    """The dynamic security plugin refused a command, or could not be reached."""

    def __init__(self, message: str, *, command: str = "", plugin_error: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.plugin_error = plugin_error


class DynsecClient:
    """One admin connection to the plugin; safe to share between threads."""

    def __init__(self, address: BrokerAddress, *, timeout_s: float = 10.0) -> None:
        if not address.username:
            raise DynsecError(
                f"no admin username for the broker at {address.redacted()}: set "
                "ESTATE_MQTT_ADMIN_USERNAME and ESTATE_MQTT_ADMIN_PASSWORD"
            )
        self.address = address
        self.timeout_s = timeout_s
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._pending: dict[str, tuple[threading.Event, list[Any]]] = {}
        self._publish_refusals: dict[int, str] = {}
        self._subscribed = threading.Event()
        self._subscribe_refused = False

    # --- connection ------------------------------------------------------------------------

    def connect(self) -> DynsecClient:
        with self._connect_lock:
            if self._client is None:
                self._client = self._open()
        return self

    def _open(self) -> mqtt.Client:
        client_id = f"estate-dynsec-{secrets.token_hex(4)}"
        self._subscribed.clear()
        try:
            client = connect_client(
                self.address,
                client_id,
                protocol=MQTTProtocolVersion.MQTTv5,
                on_connect=self._on_connect,
                on_message=self._on_message,
                timeout_s=self.timeout_s,
            )
        except BrokerConnectError as exc:
            if not exc.refused:
                raise DynsecError(
                    f"cannot reach the broker at {self.address.redacted()}: {exc.reason}. "
                    "Check ESTATE_MQTT_URL and that the broker is running.",
                    plugin_error=exc.reason,
                ) from exc
            raise DynsecError(
                f"cannot log in to the broker as admin {self.address.username!r}: {exc.reason}. "
                "Check ESTATE_MQTT_ADMIN_USERNAME and ESTATE_MQTT_ADMIN_PASSWORD.",
                plugin_error=exc.reason,
            ) from exc
        if not self._subscribed.wait(self.timeout_s) or self._subscribe_refused:
            close_client(client)
            raise DynsecError(
                f"admin {self.address.username!r} may not subscribe to {RESPONSE_TOPIC} on "
                f"{self.address.redacted()}: is the dynamic security plugin loaded and is this "
                "client in its admin role?"
            )
        return client

    def close(self) -> None:
        if self._client is not None:
            close_client(self._client)
            self._client = None

    def __enter__(self) -> DynsecClient:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        # A clean session forgets subscriptions, so every (re)connect subscribes again.
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        self._subscribe_refused = any(code.is_failure for code in codes)
        if self._subscribe_refused:
            log.error("dynamic security responses refused to admin: %s", codes)
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = orjson.loads(msg.payload)["responses"]
            correlation = str(responses[0].get("correlationData", ""))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            log.warning("unreadable dynamic security response: %r", msg.payload[:300])
            return
        request_id = correlation.split(":", 1)[0]
        with self._lock:
            waiter = self._pending.get(request_id)
        if waiter is not None:  # other admins' answers arrive on the same topic; skip those
            waiter[1].extend(responses)
            waiter[0].set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            with self._lock:
                self._publish_refusals[mid] = str(reason)

    # --- commands --------------------------------------------------------------------------

    def execute(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Send commands in one message; return each response (with its "error", if any)."""
        self.connect()
        assert self._client is not None
        request_id = secrets.token_hex(8)
        batch = [{**cmd, "correlationData": f"{request_id}:{i}"} for i, cmd in enumerate(commands)]
        done = threading.Event()
        responses: list[dict[str, Any]] = []
        with self._lock:
            self._pending[request_id] = (done, responses)
        try:
            info = self._client.publish(COMMAND_TOPIC, orjson.dumps({"commands": batch}), qos=1)
            if not done.wait(self.timeout_s):
                with self._lock:
                    refusal = self._publish_refusals.pop(info.mid, "")
                names = ", ".join(c["command"] for c in commands)
                if refusal:
                    raise DynsecError(
                        f"the broker refused admin {self.address.username!r} publishing to "
                        f"{COMMAND_TOPIC}: {refusal}",
                        command=names,
                    )
                raise DynsecError(
                    f"no answer to {names} from the dynamic security plugin at "
                    f"{self.address.redacted()} within {self.timeout_s:g}s: is the plugin loaded?",
                    command=names,
                )
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if len(responses) != len(commands):
            raise DynsecError(
                f"the dynamic security plugin answered {len(responses)} of {len(commands)} "
                f"commands: {responses!r}"[:500],
                command=", ".join(c["command"] for c in commands),
            )
        return responses

    def call(self, command: str, **fields: Any) -> dict[str, Any]:
        """Run one command; return its "data" or raise DynsecError with the plugin's text."""
        (response,) = self.run_all([{"command": command, **fields}])
        data = response.get("data", {})
        return data if isinstance(data, dict) else {}

    def run_all(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run commands in order in one round trip; raise on the first one refused."""
        if not commands:
            return []
        responses = self.execute(*commands)
        for command, response in zip(commands, responses, strict=True):
            if response.get("error"):
                raise _refused(command, response["error"])
        return responses

    def lookup(
        self, *, clients: tuple[str, ...] = (), roles: tuple[str, ...] = ()
    ) -> tuple[dict[str, dict[str, Any] | None], dict[str, dict[str, Any] | None]]:
        """Fetch clients and roles in one round trip; missing ones map to None."""
        commands = [{"command": "getClient", "username": u} for u in clients]
        commands += [{"command": "getRole", "rolename": r} for r in roles]
        responses = self.execute(*commands) if commands else []
        found: list[dict[str, Any] | None] = []
        for command, response in zip(commands, responses, strict=True):
            error = response.get("error")
            if error in ("Client not found", "Role not found"):
                found.append(None)
            elif error:
                raise _refused(command, error)
            else:
                kind = "client" if command["command"] == "getClient" else "role"
                found.append(response["data"][kind])
        return dict(zip(clients, found[: len(clients)], strict=True)), dict(
            zip(roles, found[len(clients) :], strict=True)
        )

    def get_client(self, username: str) -> dict[str, Any] | None:
        return self.lookup(clients=(username,))[0][username]

    def get_role(self, rolename: str) -> dict[str, Any] | None:
        return self.lookup(roles=(rolename,))[1][rolename]

    def ensure_role(self, rolename: str, acls: list[Acl], *, textname: str = "") -> None:
        """Create the role, or bring an existing one's ACLs to exactly `acls`."""
        self.run_all(role_changes(rolename, acls, textname, self.get_role(rolename)))

    def ensure_client(
        self, username: str, password: str, roles: list[str], *, textname: str = ""
    ) -> None:
        """Create the client, or reset an existing one's password and add missing roles."""
        existing = self.get_client(username)
        self.run_all(client_changes(username, password, roles, textname, existing))

    # --- device identities -----------------------------------------------------------------

    def create_device_identity(self, device_id: str) -> str:
        """Create (or re-key) the device's client and role; return its new password once.

        A disabled (revoked) device stays disabled: call enable_device to let it back in.
        """
        _check_device_id(device_id)
        rolename = device_role_name(device_id)
        clients, roles = self.lookup(clients=(device_id,), roles=(rolename,))
        existing = clients[device_id]
        if existing is not None:
            _require_device_identity(device_id, existing)
        password = secrets.token_urlsafe(24)
        textname = f"Estate device {device_id}"
        self.run_all(
            role_changes(rolename, device_acls(device_id), textname, roles[rolename])
            + client_changes(device_id, password, [rolename], textname, existing)
        )
        log.info("broker identity issued for device %s", device_id)
        return password

    def disable_device(self, device_id: str) -> None:
        """Refuse the device from now on; the plugin also drops its live connection."""
        _check_device_id(device_id)
        existing = self.get_client(device_id)
        if existing is None:
            log.warning("device %s has no broker identity; nothing to disable", device_id)
            return
        _require_device_identity(device_id, existing)
        self.call("disableClient", username=device_id)
        log.info("broker identity disabled for device %s", device_id)

    def enable_device(self, device_id: str) -> None:
        _check_device_id(device_id)
        existing = self.get_client(device_id)
        if existing is None:
            raise DynsecError(
                f"device {device_id} has no broker identity to enable; enrol it again",
                command="enableClient",
            )
        _require_device_identity(device_id, existing)
        self.call("enableClient", username=device_id)
        log.info("broker identity enabled for device %s", device_id)

    def delete_device_identity(self, device_id: str) -> None:
        """Remove the device's client and role; missing ones are already gone."""
        _check_device_id(device_id)
        rolename = device_role_name(device_id)
        clients, roles = self.lookup(clients=(device_id,), roles=(rolename,))
        commands = []
        existing = clients[device_id]
        if existing is not None:
            _require_device_identity(device_id, existing)
            commands.append({"command": "deleteClient", "username": device_id})
        if roles[rolename] is not None:
            commands.append({"command": "deleteRole", "rolename": rolename})
        self.run_all(commands)
        log.info("broker identity deleted for device %s", device_id)

    # --- service identities ----------------------------------------------------------------

    def bootstrap_service_roles(
        self,
        ingest_username: str,
        ingest_password: str,
        control_username: str,
        control_password: str,
    ) -> None:
        """Create or update the ingest and control-plane roles and clients; safe to re-run."""
        services = (
            (ingest_username, ingest_password, INGEST_ROLE, ingest_acls()),
            (control_username, control_password, CONTROL_ROLE, control_acls()),
        )
        for username, password, _role, _acls in services:
            if not username or not password:
                raise DynsecError("service usernames and passwords must not be empty")
            if username.startswith(DEVICE_ROLE_PREFIX) or username == self.address.username:
                raise DynsecError(f"{username!r} cannot be used as a service username")
        if ingest_username == control_username:
            raise DynsecError("ingest and control plane need different usernames")
        clients, roles = self.lookup(
            clients=(ingest_username, control_username), roles=(INGEST_ROLE, CONTROL_ROLE)
        )
        commands: list[dict[str, Any]] = []
        for username, password, rolename, acls in services:
            textname = SERVICE_TEXTNAMES[rolename]
            commands += role_changes(rolename, acls, textname, roles[rolename])
            commands += client_changes(username, password, [rolename], textname, clients[username])
            commands.append({"command": "enableClient", "username": username})
        self.run_all(commands)
        log.info("service identities ready: %s, %s", ingest_username, control_username)


def _refused(command: dict[str, Any], error: object) -> DynsecError:
    subject = command.get("username") or command.get("rolename")
    action = f"{command['command']} {subject!r}" if subject else command["command"]
    return DynsecError(
        f"{action} refused by the dynamic security plugin: {error}",
        command=command["command"],
        plugin_error=str(error),
    )


def _check_device_id(device_id: str) -> None:
    if not DEVICE_ID_RE.match(device_id):
        raise DynsecError(
            f"{device_id!r} is not a valid device id: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )


def _require_device_identity(device_id: str, client: dict[str, Any]) -> None:
    """Refuse to touch a broker client that is not this device's (a service or admin login)."""
    roles = {r["rolename"] for r in client.get("roles", [])}
    if not roles <= {device_role_name(device_id)} or client.get("groups"):
        raise DynsecError(
            f"broker client {device_id!r} is not a device identity (roles: {sorted(roles)}); "
            "refusing to change it"
        )
