"""Who am I, for API clients."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from fleet.api.deps import CurrentPrincipal

router = APIRouter(tags=["people"])


class Me(BaseModel):
    username: str
    role: str
    caseload: list[str]


@router.get("/me", response_model=Me)
def me(principal: CurrentPrincipal) -> Me:
    """The signed-in user, their role and caseload (empty: the whole estate)."""
    return Me(username=principal.username, role=principal.role, caseload=list(principal.caseload))
