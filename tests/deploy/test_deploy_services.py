"""The deploy/ configuration run by the real servers: Mosquitto (with its start script) and
VictoriaMetrics, with the flags and commands docker-compose.yml gives them."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet.broker.urls import BrokerAddress, BrokerConnectError, close_client, connect_client
from fleet.cli import main
from tests.deploy.certs import ServerCertificate, write_server_certificate
from tests.deploy.compose import ROOT, services
from tests.deploy.processes import free_port

MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
INIT_SCRIPT = ROOT / "deploy" / "mosquitto" / "dynsec-init.sh"
SCRAPE_CONFIG = ROOT / "deploy" / "victoriametrics" / "scrape.yml"
VICTORIA_BIN = os.environ.get("ESTATE_TEST_VICTORIA_BIN", "/usr/bin/victoria-metrics")
PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)
ADMIN = "estate-admin"


def _executable(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        pytest.fail(f"{name} is not installed (apt-get install mosquitto mosquitto-clients)")
    return found


def _plugin() -> str:
    for candidate in (os.environ.get("MOSQUITTO_DYNSEC_PLUGIN"), *PLUGIN_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("mosquitto_dynamic_security.so not found; set MOSQUITTO_DYNSEC_PLUGIN")


@dataclass
class DeployedBroker:
    """Mosquitto started the way the compose file starts it, on this machine's free ports."""

    workdir: Path
    certs: ServerCertificate
    plain_port: int
    tls_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def store(self) -> Path:
        return self.workdir / "data" / "dynamic-security.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    def plain(self, username: str | None, password: str | None) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.plain_port, username, password)

    def tls(self, username: str | None, password: str | None) -> BrokerAddress:
        return BrokerAddress(
            "127.0.0.1",
            self.tls_port,
            username,
            password,
            tls=True,
            ca_file=str(self.certs.ca_file),
        )

    def write_config(self) -> Path:
        """deploy/mosquitto/mosquitto.conf with container paths and ports mapped onto this host."""
        text = MOSQUITTO_CONF.read_text()
        replacements = {
            "plugin /usr/lib/mosquitto_dynamic_security.so": f"plugin {_plugin()}",
            "/mosquitto/data/": f"{self.workdir / 'data'}/",
            "/mosquitto/certs/": f"{self.certs.cert_file.parent}/",
            "listener 1883\n": f"listener {self.plain_port} 127.0.0.1\n",
            "listener 8883\n": f"listener {self.tls_port} 127.0.0.1\n",
            "log_dest stdout": f"log_dest file {self.log_file}",
        }
        for old, new in replacements.items():
            assert old in text, f"{MOSQUITTO_CONF.name} no longer has {old!r}: update this test"
            text = text.replace(old, new)
        # Keep this user: as root Mosquitto would switch to `mosquitto`, unable to write here.
        text += f"\nuser {getpass.getuser()}\n"
        path = self.workdir / "mosquitto.conf"
        path.write_text(text)
        return path

    def start(self, admin_password: str, timeout_s: float = 15) -> None:
        """Run the start script as the container does, ending in Mosquitto itself."""
        (self.workdir / "data").mkdir(exist_ok=True)
        config = self.write_config()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin",
            "DYNSEC_STORE": str(self.store),
            "MQTT_ADMIN_USERNAME": ADMIN,
            "MQTT_ADMIN_PASSWORD": admin_password,
        }
        self.process = subprocess.Popen(
            ["sh", str(INIT_SCRIPT), _executable("mosquitto"), "-c", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                pytest.fail(f"start script exited {self.process.returncode}: {output}")
            started = self.log_file.exists() and "mosquitto version" in self.log_file.read_text()
            if started and _can_connect(self.plain(None, None)) is not None:
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"mosquitto did not start in {timeout_s:g}s: {self.log_file.read_text()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout:
            process.stdout.close()


def _can_connect(address: BrokerAddress) -> str | None:
    """'ok' if the broker lets this login in, its refusal if it turns it down, else None."""
    try:
        close_client(connect_client(address, f"deploy-test-{os.urandom(4).hex()}", timeout_s=5))
    except BrokerConnectError as exc:
        return exc.reason if exc.refused else None
    return "ok"


def _new_broker(workdir: Path) -> DeployedBroker:
    return DeployedBroker(
        workdir=workdir,
        certs=write_server_certificate(workdir / "certs"),
        plain_port=free_port(),
        tls_port=free_port(),
    )


@pytest.fixture(scope="module")
def admin_password() -> str:
    return "admin-" + os.urandom(12).hex()


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, admin_password: str
) -> Iterator[DeployedBroker]:
    broker = _new_broker(tmp_path_factory.mktemp("deployed-mosquitto"))
    broker.start(admin_password)
    try:
        yield broker
    finally:
        broker.stop()


def test_start_script_creates_a_private_store_with_the_admin(
    deployed: DeployedBroker, admin_password: str
) -> None:
    assert deployed.store.is_file()
    assert deployed.store.stat().st_mode & 0o077 == 0, "the store holds password hashes"
    assert admin_password not in deployed.store.read_text()
    assert _can_connect(deployed.plain(ADMIN, admin_password)) == "ok"


def test_devices_listener_speaks_tls_with_the_mounted_certificate(
    deployed: DeployedBroker, admin_password: str
) -> None:
    assert _can_connect(deployed.tls(ADMIN, admin_password)) == "ok"


def test_anonymous_and_wrong_passwords_are_refused(deployed: DeployedBroker) -> None:
    for address in (
        deployed.plain(None, None),
        deployed.plain(ADMIN, "not-the-password"),
        deployed.tls("nobody", "nothing"),
    ):
        refusal = _can_connect(address)
        assert refusal not in (None, "ok"), f"{address.redacted()}: {refusal}"


def test_compose_healthcheck_passes_against_the_broker(
    deployed: DeployedBroker, admin_password: str
) -> None:
    check = services()["mosquitto"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    command = check[1].replace("$$", "$")
    assert "-p 1883" in command, "the healthcheck should probe the internal listener"
    command = command.replace("-p 1883", f"-p {deployed.plain_port}")
    env = {"PATH": os.environ.get("PATH", ""), "MQTT_ADMIN_USERNAME": ADMIN}
    healthy = subprocess.run(
        ["sh", "-c", command],
        env={**env, "MQTT_ADMIN_PASSWORD": admin_password},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    unhealthy = subprocess.run(
        ["sh", "-c", command],
        env={**env, "MQTT_ADMIN_PASSWORD": "wrong"},
        capture_output=True,
        timeout=20,
    )
    assert unhealthy.returncode != 0


def test_broker_bootstrap_with_the_compose_settings_gives_services_their_logins(
    deployed: DeployedBroker, admin_password: str
) -> None:
    ingest_password = "ingest-" + os.urandom(8).hex()
    control_password = "control-" + os.urandom(8).hex()
    env = {
        "ESTATE_PROFILE": "test",
        "ESTATE_MQTT_URL": deployed.plain("estate-control", control_password).to_url(),
        "ESTATE_MQTT_CREDENTIALS": "dynsec",
        "ESTATE_MQTT_ADMIN_USERNAME": ADMIN,
        "ESTATE_MQTT_ADMIN_PASSWORD": admin_password,
        "ESTATE_MQTT_INGEST_PASSWORD": ingest_password,
        "ESTATE_MQTT_CONTROL_PASSWORD": control_password,
    }
    command = services()["broker-bootstrap"]["command"]
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code == 0, result.output
    assert _can_connect(deployed.plain("estate-ingest", ingest_password)) == "ok"
    assert _can_connect(deployed.plain("estate-control", control_password)) == "ok"


def test_restart_keeps_the_store_and_ignores_a_changed_admin_password(tmp_path: Path) -> None:
    broker = _new_broker(tmp_path)
    try:
        broker.start("first-password")
        first = broker.store.read_text()
        broker.stop()
        broker.start("second-password")
        assert broker.store.read_text() == first
        assert _can_connect(broker.plain(ADMIN, "first-password")) == "ok"
        assert _can_connect(broker.plain(ADMIN, "second-password")) not in (None, "ok")
    finally:
        broker.stop()


def test_victoriametrics_accepts_the_compose_flags_and_scrape_config(tmp_path: Path) -> None:
    if not Path(VICTORIA_BIN).exists():
        pytest.fail(f"{VICTORIA_BIN} is missing: apt-get install victoria-metrics")
    flags = []
    for flag in services()["victoriametrics"]["command"]:
        flag = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", flag)  # compose's ${VAR:-default}
        flag = flag.replace("=/storage", f"={tmp_path / 'storage'}")
        flag = flag.replace("=/etc/victoriametrics/scrape.yml", f"={SCRAPE_CONFIG}")
        flag = flag.replace("-httpListenAddr=:8428", f"-httpListenAddr=127.0.0.1:{free_port()}")
        flags.append(flag)
    checked = subprocess.run(
        [VICTORIA_BIN, *flags, "-promscrape.config.dryRun"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "-promscrape.config is ok" in checked.stdout + checked.stderr
