"""Fixtures for the Ansible-over-MQTT tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def ansible_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible-runner starts `ansible-playbook` from PATH: the one next to this interpreter."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
