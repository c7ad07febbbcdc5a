"""Named FastAPI dependencies: database session, the signed-in principal, permissions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from fleet.auth import service as accounts
from fleet.auth.models import User
from fleet.auth.permissions import allowed
from fleet.context import Context
from fleet.db import transaction
from fleet.settings import Settings

if TYPE_CHECKING:
    from fleet.broker.credentials import CredentialIssuer


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def get_settings_dep(request: Request) -> Settings:
    return get_context(request).settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed if the handler returns, rolled back if it raises."""
    with transaction(get_context(request).sessions) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    caseload: tuple[str, ...]  # empty: the whole estate

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)

    def sees(self, prison_code: str | None) -> bool:
        return not self.caseload or prison_code in self.caseload

    @property
    def scope(self) -> tuple[str, ...] | None:
        """Prison codes to filter by, or None for the whole estate."""
        return self.caseload or None

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.username, user.role, tuple(user.prison_codes))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def current_principal_optional(request: Request, session: DbSession) -> Principal | None:
    token = _bearer(request)
    if token:
        user = accounts.user_for_token(session=session, token=token)
        if user is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "The API token is not valid or was revoked; ask an administrator for a new one.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Principal.of(user)
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id is not None:
        user = session.get(User, user_id)
        if user is not None and user.active:
            return Principal.of(user)
    return None


def current_principal(
    principal: Annotated[Principal | None, Depends(current_principal_optional)],
) -> Principal:
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Sign in, or send an API token as 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: str) -> Any:
    """Dependency factory: the principal must hold `permission`."""

    def _check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"Your role ({principal.role}) may not do this ({permission}).",
            )
        return principal

    return Depends(_check)


def ensure_prison_visible(principal: Principal, prison_code: str | None, what: str) -> None:
    """Outside the caseload is answered as not found, so existence does not leak."""
    if not principal.sees(prison_code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def get_issuer(request: Request) -> CredentialIssuer:
    return get_context(request).issuer


Issuer = Annotated["CredentialIssuer", Depends(get_issuer)]
