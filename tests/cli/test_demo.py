"""`estate demo` brings up a live estate that answers with the token scripts are given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.services.api_server import free_port

TOKEN = "est_demo-token-for-scripts-0123456789"


def test_demo_serves_live_devices_and_stops_cleanly(tmp_path: Path) -> None:
    port, mqtt_port = free_port(), free_port()
    env = {
        **os.environ,
        "ESTATE_DATA_DIR": str(tmp_path),
        "ESTATE_DEMO_TOKEN": TOKEN,
        "ESTATE_MQTT_EMBEDDED_PORT": str(mqtt_port),
    }
    for name in ("ESTATE_DATABASE_URL", "ESTATE_MQTT_URL", "ESTATE_TSDB_URL"):
        env.pop(name, None)
    estate = str(Path(sys.executable).parent / "estate")
    cmd = [
        estate,
        "demo",
        "--port",
        str(port),
        "--prisons",
        "MDI,LEI",
        "--devices-per-prison",
        "5",
        "--interval",
        "1",
    ]
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            deadline = time.monotonic() + 90
            online = 0
            while time.monotonic() < deadline and online < 10:
                assert proc.poll() is None, err.read_text()
                try:
                    resp = httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/devices",
                        params={"online": "true"},
                        headers=headers,
                        timeout=5,
                    )
                    if resp.status_code == 200:
                        online = resp.json()["count"]
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            assert online == 10, f"only {online} of 10 devices online; {err.read_text()[-2000:]}"
            printed = out.read_text()
            assert f"http://127.0.0.1:{port}" in printed
            assert "password:" in printed
            assert TOKEN in printed
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert "stopping" in err.read_text()
