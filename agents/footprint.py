"""Measure one agent's memory and CPU: python -m agents.footprint --seconds 600 --interval 30.

Runs `estate agent` (as `python -m agents.cli`) in a child process with a throwaway identity
against a real broker, samples the child with psutil, and prints the figures.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agents.identity import Identity, parse_mqtt_url, save_identity
from agents.protocol import public_key_b64, topic

WARM_UP_S = 3.0  # imports and the first connection are start-up cost, not steady state


def _identity(device_id: str, mqtt_url: str) -> Identity:
    return Identity.from_document(
        {
            "device_id": device_id,
            "prison_code": "FOOTPRINT",
            "mqtt": {"url": mqtt_url, "username": device_id, "password": ""},
            "signing_public_key": public_key_b64(Ed25519PrivateKey.generate()),
        }
    )


def _count_reports(mqtt_url: str, device_id: str) -> tuple[mqtt.Client, list[int]]:
    host, port, _tls = parse_mqtt_url(mqtt_url)
    received: list[int] = []
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with lock:
            received.append(len(message.payload))

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect(host, port)
    client.subscribe(topic(device_id, "health"), 1)
    client.loop_start()
    return client, received


def largest_mappings(pid: int, count: int = 5) -> list[tuple[str, float]]:
    """The files (shared libraries, extension modules) holding most resident memory, in MB."""
    resident: dict[str, int] = {}
    current = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields and not fields[0].endswith(":"):  # a mapping's header line
                current = fields[5] if len(fields) > 5 and fields[5].startswith("/") else ""
            elif current and fields[0] == "Rss:":
                resident[current] = resident.get(current, 0) + int(fields[1])
    ranked = sorted(resident.items(), key=lambda item: item[1], reverse=True)[:count]
    return [(Path(path).name, kb / 1024) for path, kb in ranked]


def measure(seconds: float, interval: float, mqtt_url: str) -> dict[str, float]:
    """Run one agent for `seconds`; return its memory (RSS, PSS, USS) and CPU share."""
    device_id = f"footprint-{uuid.uuid4().hex[:12]}"
    watcher, received = _count_reports(mqtt_url, device_id)
    with tempfile.TemporaryDirectory(prefix="estate-agent-footprint-") as tmp:
        state_dir = Path(tmp)
        save_identity(state_dir, _identity(device_id, mqtt_url))
        command = [sys.executable, "-m", "agents.cli", "--state-dir", str(state_dir)]
        command += ["--interval", str(interval), "--log-level", "warning"]
        child = subprocess.Popen(command)
        try:
            process = psutil.Process(child.pid)
            time.sleep(WARM_UP_S)
            start_cpu, start_wall = process.cpu_times(), time.monotonic()
            peak_rss = 0
            while time.monotonic() - start_wall < seconds:
                peak_rss = max(peak_rss, process.memory_info().rss)
                time.sleep(1.0)
            end_cpu, end_wall = process.cpu_times(), time.monotonic()
            final = process.memory_full_info()  # uss/pss: what the agent adds to the machine
            libraries = largest_mappings(child.pid)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(15)
    used = (end_cpu.user - start_cpu.user) + (end_cpu.system - start_cpu.system)
    watcher.publish(topic(device_id, "state"), b"", qos=1, retain=True).wait_for_publish(5)
    watcher.disconnect()
    watcher.loop_stop()
    return {
        "seconds": end_wall - start_wall,
        "interval_s": interval,
        "rss_peak_mb": peak_rss / 2**20,
        "rss_final_mb": final.rss / 2**20,
        "pss_final_mb": final.pss / 2**20,
        "uss_final_mb": final.uss / 2**20,
        "cpu_percent": 100 * used / (end_wall - start_wall),
        "reports_received": len(received),
        **{f"file {name}": mb for name, mb in libraries},
    }


def report(figures: dict[str, float]) -> list[str]:
    """The figures as two lines: memory and CPU, then the files holding the most memory."""
    files = [(key[5:], mb) for key, mb in figures.items() if key.startswith("file ")]
    return [
        f"agent footprint over {figures['seconds']:.0f} s at a {figures['interval_s']:g} s "
        f"interval: RSS peak {figures['rss_peak_mb']:.1f} MB, final "
        f"{figures['rss_final_mb']:.1f} MB (PSS {figures['pss_final_mb']:.1f} MB, unshared "
        f"{figures['uss_final_mb']:.1f} MB); CPU {figures['cpu_percent']:.3f}% of one core; "
        f"{figures['reports_received']:.0f} health reports received",
        "largest files resident: " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in files),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600, help="how long to measure")
    parser.add_argument("--interval", type=float, default=30, help="health interval (s)")
    parser.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883", help="broker to report to")
    args = parser.parse_args()
    print("\n".join(report(measure(args.seconds, args.interval, args.mqtt_url))))


if __name__ == "__main__":
    main()
