"""Reporting faults through the API with defaults a test can override."""

from __future__ import annotations

import httpx

from tests.estate.factories import Api

# Small, so a test can exceed it cheaply.
ATTACHMENT_LIMIT = 4096


def report(
    api: Api, role: str = "facilities", prisons: tuple[str, ...] = (), **body: object
) -> httpx.Response:
    """POST a P1 cell-bell fault at MDI-1-1-001 unless told otherwise."""
    return api.post("/api/v1/faults", role=role, prisons=prisons, json=fault_body(**body))


def fault_body(**overrides: object) -> dict[str, object]:
    return {
        "location": "MDI-1-1-001",
        "category": "door_lock_cell_bell",
        "priority": "P1",
        "description": "Cell bell does not sound on the landing",
        **overrides,
    }


def move(
    api: Api, fault_id: int, to: str, role: str = "facilities", **body: object
) -> httpx.Response:
    return api.post(f"/api/v1/faults/{fault_id}/transitions", role=role, json={"to": to, **body})
