"""Log configuration for every estate process: plain text, or one JSON object per line.

JSON lines carry the request, job, task and device a line belongs to, read from context
variables (set by the request-id middleware and the Celery task signals) or from `extra=`.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fleet.settings import Settings

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("request_id", "job_id", "task_name", "device_id")

_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"estate_log_{name}", default=None) for name in CONTEXT_FIELDS
}


def current_log_context() -> dict[str, str]:
    """The context fields set for the code running now (request, job, task, device)."""
    fields = {name: var.get() for name, var in _context.items()}
    return {name: value for name, value in fields.items() if value is not None}


def set_log_context(**fields: str | None) -> None:
    """Set (or, with None, clear) context fields for the code running from here on."""
    for name, value in fields.items():
        if name not in _context:
            raise ValueError(f"unknown log context field {name!r}; known: {CONTEXT_FIELDS}")
        _context[name].set(value)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Context fields for the duration of a block, restored afterwards."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields {sorted(unknown)}; known: {CONTEXT_FIELDS}")
    tokens = [(_context[name], _context[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, process and any context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        line.update(current_log_context())
        for name in CONTEXT_FIELDS:  # `extra=` on the call wins over the ambient context
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """A dictConfig for this level and format, covering the root logger and uvicorn's."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {fmt!r}")
    level = level.upper()
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "estate",
        "stream": "ext://sys.stderr",
    }
    # uvicorn's loggers hand their records to the root handler, so every line has one format.
    uvicorn = {"handlers": [], "level": level, "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"estate": formatter},
        "handlers": {"estate": handler},
        "root": {"handlers": ["estate"], "level": level},
        "loggers": {name: dict(uvicorn) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def configure_logging(settings_or_level: Settings | str, fmt: LogFormat | None = None) -> None:
    """Configure this process's logging from settings (level info) or a level and format."""
    if isinstance(settings_or_level, str):
        level, chosen = settings_or_level, fmt or "text"
    else:
        level, chosen = "info", fmt or settings_or_level.log_format
    logging.config.dictConfig(logging_config(level, chosen))
