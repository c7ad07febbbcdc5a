"""Write the refusals every API operation can give into the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from fleet.api.deps import current_principal, current_principal_optional

PROBLEM_SCHEMA = {
    "title": "Problem",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [{"type": "string"}, {"type": "object"}],
            "description": "Why the request was refused, as a sentence (some refusals add "
            "fields alongside, such as the version now stored)",
        },
    },
}

# Said once here so every operation describes the same refusal the same way.
REFUSALS = {
    401: "Not signed in, or the API token is not valid or was revoked",
    403: "Your role or caseload does not allow this",
    404: "Not found, or outside your caseload",
    409: "Refused because of the current state; the detail says why and what to do",
    410: "No longer available; the detail says what to do instead",
    422: "The request is not valid; each error names the field and says how to fix it",
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
VALIDATION_REF = {"$ref": "#/components/schemas/HTTPValidationError"}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _refusals(dependant: Dependant | None, operation: dict[str, Any]) -> set[int]:
    """The refusals this operation can give whether or not its code names them."""
    calls = set(_calls(dependant)) if dependant is not None else set()
    codes: set[int] = set()
    if current_principal_optional in calls:
        codes.add(401)  # a token that is not valid is refused even where signing in is optional
    if current_principal in calls:
        codes.add(403)  # role checks and caseload checks both answer 403
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        codes.add(404)
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)  # includes a body that is not UTF-8 JSON at all
    return codes


def _json_schema(response: dict[str, Any]) -> dict[str, Any]:
    content = response.setdefault("content", {})
    media: dict[str, Any] = content.setdefault("application/json", {})
    schema: dict[str, Any] = media.setdefault("schema", {})
    return schema


def document_refusals(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Add 401/403/404/422 where they can happen, and a body schema to every declared error."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    paths = schema.get("paths", {})
    # Route contexts, as FastAPI itself walks them, carry the prefix and router dependencies.
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in _refusals(route.dependant, operation):
                responses.setdefault(str(code), {"description": REFUSALS[code]})
            operation["responses"] = responses = dict(sorted(responses.items()))
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                if response.get("description") in (None, "", "Additional Response"):
                    response["description"] = REFUSALS.get(int(code), "Refused")
                body = _json_schema(response)
                if not body:  # declared without a model: the project's error body
                    body.update(VALIDATION_REF if code == "422" else PROBLEM_REF)
