"""The shipped playbooks: each passes ansible-playbook --syntax-check and is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleet.jobs.service import PLAYBOOKS_DIR

SHIPPED = sorted(p.name for p in PLAYBOOKS_DIR.glob("*.yml"))
EXPECTED = {
    "agent-settings.yml",
    "collect-diagnostics.yml",
    "kiosk-allow-list.yml",
    "laptop-package.yml",
    "reboot.yml",
    "wifi-profile.yml",
}


def test_the_promised_playbooks_are_shipped() -> None:
    assert set(SHIPPED) >= EXPECTED


@pytest.mark.parametrize("playbook", SHIPPED)
def test_playbook_passes_syntax_check(playbook: str, tmp_path: Path) -> None:
    plugins = PLAYBOOKS_DIR / "plugins"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "--syntax-check",
            "-i",
            "localhost,",
            playbook,
        ],
        cwd=PLAYBOOKS_DIR,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path),
            "ANSIBLE_ACTION_PLUGINS": str(plugins / "action"),
            "ANSIBLE_LIBRARY": str(plugins / "modules"),
            "ANSIBLE_CONNECTION_PLUGINS": str(plugins / "connection"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"playbook: {playbook}" in result.stdout


@pytest.mark.parametrize("playbook", SHIPPED)
def test_playbook_is_documented_in_the_readme(playbook: str) -> None:
    readme = (PLAYBOOKS_DIR / "README.md").read_text()
    assert f"| `{playbook}` |" in readme
    assert playbook in (PLAYBOOKS_DIR.parent / "README.md").read_text()
