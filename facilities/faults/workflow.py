"""The fault lifecycle: which moves are legal and what each one requires."""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = (
    "reported",
    "triaged",
    "assigned",
    "in_progress",
    "on_hold",
    "cleared",
    "closed",
    "cancelled",
)
# "reopened" is a move, not a place to rest: a reopened fault goes back to triage.
ACTIONS = (*STATUSES[1:], "reopened")
OPEN_STATUSES = ("reported", "triaged", "assigned", "in_progress", "on_hold")

NEXT: dict[str, tuple[str, ...]] = {
    "reported": ("triaged", "cancelled"),
    "triaged": ("assigned", "cancelled"),
    "assigned": ("in_progress", "on_hold", "cancelled"),
    "in_progress": ("on_hold", "cleared", "cancelled"),
    "on_hold": ("in_progress", "assigned", "cancelled"),
    "cleared": ("closed", "reopened"),
    "closed": (),
    "cancelled": (),
}
LANDS_IN = {"reopened": "triaged"}

# Waiting on something the team cannot control stops the clock; a booked contractor does not.
PAUSING_REASONS = ("awaiting_parts", "awaiting_access", "awaiting_security_clearance")
HOLD_REASONS = (*PAUSING_REASONS, "contractor_scheduled", "other")


class IllegalMove(Exception):
    """The fault cannot make this move from where it is; `allowed` lists what it can do."""

    def __init__(self, current: str, wanted: str) -> None:
        self.current = current
        self.wanted = wanted
        self.allowed = NEXT.get(current, ())
        super().__init__(
            f"a {current} fault cannot move to {wanted}; "
            + (f"it can move to {', '.join(self.allowed)}" if self.allowed else "it is final")
        )


@dataclass(frozen=True)
class Move:
    action: str  # what was asked for, e.g. "reopened"
    from_status: str
    to_status: str  # where the fault lands, e.g. "triaged"


def plan(current: str, wanted: str) -> Move:
    """The move from `current` for the requested action; IllegalMove if it is not allowed."""
    if wanted not in NEXT.get(current, ()):
        raise IllegalMove(current, wanted)
    return Move(wanted, current, LANDS_IN.get(wanted, wanted))


def missing_requirement(
    action: str, reason: str | None, resolution: str | None, note: str | None
) -> tuple[str, str] | None:
    """(field, sentence) when the move lacks what it needs, else None."""
    if action == "on_hold" and not reason:
        return "reason", f"putting a fault on hold needs a reason: one of {', '.join(HOLD_REASONS)}"
    if action == "cleared" and not (resolution and resolution.strip()):
        return "resolution", "clearing a fault needs a resolution saying what was done"
    if action in ("cancelled", "reopened") and not (note and note.strip()):
        return "note", f"a {action} fault needs a note saying why"
    return None
