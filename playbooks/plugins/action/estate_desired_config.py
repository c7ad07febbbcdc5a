"""Ansible action: hand the task's document to the job gateway, which sets and publishes it."""

from __future__ import annotations

import json
import os
import typing as t

from ansible.plugins.action import ActionBase

from fleet.automation.wire import SOCKET_ENV, WireError, call

ARGS = frozenset({"doc", "merge", "wait", "timeout"})


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # nothing runs on the device: the control plane publishes
    _VALID_ARGS = ARGS

    def run(
        self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None
    ) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        doc = args.get("doc")
        if not isinstance(doc, dict):
            return {**result, "failed": True, "msg": "doc must be a dictionary of settings"}
        device = task_vars.get("ansible_host") or task_vars.get("inventory_hostname")
        socket_path = os.environ.get(SOCKET_ENV) or task_vars.get("ansible_estate_gateway_socket")
        if not socket_path:
            return {
                **result,
                "failed": True,
                "msg": f"{SOCKET_ENV} is not set: run this playbook as an Estate job",
            }
        if self._task.check_mode:
            return {**result, "changed": False, "msg": "check mode: nothing published"}
        request = {
            "op": "desired",
            "device": str(device),
            # Templated values are str/dict subclasses carrying Ansible's tags: plain JSON.
            "doc": json.loads(json.dumps(doc)),
            "merge": bool(args.get("merge", False)),
            "wait": bool(args.get("wait", True)),
            "timeout": int(args.get("timeout", 120)),
        }
        try:
            answer = call(str(socket_path), request)
        except (OSError, WireError) as exc:
            return {
                **result,
                "unreachable": True,
                "msg": f"the job gateway is not reachable: {exc}",
            }
        output = answer.get("output") or {}
        status = answer.get("status")
        if status == "unreachable":
            return {**result, "unreachable": True, "msg": output.get("error", "unreachable")}
        if status != "done":
            return {**result, "failed": True, "msg": output.get("error") or status, **output}
        return {**result, **output, "changed": bool(output.get("changed"))}
