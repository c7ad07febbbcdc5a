"""Retiring a device disables its login at a real Mosquitto with dynamic security."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from fleet.broker.urls import BrokerConnectError, close_client, connect_client
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Credential, Device
from tests.estate.factories import Api, add_device, api_for, seed_locations
from tests.services.mosquitto import free_port
from tests.services.postgres import migrated_context

if TYPE_CHECKING:  # the fixture module is loaded by tests/conftest.py
    from tests.services.mosquitto import DynsecBroker


def _context(pg_url: str, tmp_path: Path, mqtt_url: str, admin: tuple[str, str]) -> Context:
    return migrated_context(
        pg_url,
        data_dir=tmp_path,
        mqtt_url=mqtt_url,
        mqtt_credentials="dynsec",
        mqtt_admin_username=admin[0],
        mqtt_admin_password=admin[1],
    )


@pytest.fixture
def broker_api(pg_url: str, tmp_path: Path, dynsec_broker: DynsecBroker) -> Iterator[Api]:
    ctx = _context(
        pg_url, tmp_path, dynsec_broker.url_for(*dynsec_broker.control), dynsec_broker.admin
    )
    seed_locations(ctx)
    with api_for(ctx) as api:
        yield api
    ctx.close()


def _enrolled_device(api: Api) -> tuple[str, str]:
    with transaction(api.ctx.sessions) as session:
        device_id = add_device(session, prison="MDI", location="MDI-1-1-001", online=True).id
        session.add(Credential(device_id=device_id, username=device_id))
    return device_id, api.ctx.issuer.issue(device_id)


def test_retired_device_can_no_longer_log_in(broker_api: Api, dynsec_broker: DynsecBroker) -> None:
    device_id, password = _enrolled_device(broker_api)
    address = dynsec_broker.address_for(device_id, password)
    close_client(connect_client(address, device_id, timeout_s=5))

    response = broker_api.post(f"/api/v1/devices/{device_id}/retire", json={"reason": "stolen"})

    assert response.status_code == 200, response.text
    assert response.json()["lifecycle"] == "retired"
    with pytest.raises(BrokerConnectError, match="Not authorized"):
        connect_client(address, device_id, timeout_s=5)


def test_unreachable_broker_leaves_the_device_as_it_was(pg_url: str, tmp_path: Path) -> None:
    ctx = _context(pg_url, tmp_path, f"mqtt://127.0.0.1:{free_port()}", ("admin", "secret"))
    seed_locations(ctx)
    with api_for(ctx) as api:
        with transaction(ctx.sessions) as session:
            device_id = add_device(session, prison="MDI", online=True).id
            session.add(Credential(device_id=device_id, username=device_id))

        response = api.post(f"/api/v1/devices/{device_id}/retire", json={"reason": "stolen"})

        assert response.status_code == 503
        assert "nothing was changed" in response.json()["detail"]
        with ctx.sessions() as session:
            device = session.get(Device, device_id)
            assert device is not None
            assert device.lifecycle == "enrolled"
            [credential] = session.scalars(
                select(Credential).where(Credential.device_id == device_id)
            ).all()
            assert credential.revoked_at is None
    ctx.close()
