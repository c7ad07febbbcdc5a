"""The API on a fresh PostgreSQL database with MDI and LEI laid out, attachments in tmp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Context
from tests.estate.factories import Api, api_for, seed_locations
from tests.facilities.builders import ATTACHMENT_LIMIT
from tests.services.postgres import migrated_context


@pytest.fixture
def fault_context(pg_url: str, tmp_path: Path) -> Iterator[Context]:
    ctx = migrated_context(
        pg_url,
        data_dir=tmp_path,
        attachments_dir=tmp_path / "attachments",
        attachment_max_bytes=ATTACHMENT_LIMIT,
    )
    seed_locations(ctx)
    yield ctx
    ctx.close()


@pytest.fixture
def api(fault_context: Context) -> Iterator[Api]:
    with api_for(fault_context) as client:
        yield client
