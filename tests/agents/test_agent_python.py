"""The agent finds the system Python for Ansible modules and reports it; bad paths are refused."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from agents.identity import Identity
from agents.interpreter import system_python
from agents.protocol import Rejected, parse_state, topic
from agents.runner import Agent
from tests.agents.support import Recorder


def executable(path: Path, *, mode: int = 0o755) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return str(path)


def no_path_python(_name: str) -> None:
    return None


def test_the_first_existing_executable_candidate_wins(tmp_path: Path) -> None:
    missing = str(tmp_path / "usr/bin/python3")
    not_executable = executable(tmp_path / "usr/local/bin/python3", mode=0o644)
    platform = executable(tmp_path / "usr/libexec/platform-python")
    later = executable(tmp_path / "opt/python3")

    found = system_python((missing, not_executable, platform, later), which=no_path_python)

    assert found == platform


def test_path_python_is_the_last_resort_and_a_virtualenv_is_never_reported(
    tmp_path: Path,
) -> None:
    venv_python = executable(tmp_path / "venv/bin/python3")
    (tmp_path / "venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    on_path = executable(tmp_path / "home/bin/python3")

    assert system_python((venv_python,), which=lambda _n: on_path) == on_path
    assert system_python((), which=lambda _n: venv_python) == ""


def test_no_interpreter_or_only_unreportable_paths_give_nothing(tmp_path: Path) -> None:
    spaced = executable(tmp_path / "my python/python3")

    assert system_python((str(tmp_path / "absent"),), which=no_path_python) == ""
    assert system_python((spaced,), which=lambda _n: "bin/python3") == ""


def test_the_agents_own_virtualenv_interpreter_is_not_chosen() -> None:
    found = system_python()

    if sys.prefix != sys.base_prefix:
        assert not found.startswith(sys.prefix)
    assert found == "" or Path(found).is_absolute()


def test_a_running_agent_reports_its_interpreter_in_the_retained_state(
    make_agent: Callable[..., Agent], identity: Identity, device_id: str
) -> None:
    agent = make_agent(identity)
    assert agent.wait_connected(10)
    late = Recorder()  # subscribes after the birth: sees it only because it is retained
    try:
        late.subscribe(topic(device_id, "state"))
        birth = late.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "online")
        payload = bytes(late.messages[0].payload)
    finally:
        late.close()

    assert agent.python == system_python() != ""
    assert birth["python"] == agent.python
    assert parse_state(device_id, payload).python == agent.python
    assert agent.status_snapshot()["python_interpreter"] == agent.python


def state_with(python: object) -> bytes:
    return orjson.dumps({"state": "online", "boot": 1, "ts": time.time(), "python": python})


def test_a_state_without_python_is_still_accepted() -> None:
    old_agent = orjson.dumps({"state": "online", "boot": 1, "agent": "0.9.0", "ts": time.time()})

    assert parse_state("d1", old_agent).python == ""
    assert parse_state("d1", state_with("")).python == ""
    assert parse_state("d1", state_with("/usr/libexec/platform-python")).python == (
        "/usr/libexec/platform-python"
    )


@pytest.mark.parametrize(
    ("python", "reason", "detail"),
    [
        ("usr/bin/python3", "bad_python", "absolute path"),
        ("/usr/bin/../../tmp/python3", "bad_python", "'..'"),
        ("/" + "p" * 200, "bad_python", "201 characters, more than 200"),
        ("/usr/bin/python3; rm -rf /", "bad_python", "only letters, digits"),
        ("/usr/bin/$(reboot)", "bad_python", "only letters, digits"),
        ("/usr/bin/python3\n", "bad_python", "only letters, digits"),
        (3, "wrong_type", "python must be a string"),
        (["/usr/bin/python3"], "wrong_type", "python must be a string"),
        (None, "wrong_type", "python must be a string"),
    ],
)
def test_garbage_python_is_refused_with_the_reason(
    python: object, reason: str, detail: str
) -> None:
    with pytest.raises(Rejected) as refused:
        parse_state("d1", state_with(python))

    assert refused.value.reason == reason
    assert detail in refused.value.detail
