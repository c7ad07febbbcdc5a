"""Error responses people can act on: 422 with the field path and a sentence."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

log = logging.getLogger(__name__)


def invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 in the same shape as request validation: field path plus a sentence."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _sentence(error: dict[str, Any]) -> str:
    field = _field_path(error.get("loc", ()))
    msg = str(error.get("msg", "is not valid"))
    kind = error.get("type", "")
    if kind == "missing":
        return f"{field} is required."
    if kind == "json_invalid":
        return "The request body is not valid JSON; check quotes, commas and brackets."
    if kind == "extra_forbidden":
        return f"{field} is not a field this endpoint accepts; remove it."
    return f"{field}: {msg[0].lower() + msg[1:] if msg else msg}."


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        errors.append(
            {
                "field": _field_path(err.get("loc", ())),
                "loc": list(err.get("loc", ())),
                "message": _sentence(err),
                "type": err.get("type"),
            }
        )
    return JSONResponse(
        status_code=422,
        content={"detail": "; ".join(e["message"] for e in errors), "errors": errors},
    )


FIELD_ERROR_SCHEMA = {
    "title": "FieldError",
    "type": "object",
    "required": ["field", "loc", "message"],
    "properties": {
        "field": {"type": "string", "description": "Dotted path of the field, e.g. location"},
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "message": {"type": "string", "description": "What is wrong, as a sentence"},
        "type": {"type": ["string", "null"]},
    },
}
VALIDATION_PROBLEM_SCHEMA = {
    "title": "ValidationProblem",
    "type": "object",
    "required": ["detail", "errors"],
    "properties": {
        "detail": {"type": "string", "description": "Every problem, as sentences"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
    },
}


async def data_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value that passed validation (e.g. a NUL byte in text)."""
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    message = (
        "A value contains something the database cannot store, such as a NUL character; "
        "remove it and send the request again."
    )
    return JSONResponse(
        status_code=422,
        content={
            "detail": message,
            "errors": [{"field": "body", "loc": ["body"], "message": message, "type": "value"}],
        },
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DataError, data_error_handler)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # Document the 422 body this handler really sends, not FastAPI's default shape.
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["HTTPValidationError"] = VALIDATION_PROBLEM_SCHEMA
            schemas["FieldError"] = FIELD_ERROR_SCHEMA
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
