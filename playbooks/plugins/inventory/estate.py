"""Ansible inventory plugin: Estate devices, grouped by prison, kind, wing, programme and tag."""

from __future__ import annotations

import json
import typing as t
from urllib.parse import urlencode

from ansible.errors import AnsibleParserError
from ansible.module_utils.urls import open_url
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
    name: estate
    short_description: Estate devices from the control plane
    description:
      - Reads enrolled devices in your caseload from the Estate control plane
        (C(/api/v1/ansible/inventory)) and groups them as C(prison_<code>), C(kind_<kind>),
        C(wing_<path>), C(programme_<name>) and C(tag_<tag>), plus C(python) (laptops and
        any device whose agent reported a system Python 3, which run Python modules) and
        C(no_python) (the rest, which take raw commands and estate_desired_config only); host
        variables come from the device record and set C(ansible_connection=estate_mqtt) and
        C(estate_python).
      - C(ansible_python_interpreter) is the interpreter the device's agent reported (the
        first of C(/usr/bin/python3), C(/usr/local/bin/python3),
        C(/usr/libexec/platform-python), then C(python3) on its PATH, never a virtualenv's);
        a laptop that has not reported one gets C(/usr/bin/python3).
      - The file must be named C(*.estate.yml) or C(*.estate.yaml), with C(plugin: estate).
    author: Estate
    options:
      plugin:
        description: Always C(estate).
        required: true
        choices: [estate]
      url:
        description: The control plane's base URL.
        type: string
        env:
          - name: ESTATE_URL
        required: true
      token:
        description: An API token (C(estate users create) prints one).
        type: string
        env:
          - name: ESTATE_API_TOKEN
        required: true
      prisons:
        description: Only these prison codes.
        type: list
        elements: string
        default: []
      kind:
        description: Only this kind of device.
        type: string
      tag:
        description: Only devices with this tag.
        type: string
      timeout:
        description: Seconds to wait for the control plane.
        type: int
        default: 60
"""

EXAMPLES = r"""
# mdi.estate.yml, then: ansible-inventory -i mdi.estate.yml --graph
plugin: estate
url: https://estate.example.gov.uk
prisons: [MDI]
kind: laptop
"""


class InventoryModule(BaseInventoryPlugin):
    NAME = "estate"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith((".estate.yml", ".estate.yaml"))

    def parse(self, inventory: t.Any, loader: t.Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        params: list[tuple[str, str]] = [("prison", p) for p in self.get_option("prisons")]
        for name in ("kind", "tag"):
            if self.get_option(name):
                params.append((name, str(self.get_option(name))))
        url = str(self.get_option("url")).rstrip("/") + "/api/v1/ansible/inventory"
        if params:
            url += "?" + urlencode(params)
        try:
            response = open_url(
                url,
                headers={"Authorization": f"Bearer {self.get_option('token')}"},
                timeout=self.get_option("timeout"),
            )
            data = json.loads(response.read())
        except Exception as exc:
            raise AnsibleParserError(f"cannot read the Estate inventory from {url}: {exc}") from exc
        self._populate(data)

    def _populate(self, data: dict[str, t.Any]) -> None:
        every = data.get("all", {})
        for host, host_vars in every.get("hosts", {}).items():
            self.inventory.add_host(host)
            for name, value in (host_vars or {}).items():
                self.inventory.set_variable(host, name, value)
        for group, members in every.get("children", {}).items():
            self.inventory.add_group(group)
            for host in members.get("hosts", {}):
                self.inventory.add_host(host, group=group)
