"""A job gateway that cannot start releases what it already holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.automation.gateway import JobGateway
from fleet.broker.urls import BrokerConnectError
from fleet.context import Context
from fleet.settings import Settings
from tests.services.mosquitto import free_port


def _closed_contexts(monkeypatch: pytest.MonkeyPatch) -> list[Context]:
    closed: list[Context] = []
    real_close = Context.close

    def close(self: Context) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(Context, "close", close)
    return closed


def test_a_broker_that_refuses_the_connection_still_closes_the_gateways_context(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _closed_contexts(monkeypatch)
    settings = Settings(
        database_url=pg_url,
        data_dir=tmp_path,
        mqtt_url=f"mqtt://127.0.0.1:{free_port()}",  # nothing listens there
    )
    gateway = JobGateway(settings, job_id="no-broker")
    gateway._ctx.engine.connect().close()  # the engine exists, as once presence was asked
    with pytest.raises(BrokerConnectError), gateway:
        pass
    assert closed == [gateway._ctx]
    assert gateway._ctx.engine.pool.checkedout() == 0
    assert gateway._dir is None


def test_a_gateway_that_cannot_be_built_closes_its_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _closed_contexts(monkeypatch)
    settings = Settings(data_dir=tmp_path, signing_key="not a key")
    with pytest.raises(ValueError, match="not a base64 Ed25519 seed"):
        JobGateway(settings, job_id="bad-key")
    assert len(closed) == 1
