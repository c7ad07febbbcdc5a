"""`estate users create` prints the token last; bad input is refused with a clear message."""

from __future__ import annotations

from click.testing import CliRunner

from fleet.auth import service as accounts
from fleet.cli import main
from fleet.context import Context


def _invoke(ctx: Context, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        main, list(args), env={"ESTATE_DATABASE_URL": ctx.settings.effective_database_url}
    )


def test_create_prints_a_working_token_as_the_last_line(pg_context: Context) -> None:
    result = _invoke(
        pg_context,
        "users",
        "create",
        "--username",
        "j.smith",
        "--role",
        "it-support",
        "--prison",
        "MDI",
        "--prison",
        "lei",
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    with pg_context.sessions() as session:
        user = accounts.user_for_token(session=session, token=token)
        assert user is not None
        assert user.role == "it-support"
        assert user.prison_codes == ["LEI", "MDI"]


def test_unknown_prison_role_and_duplicate_are_refused(pg_context: Context) -> None:
    bad_prison = _invoke(
        pg_context, "users", "create", "--username", "a.b", "--role", "viewer", "--prison", "XXX"
    )
    assert bad_prison.exit_code != 0
    assert "unknown prison code(s): XXX" in bad_prison.output
    bad_role = _invoke(pg_context, "users", "create", "--username", "a.b", "--role", "god")
    assert bad_role.exit_code != 0
    assert "god" in bad_role.output
    ok = _invoke(pg_context, "users", "create", "--username", "a.b", "--role", "viewer")
    assert ok.exit_code == 0
    dup = _invoke(pg_context, "users", "create", "--username", "A.B", "--role", "viewer")
    assert dup.exit_code != 0
    assert "already exists" in dup.output
    garbage = _invoke(pg_context, "users", "create", "--username", "<script>", "--role", "viewer")
    assert garbage.exit_code != 0
    assert "username must be" in garbage.output


def test_short_password_refused_and_password_sign_in_works(pg_context: Context) -> None:
    short = _invoke(
        pg_context,
        "users",
        "create",
        "--username",
        "c.d",
        "--role",
        "viewer",
        "--password",
        "short",
    )
    assert short.exit_code != 0
    assert "at least 12" in short.output
    ok = _invoke(
        pg_context,
        "users",
        "create",
        "--username",
        "c.d",
        "--role",
        "viewer",
        "--password",
        "correct horse battery",
    )
    assert ok.exit_code == 0
    with pg_context.sessions() as session:
        assert accounts.user_for_password(
            session=session, username="c.d", password="correct horse battery"
        )
        assert not accounts.user_for_password(session=session, username="c.d", password="wrong")
