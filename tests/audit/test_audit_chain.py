"""The audit trail is hash-chained and `estate audit verify` names the first altered event."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from fleet.audit.service import record, verify
from fleet.cli import main
from fleet.context import Context
from fleet.db import transaction


def _write_events(ctx: Context, n: int) -> None:
    with transaction(ctx.sessions) as session:
        for i in range(n):
            record(
                session=session,
                actor="alice",
                action="device.moved",
                target_type="device",
                target_id=f"MDI-TAB-{i:06d}",
                prison_code="MDI",
                detail={"to": f"MDI-1-1-{i:03d}"},
            )


def test_chain_verifies_when_untouched(pg_context: Context) -> None:
    _write_events(pg_context, 5)
    with pg_context.sessions() as session:
        result = verify(session=session)
    assert result.ok
    assert result.checked == 5


def test_verify_cli_names_the_row_edited_in_the_database(
    pg_context: Context, monkeypatch: object
) -> None:
    _write_events(pg_context, 6)
    with pg_context.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM audit_event ORDER BY id"))]
        conn.execute(
            text("UPDATE audit_event SET actor = 'mallory' WHERE id = :id"), {"id": ids[3]}
        )
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["audit", "verify"],
        env={"ESTATE_DATABASE_URL": pg_context.settings.effective_database_url},
    )
    assert result.exit_code == 1
    assert f"event {ids[3]}" in result.output
    assert "content no longer matches" in result.output


def test_verify_detects_a_deleted_row(pg_context: Context) -> None:
    _write_events(pg_context, 4)
    with pg_context.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM audit_event ORDER BY id"))]
        conn.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
    with pg_context.sessions() as session:
        result = verify(session=session)
    assert result.first_bad_id == ids[2]
    assert "link" in result.problem


def test_verify_detects_a_forged_hash_chain_tail(pg_context: Context) -> None:
    """Editing content and recomputing only that row's hash still breaks the next link."""
    _write_events(pg_context, 3)
    with pg_context.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM audit_event ORDER BY id"))]
        conn.execute(
            text("UPDATE audit_event SET hash = :h WHERE id = :id"), {"h": "f" * 64, "id": ids[0]}
        )
    with pg_context.sessions() as session:
        result = verify(session=session)
    assert result.first_bad_id == ids[0]
