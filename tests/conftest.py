"""Suite-wide rules: under CI a skipped test is a failure."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.services.postgres",
    "tests.services.mosquitto",
    "tests.services.victoria",
    "tests.services.browser",
]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") != "true" or reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} skipped test(s) count as failures", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
