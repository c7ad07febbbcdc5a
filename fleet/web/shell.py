"""What every page shares: who is signed in, their navigation, the prison being looked at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status

from fleet.api.deps import Principal, current_principal_optional

CHOSEN_PRISON = "prison"


@dataclass(frozen=True)
class NavItem:
    key: str
    href: str
    text: str


ESTATE = NavItem("estate", "/estate", "Estate overview")
ATTENTION = NavItem("attention", "/attention", "Devices needing attention")
DEVICES = NavItem("devices", "/devices", "Devices")
FAULTS = NavItem("faults", "/faults", "Faults")
ROLLOUT = NavItem("rollout", "/rollout", "Rollout")
JOBS = NavItem("jobs", "/jobs", "Jobs")
ALERTS = NavItem("alerts", "/alerts", "Alerts")

NAV_BY_ROLE: dict[str, tuple[NavItem, ...]] = {
    "rollout-manager": (ESTATE, ROLLOUT),
    "it-support": (ATTENTION, ALERTS, DEVICES, JOBS),
    "facilities": (FAULTS,),
    "estate-admin": (ESTATE, ROLLOUT, ATTENTION, ALERTS, DEVICES, FAULTS, JOBS),
    "viewer": (ESTATE, ROLLOUT, DEVICES),
}


def home_path(role: str) -> str:
    """Where a role lands after signing in: the first item of its navigation."""
    return NAV_BY_ROLE.get(role, (ESTATE,))[0].href


def navigation(principal: Principal | None, active: str | None) -> list[dict[str, object]]:
    if principal is None:
        return []
    return [
        {"href": item.href, "text": item.text, "active": item.key == active}
        for item in NAV_BY_ROLE.get(principal.role, (ESTATE,))
    ]


def chosen_prison(request: Request, principal: Principal | None) -> str | None:
    """The prison picked in the switcher, if it is still in the caseload."""
    if principal is None or len(principal.caseload) < 2 or "session" not in request.scope:
        return None
    code = request.session.get(CHOSEN_PRISON)
    return code if isinstance(code, str) and code in principal.caseload else None


def page_scope(request: Request, principal: Principal) -> tuple[str, ...] | None:
    """Prison codes a page should show: the chosen prison, the caseload, or None for all."""
    chosen = chosen_prison(request, principal)
    return (chosen,) if chosen else principal.scope


class SignInRequired(Exception):
    """A page needs a signed-in person; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sign_in_url(next_path: str) -> str:
    return "/sign-in" if next_path == "/" else f"/sign-in?next={quote(next_path, safe='/')}"


def page_principal(
    request: Request,
    principal: Annotated[Principal | None, Depends(current_principal_optional)],
) -> Principal:
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def require_page_permission(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Your role ({principal.role}) cannot see this page."
        )
