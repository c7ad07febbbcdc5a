"""Users, passwords, API tokens and caseloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.auth.models import ROLES, ApiToken, User, UserPrison
from fleet.db import utcnow
from fleet.estate.models import Prison

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
TOKEN_PREFIX = "est_"  # noqa: S105 - a public prefix, not a secret
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; the message says why."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_b64, digest_b64 = stored.split("$", 2)
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    *,
    session: Session,
    username: str,
    role: str,
    prisons: Sequence[str] = (),
    password: str | None = None,
    display_name: str = "",
) -> User:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountError(
            "username must be 2-64 characters of lowercase letters, digits, '.', '_' or '-'"
        )
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if session.scalars(select(User).where(User.username == username)).first():
        raise AccountError(f"user {username!r} already exists; choose another username")
    codes = sorted({p.strip().upper() for p in prisons})
    known = set(session.scalars(select(Prison.code).where(Prison.code.in_(codes))))
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise AccountError(
            f"unknown prison code(s): {', '.join(unknown)}; see /api/v1/prisons for codes"
        )
    if password is not None and len(password) < 12:
        raise AccountError("password must be at least 12 characters")
    user = User(
        username=username,
        role=role,
        display_name=display_name or username,
        password_hash=hash_password(password) if password else None,
    )
    user.caseload = [UserPrison(prison_code=c) for c in codes]
    session.add(user)
    session.flush()
    return user


def issue_token(*, session: Session, user: User, name: str = "", token: str | None = None) -> str:
    """Create an API token for the user; the plain token is returned once and never stored."""
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), name=name))
    session.flush()
    return token


def user_for_token(*, session: Session, token: str) -> User | None:
    row = session.scalars(
        select(ApiToken).where(
            ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_at = utcnow()
    return user


def user_for_password(*, session: Session, username: str, password: str) -> User | None:
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None or not user.active:
        # Spend the same time as a real check so usernames cannot be probed by timing.
        check_password(password, hash_password("timing-equaliser"))
        return None
    return user if check_password(password, user.password_hash) else None


def get_user(*, session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username.strip().lower())).first()
