"""Schemathesis against the running app's OpenAPI: whatever is sent, never a 5xx, never a status
the document does not list, and every response matches its schema. Findings are fixed and kept as
regression tests (tests/fuzz/test_api_regressions.py, tests/api/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fleet.auth.service import create_user, issue_token
from fleet.db import transaction
from fleet.estate.service import generate_locations
from tests.estate.factories import add_device
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",  # every status the app answers is in the document
        "response_schema_conformance",  # including the bodies of refusals (401 ... 422)
        "content_type_conformance",
    )
)


def test_api_survives_schemathesis(pg_url: str, tmp_path: Path) -> None:
    ctx = migrated_context(pg_url, data_dir=tmp_path)
    with transaction(ctx.sessions) as session:
        generate_locations(session=session, prison_code="MDI", wings=1, landings=1, cells=3)
        for _ in range(3):
            add_device(session, prison="MDI", location="MDI-1-1-001", online=True, battery=50)
        admin = create_user(session=session, username="fuzzer", role="estate-admin")
        token = issue_token(session=session, user=admin)
    try:
        with running_api(ctx.settings) as base:
            result = subprocess.run(
                [
                    str(Path(sys.executable).parent / "schemathesis"),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    CHECKS,
                    "--header",
                    f"Authorization: Bearer {token}",
                    "--max-examples",
                    "25",
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--seed",
                    "20261126",
                    "--generation-database",
                    "none",
                    "--report-dir",
                    str(tmp_path / "reports"),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
    finally:
        ctx.close()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
