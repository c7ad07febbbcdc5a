"""Error responses people can act on: 422 with the field path and a sentence."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
