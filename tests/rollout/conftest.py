"""An API client on a fresh PostgreSQL database with MDI and LEI laid out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet.context import Context
from tests.estate.factories import Api, api_for, seed_locations


@pytest.fixture
def api(pg_context: Context) -> Iterator[Api]:
    seed_locations(pg_context)
    with api_for(pg_context) as client:
        yield client
