"""Which system Python 3 on this device can run Ansible modules."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from agents.protocol import python_path_problem

# The system interpreters, in the order a distribution puts them; PATH only as a last resort.
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/usr/libexec/platform-python")


def system_python(
    candidates: Sequence[str] = SYSTEM_PYTHONS,
    which: Callable[[str], str | None] = shutil.which,
) -> str:
    """The first usable system interpreter's path, or "" when the device has none."""
    for path in (*candidates, which("python3")):
        if path and _usable(path):
            return path
    return ""


def _usable(path: str) -> bool:
    # A virtualenv's interpreter (the agent's own, say) lacks the system's packages and goes
    # when the agent is reinstalled, so modules must not be pointed at it.
    return (
        python_path_problem(path) is None
        and os.path.isfile(path)
        and os.access(path, os.X_OK)
        and not (Path(path).parent.parent / "pyvenv.cfg").exists()
    )
