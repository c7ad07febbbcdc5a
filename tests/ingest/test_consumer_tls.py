"""Ingest's own MQTT reader over TLS and with a password, against a Mosquitto started here."""

from __future__ import annotations

import getpass
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.protocol import PREFIX
from fleet.broker.urls import BrokerAddress, close_client, connect_client
from fleet.ingest.classify import Inbound
from fleet.ingest.consumer import ReportConsumer
from fleet.settings import Settings
from tests.deploy.certs import ServerCertificate, write_server_certificate
from tests.deploy.processes import free_port
from tests.ingest.conftest import unique


@dataclass
class TlsBroker:
    port: int
    certs: ServerCertificate

    def address(self, username: str, password: str) -> BrokerAddress:
        return BrokerAddress(
            "127.0.0.1", self.port, username, password, tls=True, ca_file=str(self.certs.ca_file)
        )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    passwd = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin")
    if not mosquitto or not passwd:
        pytest.fail("mosquitto and mosquitto_passwd must be installed (apt-get install mosquitto)")
    workdir = tmp_path_factory.mktemp("tls-mosquitto")
    certs = write_server_certificate(workdir)
    password_file = workdir / "passwd"
    password_file.write_text("")
    subprocess.run([passwd, "-b", str(password_file), "ingest", "s3cret"], check=True)
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {certs.ca_file}\ncertfile {certs.cert_file}\nkeyfile {certs.key_file}\n"
        f"allow_anonymous false\npassword_file {password_file}\n"
        f"persistence false\nlog_dest file {workdir / 'mosquitto.log'}\n"
        # As root Mosquitto would switch to `mosquitto`, unable to read this directory.
        f"user {getpass.getuser()}\n"
    )
    process = subprocess.Popen([mosquitto, "-c", str(config)])
    broker = TlsBroker(port, certs)
    try:
        _wait_until_listening(broker, process, workdir / "mosquitto.log")
        yield broker
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_listening(broker: TlsBroker, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            written = log.read_text() if log.exists() else "(no log written)"
            pytest.fail(f"mosquitto exited {process.returncode}: {written}")
        try:
            close_client(connect_client(broker.address("ingest", "s3cret"), unique("probe-")))
            return
        except ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"mosquitto did not listen on {broker.port}: {log.read_text()}")


def _consumer(address: BrokerAddress, inbox: queue.SimpleQueue[Inbound]) -> ReportConsumer:
    settings = Settings(profile="test", mqtt_url=address.to_url())  # type: ignore[call-arg]
    return ReportConsumer(settings, client_id=unique("ingest-"), shared=True, inbox=inbox)


def test_reports_arrive_over_tls_and_are_acknowledged_once_in_one_write(
    tls_broker: TlsBroker,
) -> None:
    inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
    consumer = _consumer(tls_broker.address("ingest", "s3cret"), inbox)
    stop = threading.Event()
    assert consumer.start(stop=stop)
    try:
        assert consumer.wait_ready(10)
        device = unique("MDI-TAB-")
        publisher = connect_client(tls_broker.address("ingest", "s3cret"), unique("pub-"))
        try:
            for seq in range(50):
                publisher.publish(f"{PREFIX}/{device}/health", b'{"seq": %d}' % seq, qos=1)
            received = [inbox.get(timeout=10) for _ in range(50)]
        finally:
            close_client(publisher)
        assert [m.topic for m in received] == [f"{PREFIX}/{device}/health"] * 50
        assert [m.payload for m in received] == [b'{"seq": %d}' % seq for seq in range(50)]
        assert {m.qos for m in received} == {1}
        assert consumer.ack(received) == 50
        # A message from an earlier connection is never acknowledged on this one.
        stale = received[0]._replace(generation=received[0].generation - 1)
        assert consumer.ack([stale]) == 0
    finally:
        stop.set()
        consumer.stop()
    assert inbox.empty()


def test_a_wrong_password_is_refused_and_retried_without_subscribing(
    tls_broker: TlsBroker, caplog: pytest.LogCaptureFixture
) -> None:
    inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
    consumer = _consumer(tls_broker.address("ingest", "wrong"), inbox)
    stop = threading.Event()
    started: list[bool] = []
    runner = threading.Thread(target=lambda: started.append(consumer.start(stop=stop, retry_s=0.2)))
    runner.start()
    try:
        assert not consumer.wait_ready(1.5)
        # Mosquitto answers a wrong password with "not authorised".
        assert "refused us: not authorised" in caplog.text
    finally:
        stop.set()
        runner.join(10)
        consumer.stop()
    assert started == [False]
