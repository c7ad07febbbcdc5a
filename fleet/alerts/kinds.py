"""What each rule kind measures, the thresholds that make sense for it, and how to say it."""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSION_PATTERN = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")


@dataclass(frozen=True)
class RuleKind:
    key: str
    label: str
    unit: str
    lowest: float | None  # None: the kind takes no threshold
    highest: float | None
    whole: bool  # thresholds must be whole numbers
    default: float | None
    meaning: str  # "{threshold}" is replaced by the threshold and its unit

    def describe(self, threshold: float | None, min_version: str | None) -> str:
        if self.key == "agent_outdated":
            return self.meaning.replace("{threshold}", min_version or "?")
        shown = "?" if threshold is None else f"{threshold:g}{self.unit}"
        return self.meaning.replace("{threshold}", shown)


KINDS: dict[str, RuleKind] = {
    k.key: k
    for k in (
        RuleKind(
            "offline",
            "Offline",
            " minutes",
            1,
            7 * 24 * 60,
            True,
            30,
            "offline for longer than {threshold}",
        ),
        RuleKind(
            "battery_low",
            "Battery low",
            "%",
            1,
            100,
            False,
            15,
            "battery below {threshold}, not charging",
        ),
        RuleKind(
            "storage_high", "Storage full", "%", 1, 99.9, False, 90, "storage above {threshold}"
        ),
        RuleKind(
            "temperature_high",
            "Running hot",
            " °C",
            20,
            120,
            False,
            70,
            "temperature above {threshold}",
        ),
        RuleKind(
            "agent_outdated",
            "Agent out of date",
            "",
            None,
            None,
            False,
            None,
            "agent older than {threshold}",
        ),
        RuleKind(
            "config_drift",
            "Configuration drift",
            " versions",
            1,
            1000,
            True,
            1,
            "configuration {threshold} or more behind the version set for it",
        ),
        RuleKind(
            "flapping",
            "Flapping",
            " times an hour",
            1,
            1000,
            True,
            6,
            "went online or offline more than {threshold}",
        ),
    )
}


def threshold_problem(kind: str, threshold: float | None) -> str | None:
    """Why this threshold cannot work for this kind of rule, as a sentence; None if it can."""
    spec = KINDS[kind]
    if spec.lowest is None:
        if threshold is not None:
            return f"A {spec.label.lower()} rule takes min_version, not a threshold; remove it."
        return None
    if threshold is None:
        return f"A {spec.label.lower()} rule needs a threshold ({spec.unit.strip()})."
    if not spec.lowest <= threshold <= (spec.highest or threshold):
        return (
            f"{threshold:g}{spec.unit} is not a possible threshold for a "
            f"{spec.label.lower()} rule; use {spec.lowest:g} to {spec.highest:g}{spec.unit}."
        )
    if spec.whole and threshold != int(threshold):
        return f"A {spec.label.lower()} rule counts whole{spec.unit}; use a whole number."
    return None


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
