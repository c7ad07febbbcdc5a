"""Error responses people can act on: 422 with the field path and a sentence."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

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


# SQLSTATEs of values the database refuses, and what the sender can do about each.
_REFUSED_VALUES = {
    "22001": "A text value is longer than can be stored; shorten it and send the request again.",
    "22003": "A number is too large or too small to store; check it and send the request again.",
}


async def data_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value that passed validation (e.g. a NUL byte in text)."""
    assert isinstance(exc, DataError)
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    message = _REFUSED_VALUES.get(
        getattr(exc.orig, "sqlstate", None) or "",
        "A value contains something the database cannot store, such as a NUL character; "
        "remove it and send the request again.",
    )
    return JSONResponse(
        status_code=422,
        content={
            "detail": message,
            "errors": [{"field": "body", "loc": ["body"], "message": message, "type": "value"}],
        },
    )


def _unreadable_body(cause: BaseException, detail: str) -> tuple[str, str]:
    """The sentence and error type for a body that could not be decoded at all."""
    if isinstance(cause, MultiPartException):
        return f"The form could not be read ({detail}); send it as multipart/form-data.", (
            "form_invalid"
        )
    if isinstance(cause, UnicodeDecodeError):
        message = (
            "The request body is not UTF-8 text; send JSON encoded as UTF-8 "
            "with the header 'Content-Type: application/json'."
        )
    elif isinstance(cause, RecursionError):
        message = "The request body is nested too deeply to read; send flatter JSON."
    else:
        message = "The request body could not be read; send JSON encoded as UTF-8."
    return message, "json_invalid"


async def bad_request_handler(request: Request, exc: Exception) -> Response:
    """A body the framework could not even decode is bad input like any other: 422."""
    assert isinstance(exc, HTTPException)
    # FastAPI raises a bare 400 "error parsing the body" from the decoding error it hit;
    # Starlette raises one while handling a malformed multipart form.
    cause = exc.__cause__ or exc.__context__
    if not isinstance(cause, (ValueError, RecursionError, MultiPartException)):
        return await http_exception_handler(request, exc)
    message, kind = _unreadable_body(cause, str(exc.detail))
    return JSONResponse(
        status_code=422,
        content={
            "detail": message,
            "errors": [{"field": "body", "loc": ["body"], "message": message, "type": kind}],
        },
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DataError, data_error_handler)
    # By status code, so it is found before the HTTPException handler the web pages install.
    app.add_exception_handler(400, bad_request_handler)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # Imported here: the dependencies it inspects import modules that import this one.
        from fleet.api.openapi import document_refusals

        # Document the 422 body this handler really sends, not FastAPI's default shape,
        # and the refusals (401, 403, 404, 409, ...) every operation can really give.
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["HTTPValidationError"] = VALIDATION_PROBLEM_SCHEMA
            schemas["FieldError"] = FIELD_ERROR_SCHEMA
            schemas.pop("ValidationError", None)
            document_refusals(schema, app.routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
