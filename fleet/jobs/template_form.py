"""The job template form: what a person typed, turned into a template definition."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from fleet.jobs import service
from fleet.jobs.forms import (
    FormProblem,
    LaunchForm,
    problems_of,
    storable,
    targets_and_rollout,
    unstorable,
)
from fleet.jobs.models import JobTemplate
from fleet.jobs.schemas import TemplateIn

OPEN_SCHEMA = '{\n  "type": "object"\n}'


def shipped_playbooks() -> list[str]:
    return sorted(p.name for p in service.PLAYBOOKS_DIR.glob("*.yml"))


@dataclass
class TemplateForm(LaunchForm):
    """The template's values as text; targets, variables and rollout as on the launch form."""

    name: str = ""
    description: str = ""
    playbook: str = ""
    forks: str = "10"
    timeout_s: str = "1800"
    variables_schema: str = OPEN_SCHEMA
    # The template's updated_at when the form was opened: a later change by someone else
    # is caught before it is overwritten.
    version: str = ""

    @classmethod
    def of_template(cls, template: JobTemplate) -> TemplateForm:
        return cls(
            **asdict(LaunchForm.of_template(template)),
            name=template.name,
            description=template.description,
            playbook=template.playbook,
            forks=str(template.forks),
            timeout_s=str(template.timeout_s),
            variables_schema=json.dumps(template.variables_schema or {"type": "object"}, indent=2),
            version=version_of(template),
        )

    @classmethod
    def of_form(cls, form: Any) -> TemplateForm:
        def text(name: str, default: str = "") -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else default

        return cls(
            **asdict(LaunchForm.of_form(form)),
            name=text("name"),
            description=text("description"),
            playbook=text("playbook"),
            forks=text("forks"),
            timeout_s=text("timeout_s"),
            variables_schema=text("variables_schema") or OPEN_SCHEMA,
            version=text("version"),
        )


def version_of(template: JobTemplate) -> str:
    return template.updated_at.isoformat()


def parse_document(text: str, label: str, field: str) -> dict[str, Any]:
    """A mapping typed as JSON or YAML, or FormProblem saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" (line {mark.line + 1})" if mark is not None else ""
            raise FormProblem(
                [
                    {
                        "text": f"{label} are not valid JSON or YAML: {json_error.msg}{line}",
                        "href": f"#{field}",
                    }
                ]
            ) from exc
        # YAML's dates and other types stored as JSON text, as the API would receive them.
        value = json.loads(json.dumps(value, default=str)) if isinstance(value, dict) else value
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise FormProblem(
            [
                {
                    "text": f'{label} must be a mapping of names to values, like {{"name": 1}}',
                    "href": f"#{field}",
                }
            ]
        )
    return storable(value, label, field)


def to_template(form: TemplateForm) -> TemplateIn:
    """The template definition the form describes, or FormProblem naming the fields to fix."""
    problems = unstorable(form)
    if problems:
        raise FormProblem(problems)
    if not form.name:
        problems.append({"text": "Enter a name for the template", "href": "#name"})
    if not form.playbook:
        problems.append({"text": "Choose the playbook the template runs", "href": "#playbook"})
    documents: dict[str, dict[str, Any]] = {}
    for field, label in (("variables", "Variables"), ("variables_schema", "Variables schema")):
        try:
            documents[field] = parse_document(getattr(form, field), label, field)
        except FormProblem as exc:
            problems.extend(exc.errors)
    if problems:
        raise FormProblem(problems)
    body = {
        "name": form.name,
        "description": form.description,
        "playbook": form.playbook,
        "forks": form.forks,
        "timeout_s": form.timeout_s,
        "check_mode": form.check_mode,
        **documents,
        **targets_and_rollout(form),
    }
    try:
        return TemplateIn.model_validate(body)
    except ValidationError as exc:
        raise FormProblem(problems_of([dict(e) for e in exc.errors()])) from exc


def check_defaults(data: TemplateIn) -> None:
    """Refuse default variables of the wrong shape for the template's schema.

    Defaults may leave out what the schema requires (the launch fills it in), so only the
    values given are checked, against the schema without its `required` lists."""
    service.check_schema(data.variables_schema)
    service.check_variables(_without_required(data.variables_schema), data.variables)


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


LABELS = {
    "name": "Name",
    "playbook": "Playbook",
    "variables": "Variables",
    "variables_schema": "Variables schema",
}


def problem_of_refusal(exc: service.JobRefused) -> dict[str, str]:
    """The error-summary item for a refusal by the jobs service, as a sentence."""
    field = exc.field or "name"
    anchor = field.split(".")[0] if field.split(".")[0] in LABELS else "name"
    if exc.message.startswith(("is ", "does ", "must ")):
        # The service's messages about a field's value leave the field to the caller.
        text = f"{LABELS.get(field, field)} {exc.message}"
    else:
        text = exc.message[:1].upper() + exc.message[1:]
    return {"text": text, "href": f"#{anchor}"}
