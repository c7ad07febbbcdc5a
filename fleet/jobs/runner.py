"""Running a job's stages with ansible-runner in a private directory and a scrubbed environment."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ansible_runner.config.runner import RunnerConfig
from ansible_runner.runner import Runner

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.jobs import execution
from fleet.jobs.events import EventRecorder
from fleet.jobs.inventory import write_frozen
from fleet.jobs.models import Job, JobStage
from fleet.jobs.service import PLAYBOOKS_DIR, JobRefused, playbook_path
from fleet.settings import Settings

log = logging.getLogger(__name__)
# Names that carry the control plane's own secrets; no playbook ever sees them.
SECRET_NAME_PARTS = (
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PRIVATE_KEY",
    "SIGNING",
    "CREDENTIAL",
)
SECRET_NAME_PREFIXES = ("ESTATE_", "CELERY_", "DATABASE_", "REDIS_", "PG", "AWS_", "SQLALCHEMY_")
CANCEL_POLL_S = 0.5


class Gateway(Protocol):
    def env(self) -> Mapping[str, str]: ...

    def cancel(self, device_ids: list[str] | None = None) -> Any: ...


GatewayFactory = Callable[[Settings, int], AbstractContextManager[Gateway | None]]


@contextmanager
def mqtt_gateway(settings: Settings, job_id: int) -> Iterator[Gateway | None]:
    """The job's one MQTT connection that every forked Ansible worker shares."""
    from fleet.automation.gateway import JobGateway

    with JobGateway(settings, job_id=job_id) as gateway:
        yield gateway


@contextmanager
def no_gateway(settings: Settings, job_id: int) -> Iterator[Gateway | None]:
    """For inventories that reach their hosts without MQTT (the benchmark's local baseline)."""
    yield None


def scrub_environment(env: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The environment minus anything that could hold the control plane's secrets."""
    secrets = {
        value
        for value in (settings.secret_key, settings.signing_key, settings.database_url)
        if value
    }
    clean = {}
    for name, value in env.items():
        upper = name.upper()
        if upper.startswith(SECRET_NAME_PREFIXES) or any(p in upper for p in SECRET_NAME_PARTS):
            continue
        if value in secrets or any(secret in value for secret in secrets if len(secret) >= 8):
            continue
        clean[name] = value
    return clean


def _search_path() -> str:
    """PATH with this interpreter's bin first: ansible-playbook is the one installed beside it."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])


def artifacts_dir(settings: Settings, job_id: int) -> Path:
    """Where a job keeps what it fetched from devices (logs, diagnostics) after the run."""
    return settings.data_dir / "jobs" / str(job_id)


def _stage_config(
    job: Job, stage: JobStage, private: Path, root: Path, artifacts: Path
) -> RunnerConfig:
    write_frozen(job.inventory, private)
    limit = private / "limit"
    limit.write_text("\n".join(stage.device_ids) + "\n")
    config = RunnerConfig(
        private_data_dir=str(private),
        playbook=str(playbook_path(job.playbook, root)),
        limit=f"@{limit}",
        forks=job.forks,
        extravars={
            **job.variables,
            # Set by the control plane only (launch variables may not start with estate_).
            "estate_job_id": job.id,
            "estate_artifacts_dir": str(artifacts),
        },
        cmdline="--check --diff" if job.check_mode else None,
        timeout=job.timeout_s,
        ident=f"job{job.id}-stage{stage.position}",
        quiet=True,
        suppress_env_files=True,
        settings={"pexpect_timeout": CANCEL_POLL_S, "suppress_ansible_output": True},
        envvars={"ANSIBLE_NOCOLOR": "1", "PATH": _search_path()},
    )
    config.prepare()
    return config


def run_stage(
    ctx: Context,
    job: Job,
    stage: JobStage,
    *,
    root: Path = PLAYBOOKS_DIR,
    gateway_factory: GatewayFactory = mqtt_gateway,
) -> execution.StageOutcome:
    """Run one stage's hosts; events reach the database as they happen."""
    recorder = EventRecorder(ctx.sessions, job_id=job.id, stage=stage.position)
    private = Path(tempfile.mkdtemp(prefix=f"estate-job-{job.id}-"))  # created 0700
    try:
        with gateway_factory(ctx.settings, job.id) as gateway:
            artifacts = artifacts_dir(ctx.settings, job.id)
            artifacts.mkdir(mode=0o700, parents=True, exist_ok=True)
            config = _stage_config(job, stage, private, root, artifacts)
            config.env = scrub_environment(config.env, ctx.settings)
            if gateway is not None:
                config.env.update(gateway.env())
            cancel = _cancel_check(ctx, job.id, recorder, gateway)
            runner = Runner(
                config,
                event_handler=recorder.on_event,
                status_handler=recorder.on_status,
                cancel_callback=cancel,
            )
            runner.run()
            recorder.flush()
            status = str(runner.status)
    except JobRefused as exc:
        return execution.StageOutcome("error", problem=exc.message)
    except Exception as exc:
        log.exception("job %d stage %d could not run", job.id, stage.position)
        recorder.flush()
        return execution.StageOutcome("error", problem=f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(private)
    return execution.StageOutcome(
        status, recorder.results(stage.device_ids), recap=recorder.stats is not None
    )


def _cancel_check(
    ctx: Context, job_id: int, recorder: EventRecorder, gateway: Gateway | None
) -> Callable[[], bool]:
    """ansible-runner polls this: flush events, beat the heart, read the cancel flag."""
    # ansible-runner stores each answer as its cancel state, so once True it must stay True.
    state = {"cancelled": False, "last": 0.0}

    def check() -> bool:
        recorder.flush()
        if state["cancelled"] or time.monotonic() - state["last"] < 1.0:
            return bool(state["cancelled"])
        state["last"] = time.monotonic()
        with transaction(ctx.sessions) as session:
            cancelled = execution.heartbeat(session=session, job_id=job_id, now=utcnow())
        if cancelled:
            state["cancelled"] = True
            if gateway is not None:
                told = gateway.cancel(device_ids=None)
                log.info("job %d cancelled; told %s to stop", job_id, sorted(told or ()))
        return cancelled

    return check


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def drive(
    ctx: Context,
    job_id: int,
    *,
    root: Path = PLAYBOOKS_DIR,
    gateway_factory: GatewayFactory = mqtt_gateway,
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """Run the job's due stages one after another; return its status when it stops or waits."""
    status = ""
    while True:
        with transaction(ctx.sessions) as session:
            stage = execution.claim_next_stage(
                session=session, job_id=job_id, worker=worker_name(), now=clock()
            )
            job = session.get(Job, job_id)
            if stage is None or job is None:
                return job.status if job else "missing"
            session.expunge(job)
            session.expunge(stage)
        log.info("job %d: running %s", job_id, stage.label)
        outcome = run_stage(ctx, job, stage, root=root, gateway_factory=gateway_factory)
        with transaction(ctx.sessions) as session:
            status = execution.finish_stage(
                session=session, stage_id=stage.id, outcome=outcome, now=clock()
            )
        log.info(
            "job %d: %s ended (%s); job is %s", job_id, stage.label, outcome.runner_status, status
        )
        if status != "queued":
            return status
