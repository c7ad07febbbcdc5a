"""`estate serve` as deployed: a real process on a fresh SQLite database answers its probes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fleet.cli import main
from fleet.cli.serve import app_factory
from tests.deploy.processes import EstateProcess, estate_env, free_port, run_estate, running_estate


def _wait_until_serving(server: EstateProcess, base: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.exited():
            pytest.fail(f"estate serve exited with {server.process.returncode}:\n{server.output()}")
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"estate serve did not answer within {timeout_s:g}s:\n{server.output()}")


def test_serve_answers_health_and_readiness(tmp_path: Path) -> None:
    env = estate_env(ESTATE_PROFILE="test", ESTATE_DATA_DIR=str(tmp_path))
    run_estate(["db", "upgrade"], env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--workers", "2", "--proxy-headers"]
    with running_estate(args, env, tmp_path / "serve.log") as server:
        _wait_until_serving(server, base)
        health = httpx.get(f"{base}/healthz", timeout=5)
        ready = httpx.get(f"{base}/readyz", timeout=5)
    assert health.status_code == 200, health.text
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"] == "ok"
    assert "server" not in health.headers, "the server header names the software; keep it off"
    assert (tmp_path / "estate.db").is_file(), "the database should be the one in ESTATE_DATA_DIR"


def test_serve_refuses_bad_settings_before_starting() -> None:
    result = CliRunner().invoke(
        main, ["serve"], env={"ESTATE_PROFILE": "production", "ESTATE_SECRET_KEY": "short"}
    )
    assert result.exit_code == 1
    assert "invalid settings" in result.output
    assert "ESTATE_SECRET_KEY must be set" in result.output


def test_app_factory_builds_the_app_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESTATE_PROFILE", "test")
    monkeypatch.setenv("ESTATE_DATA_DIR", str(tmp_path))
    app = app_factory()
    assert app.state.ctx.settings.data_dir == tmp_path
    assert app.openapi_url == "/openapi.json"
