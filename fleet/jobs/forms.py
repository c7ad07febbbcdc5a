"""The launch form: what a person typed, turned into a launch request, and errors mapped back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from fleet.jobs.models import JobTemplate
from fleet.jobs.schemas import LaunchIn

SPLIT = re.compile(r"[\s,]+")
# Which form field each part of a launch request comes from.
FIELD_OF = {
    "prisons": "prisons",
    "wings": "wings",
    "kinds": "kinds",
    "programmes": "programmes",
    "device_ids": "device_ids",
    "tags": "tags",
    "variables": "variables",
    "canary": "canary",
    "bake_s": "bake_s",
    "waves": "waves",
    "wave_percent": "wave_percent",
    "failure_threshold_pct": "failure_threshold_pct",
    "selector": "prisons",
    "rollout": "canary",
    "name": "name",
    "description": "description",
    "playbook": "playbook",
    "forks": "forks",
    "timeout_s": "timeout_s",
    "variables_schema": "variables_schema",
}


@dataclass
class LaunchForm:
    """The launch form's values as text, as the person typed them (or the template's defaults)."""

    prisons: str = ""
    wings: str = ""
    kinds: list[str] = field(default_factory=list)
    programmes: str = ""
    device_ids: str = ""
    tags: str = ""
    variables: str = "{}"
    check_mode: bool = False
    canary: str = "0"
    bake_s: str = "0"
    waves: str = "percent"
    wave_percent: str = "100"
    failure_threshold_pct: str = "100"

    @classmethod
    def of_template(cls, template: JobTemplate) -> LaunchForm:
        selector, rollout = template.selector or {}, template.rollout or {}
        return cls(
            prisons=", ".join(selector.get("prisons", [])),
            wings=", ".join(selector.get("wings", [])),
            kinds=list(selector.get("kinds", [])),
            programmes=", ".join(str(p) for p in selector.get("programmes", [])),
            device_ids="\n".join(selector.get("device_ids", [])),
            tags=", ".join(selector.get("tags", [])),
            variables=json.dumps(template.variables or {}, indent=2),
            check_mode=template.check_mode,
            canary=str(rollout.get("canary", 0)),
            bake_s=str(rollout.get("bake_s", 0)),
            waves=str(rollout.get("waves", "percent")),
            wave_percent=", ".join(str(p) for p in rollout.get("wave_percent", [100])),
            failure_threshold_pct=f"{rollout.get('failure_threshold_pct', 100):g}",
        )

    @classmethod
    def of_form(cls, form: Any) -> LaunchForm:
        def text(name: str, default: str = "") -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else default

        return cls(
            prisons=text("prisons"),
            wings=text("wings"),
            kinds=[k for k in form.getlist("kinds") if isinstance(k, str)],
            programmes=text("programmes"),
            device_ids=text("device_ids"),
            tags=text("tags"),
            variables=text("variables", "{}") or "{}",
            check_mode=form.get("check_mode") == "yes",
            canary=text("canary", "0") or "0",
            bake_s=text("bake_s", "0") or "0",
            waves=text("waves", "percent") or "percent",
            wave_percent=text("wave_percent", "100") or "100",
            failure_threshold_pct=text("failure_threshold_pct", "100") or "100",
        )


class FormProblem(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["text"] for e in errors))
        self.errors = errors


def _words(text: str) -> list[str]:
    return [w for w in SPLIT.split(text) if w]


def problems_of(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """GOV.UK error-summary items (text and the field's anchor) from pydantic-style errors."""
    items = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "selector", "rollout")]
        name = next((FIELD_OF[p] for p in loc if p in FIELD_OF), "variables")
        where = ".".join(loc) or name
        items.append({"text": f"{where}: {error.get('msg', 'is not valid')}", "href": f"#{name}"})
    return items


def parse_object(text: str, label: str, field: str) -> dict[str, Any]:
    """A JSON object typed into a form, or FormProblem saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormProblem(
            [
                {
                    "text": f"{label} are not valid JSON: {exc.msg} (line {exc.lineno})",
                    "href": f"#{field}",
                }
            ]
        ) from exc
    if not isinstance(value, dict):
        raise FormProblem(
            [{"text": f'{label} must be a JSON object, like {{"name": 1}}', "href": f"#{field}"}]
        )
    return storable(value, label, field)


def storable(value: dict[str, Any], label: str, field: str) -> dict[str, Any]:
    """The parsed value, unless it holds a NUL character, which the database cannot store."""
    if _has_nul(value):
        raise FormProblem(
            [{"text": f"{label} hold a NUL character (\\u0000): remove it", "href": f"#{field}"}]
        )
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def targets_and_rollout(form: LaunchForm) -> dict[str, Any]:
    """The selector and rollout parts of a request, from the form's text."""
    return {
        "selector": {
            "prisons": _words(form.prisons),
            "wings": _words(form.wings),
            "kinds": form.kinds,
            "programmes": _words(form.programmes),
            "device_ids": _words(form.device_ids),
            "tags": _words(form.tags),
        },
        "rollout": {
            "canary": form.canary,
            "bake_s": form.bake_s,
            "waves": form.waves,
            "wave_percent": _words(form.wave_percent),
            "failure_threshold_pct": form.failure_threshold_pct,
        },
    }


def unstorable(form: Any) -> list[dict[str, str]]:
    """An error for each field holding a NUL character, which the database cannot store."""
    return [
        {
            "text": f"{name.replace('_', ' ').capitalize()} has a NUL character that cannot be "
            "stored: remove it",
            "href": f"#{name}",
        }
        for name, value in vars(form).items()
        if "\x00" in (value if isinstance(value, str) else "")
        or (isinstance(value, list) and any("\x00" in str(v) for v in value))
    ]


def to_launch(template_id: int, form: LaunchForm, preview: bool) -> LaunchIn:
    """The launch request the form describes, or FormProblem naming the fields to fix."""
    if problems := unstorable(form):
        raise FormProblem(problems)
    body = {
        "template_id": template_id,
        "preview": preview,
        "check_mode": form.check_mode,
        "variables": parse_object(form.variables, "Variables", "variables"),
        **targets_and_rollout(form),
    }
    try:
        return LaunchIn.model_validate(body)
    except ValidationError as exc:
        raise FormProblem(problems_of([dict(e) for e in exc.errors()])) from exc


def problems_of_refusal(exc: RequestValidationError) -> list[dict[str, str]]:
    return problems_of(list(exc.errors()))
