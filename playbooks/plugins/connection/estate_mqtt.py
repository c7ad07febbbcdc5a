"""Ansible connection plugin: reach an Estate device over its agent's MQTT link."""

from __future__ import annotations

import base64
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from fleet.automation.wire import WireError, call

DOCUMENTATION = """
    name: estate_mqtt
    short_description: run tasks on Estate devices through the job's MQTT gateway
    description:
        - Devices in prisons accept no inbound connections. Commands, file uploads and
          downloads travel as signed requests on the device's command topic and come back on
          its reply topic; the device's agent runs them.
        - Every Ansible worker of a job talks to the job's local gateway over a Unix socket,
          so the whole job shares one broker connection.
        - Files may only be written to or read from the agent's allowed directories (its
          sandbox by default); remote commands run with the sandbox as home and working
          directory, so Ansible's remote temporary files land there too.
    author: Estate
    options:
      host:
        description: The device id (its broker username), normally set as ansible_host.
        default: inventory_hostname
        type: string
        vars:
          - name: inventory_hostname
          - name: ansible_host
          - name: delegated_vars['ansible_host']
      gateway_socket:
        description: Path of the job gateway's Unix socket.
        type: string
        env:
          - name: ESTATE_GATEWAY_SOCKET
        vars:
          - name: ansible_estate_gateway_socket
      command_timeout:
        description:
          - Seconds a single command may run on the device. The agent enforces it and kills
            the command's whole process group when it runs over.
        type: integer
        default: 600
        env:
          - name: ESTATE_COMMAND_TIMEOUT
        vars:
          - name: ansible_estate_command_timeout
      python:
        description:
          - Whether the device can run Ansible's Python modules. The inventory sets
            C(estate_python=true) for laptops and for any device whose agent reports a system
            Python 3; in-cell phones and most tablets report none (C(estate_python=false), the
            C(no_python) group), so module runs are refused before anything is sent, and
            only raw commands, file transfers and estate_desired_config reach the device.
        type: boolean
        default: true
        vars:
          - name: estate_python
      pipelining:
        description: Send modules on the command's standard input instead of as files.
        type: boolean
        default: true
        env:
          - name: ANSIBLE_PIPELINING
        ini:
          - section: defaults
            key: pipelining
        vars:
          - name: ansible_pipelining
"""

display = Display()
MODULE_MARK = "AnsiballZ_"


class Connection(ConnectionBase):
    """Each call is one request to the job gateway, answered when the device has answered."""

    transport = "estate_mqtt"
    has_pipelining = True
    has_tty = False

    def _connect(self) -> Connection:
        if not self.get_option("gateway_socket"):
            raise AnsibleConnectionFailure(
                "estate_mqtt needs the job gateway: run the playbook as an Estate job, or set "
                "ESTATE_GATEWAY_SOCKET to a running gateway's socket"
            )
        self._connected = True
        return self

    @property
    def _device(self) -> str:
        return str(self.get_option("host") or self._play_context.remote_addr)

    def _ask(self, what: str, request: dict[str, t.Any]) -> dict[str, t.Any]:
        request["device"] = self._device
        try:
            answer = call(self.get_option("gateway_socket"), request)
        except (OSError, WireError) as exc:
            raise AnsibleConnectionFailure(f"the job gateway is not reachable: {exc}") from exc
        status, output = answer.get("status"), answer.get("output") or {}
        if status == "unreachable":
            raise AnsibleConnectionFailure(output.get("error") or f"{self._device} is unreachable")
        if status != "done":
            reason = output.get("error") or output.get("reason") or status
            raise AnsibleError(f"{what} on {self._device} {status}: {reason}")
        return dict(output)

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"ESTATE_MQTT EXEC {cmd}", host=self._device)
        # A pipelined module arrives on stdin; an unpipelined one is run as an AnsiballZ file.
        if not self.get_option("python") and (in_data is not None or MODULE_MARK in cmd):
            raise AnsibleError(
                f"{self._device} has no Python (estate_python is false), so Python modules "
                "cannot run there: target the `python` group for modules; this device takes "
                "raw commands and estate_desired_config only"
            )
        output = self._ask(
            "command",
            {
                "op": "exec",
                "cmd": cmd,
                "stdin": base64.b64encode(in_data).decode() if in_data else None,
                "timeout": int(self.get_option("command_timeout")),
            },
        )
        stdout = base64.b64decode(output.get("stdout") or "")
        stderr = base64.b64decode(output.get("stderr") or "")
        return int(output["rc"]), stdout, stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"ESTATE_MQTT PUT {in_path} TO {out_path}", host=self._device)
        self._ask("upload", {"op": "put", "src": in_path, "dest": out_path})

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"ESTATE_MQTT FETCH {in_path} TO {out_path}", host=self._device)
        self._ask("download", {"op": "fetch", "src": in_path, "dest": out_path})

    def close(self) -> None:
        self._connected = False
