"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from fleet.api.deps import get_context
from fleet.ops.metrics import exposition

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The process can serve: the database answers."""
    ctx = get_context(request)
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; the reason is reported
        return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
    return JSONResponse({"status": "ready", "database": "ok"})


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics (of every worker under --workers N)."""
    return Response(exposition(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
