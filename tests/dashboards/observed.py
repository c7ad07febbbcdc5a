"""A small live estate whose every metric reaches a real VictoriaMetrics, for dashboard queries.

Simulated devices report through the local Mosquitto to a real ingest pipeline, which writes
health to VictoriaMetrics; vmagent scrapes /metrics of the API, the ingest pipeline and a real
`estate worker` every second, as the compose file's VictoriaMetrics does every 15 s.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import redis
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, start_http_server

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.service import register_device
from fleet.ingest.metrics import IngestMetrics
from fleet.ingest.pipeline import IngestPipeline, PipelineOptions
from fleet.settings import Settings
from fleet.simulate.simulator import Simulator
from fleet.tasks.app import make_celery
from fleet.tasks.devices import SWEEP_SILENT
from tests.deploy.processes import estate_env, running_estate
from tests.services.api_server import running_api
from tests.services.postgres import create_database, drop_database, migrated_context
from tests.services.victoria import VictoriaServer, free_port

MQTT_HOST = os.environ.get("ESTATE_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("ESTATE_TEST_MQTT_PORT", "1883"))
REDIS_URL = "redis://127.0.0.1:6379/15"
VMAGENT_BIN = os.environ.get("ESTATE_TEST_VMAGENT_BIN", "/usr/bin/vmagent")
PRISONS = ("MDI", "LEI")
DEVICES_PER_PRISON = 3


@dataclass
class ObservedEstate:
    victoria: VictoriaServer
    devices: list[str]

    def query(self, expr: str, **params: Any) -> list[dict[str, Any]]:
        """The result of an instant query (or a range query when start/end/step are given)."""
        path = "query_range" if "step" in params else "query"
        response = httpx.post(
            f"{self.victoria.url}/api/v1/{path}",
            data={"query": expr, "nocache": "1", **params},
            timeout=30,
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"VictoriaMetrics refused {expr!r}: {body.get('error', body)}")
        return list(body["data"]["result"])

    def label_values(self, label: str, selector: str | None) -> list[str]:
        params: dict[str, Any] = {"start": int(time.time()) - 600}
        if selector:
            params["match[]"] = selector
        response = httpx.get(
            f"{self.victoria.url}/api/v1/label/{label}/values", params=params, timeout=30
        )
        response.raise_for_status()
        return sorted(response.json()["data"])

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0


def _wait(what: str, check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.5)


@contextmanager
def _vmagent(directory: Path, victoria: VictoriaServer, jobs: dict[str, str]) -> Iterator[None]:
    if not Path(VMAGENT_BIN).exists():
        pytest.fail(f"{VMAGENT_BIN} is missing: apt-get install victoria-metrics")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in jobs.items()
        ],
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scrape.yml").write_text(yaml.safe_dump(config))
    with open(directory / "vmagent.log", "wb") as log:
        process = subprocess.Popen(
            [
                VMAGENT_BIN,
                f"-promscrape.config={directory / 'scrape.yml'}",
                f"-remoteWrite.url={victoria.url}/api/v1/write",
                f"-remoteWrite.tmpDataPath={directory / 'buffer'}",
                f"-httpListenAddr=127.0.0.1:{free_port()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def _ingest(ctx: Context) -> Iterator[str]:
    """A real ingest pipeline on a thread, its metrics served over HTTP; yields host:port."""
    registry = CollectorRegistry()
    pipeline = IngestPipeline(
        ctx,
        PipelineOptions(client_id=f"dash-ingest-{uuid.uuid4().hex[:8]}", shared=True),
        metrics=IngestMetrics(registry),
    )
    thread = threading.Thread(target=pipeline.run, name="dashboard-ingest", daemon=True)
    thread.start()
    port = free_port()
    server, server_thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        if not pipeline.wait_ready(10):
            pytest.fail("ingest did not subscribe to the local Mosquitto within 10s")
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        server_thread.join(5)
        pipeline.stop()
        thread.join(30)


@contextmanager
def _worker(ctx: Context, directory: Path) -> Iterator[str]:
    """A real `estate worker` on its own Redis queue that has run one task; yields host:port."""
    queue = f"estate-dash-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    port = free_port()
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(directory),
        ESTATE_DATABASE_URL=ctx.settings.database_url,
        ESTATE_CELERY_BROKER_URL=REDIS_URL,
        ESTATE_CELERY_RESULT_BACKEND=REDIS_URL,
    )
    args = ["worker", "--concurrency", "1", "--queues", queue, "--metrics-port", str(port)]
    args += ["--hostname", f"{queue}@%h"]
    sender = make_celery(
        Settings(
            profile="test",
            database_url=ctx.settings.database_url,
            celery_broker_url=REDIS_URL,
            celery_result_backend=REDIS_URL,
        )
    )
    stop_sending = threading.Event()
    try:
        with running_estate(args, env, directory / "worker.log") as worker:
            result = sender.tasks[SWEEP_SILENT].apply_async(queue=queue)
            try:
                result.get(timeout=60)
            except Exception as exc:
                pytest.fail(f"the worker did not run a task ({exc!r}):\n{worker.output()}")
            finally:
                result.forget()
            # A sweep a second while scraped, so task run-time rates are never all zero.
            sending = threading.Thread(
                target=_send_sweeps, args=(sender, queue, stop_sending), daemon=True
            )
            sending.start()
            try:
                yield f"127.0.0.1:{port}"
            finally:
                stop_sending.set()
                sending.join(10)
    finally:
        sender.close()
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()


def _send_sweeps(sender: Any, queue: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        sender.tasks[SWEEP_SILENT].apply_async(queue=queue, ignore_result=True)


def _publish_malformed(device_id: str) -> None:
    """One report ingest must refuse, so the rejection and dead-letter panels have data."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dash-bad-{uuid.uuid4().hex[:8]}")
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    try:
        client.publish(f"estate/v1/dev/{device_id}/health", b"not json", qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def observed_estate(directory: Path) -> Iterator[ObservedEstate]:
    """Start everything, wait until every kind of metric has several samples, yield it."""
    with ExitStack() as stack:
        victoria = VictoriaServer(directory / "victoria")
        victoria.start()
        stack.callback(victoria.stop)
        url = create_database()
        stack.callback(drop_database, url)
        ctx = migrated_context(
            url,
            data_dir=directory,
            mqtt_url=f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
            mqtt_credentials="none",
            mqtt_shared_group=f"dash-{uuid.uuid4().hex[:8]}",
            tsdb_url=victoria.url,
            ingest_batch_ms=50,
        )
        stack.callback(ctx.close)
        simulator = Simulator(
            ctx.settings, PRISONS, DEVICES_PER_PRISON, interval=1.0, seed=11, context=ctx
        )
        devices = [placed.ident.device_id for placed in simulator.prepare()]
        with transaction(ctx.sessions) as session:
            for number, prison in enumerate(PRISONS):
                register_device(
                    session=session,
                    actor="rollout",
                    serial=f"DASH-{uuid.uuid4().hex[:8]}-{number}",
                    kind="tablet",
                    prison_code=prison,
                )
        api = stack.enter_context(running_api(ctx.settings)).removeprefix("http://")
        ingest = stack.enter_context(_ingest(ctx))
        worker = stack.enter_context(_worker(ctx, directory))
        stack.enter_context(
            _vmagent(
                directory / "vmagent",
                victoria,
                {"estate-api": api, "estate-ingest": ingest, "estate-worker": worker},
            )
        )
        simulator.start()
        stack.callback(simulator.stop)
        if not simulator.wait_online(30):
            pytest.fail(f"simulated devices did not come online: {simulator.stats().line()}")
        _publish_malformed(devices[0])
        httpx.get(f"http://{api}/api/v1/prisons", timeout=10)  # an API route besides /metrics

        estate = ObservedEstate(victoria, devices)
        every = len(devices)
        _wait(
            "health from every simulated device",
            lambda: estate.value("count(count_over_time(device_health_cpu[1m]) >= 3)") >= every,
        )
        _wait(
            "every device online in the scraped inventory",
            lambda: estate.value("sum(estate_devices_online)") >= every,
        )
        _wait(
            "the rejected report counted",
            lambda: estate.value("sum(estate_ingest_messages_rejected_total)") >= 1,
        )
        _wait(
            "task run times of several sweeps scraped",
            lambda: estate.value("sum(increase(estate_task_run_seconds_count[1m]))") >= 2,
        )
        _wait(
            "three processes scraped several times",
            lambda: estate.value('count(count_over_time(up{job=~"estate-.+"}[1m]) >= 4)') >= 3,
        )
        yield estate
