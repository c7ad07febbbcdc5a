"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware.sessions import SessionMiddleware

from fleet import __version__
from fleet.api import errors
from fleet.automation.config_link import ConfigLink
from fleet.commands.relay import CommandRelay
from fleet.context import Context
from fleet.ops.estate_metrics import EstateInventoryCollector
from fleet.ops.metrics import ApiMetrics
from fleet.ops.request_id import RequestIdMiddleware
from fleet.settings import Settings
from fleet.web import errors as web_errors
from fleet.web.security import SecurityHeaders, SessionGuard, SignInThrottle
from fleet.web.templating import mount_assets


def settle_heap_for_serving() -> None:
    """Freeze what is alive after startup and run the cycle collector less often.

    A serving process holds a few hundred thousand long-lived objects (modules, mappers,
    routes, templates). The collector's full pass walks all of them, and with its default
    thresholds one request in three or four stalled 80-130 ms on it (the programme overview
    at 200,000 devices). Frozen objects are never walked again; garbage is still freed by
    reference counting, and cycles by the rarer passes. Only for processes that serve: a test
    run builds many apps, and frozen cycles would never be collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app(settings: Settings) -> FastAPI:
    """Build the API + web UI for these settings; nothing is connected until first use."""
    ctx = Context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay = app.state.command_relay = CommandRelay(ctx)
        relay.start()  # replies are read from startup, not only after this process sends one
        config_link = app.state.config_link = ConfigLink(ctx)
        config_link.start()  # devices' config reports are recorded from startup
        yield
        relay.close()
        config_link.close()
        dispatcher = getattr(app.state, "job_dispatcher", None)
        if dispatcher is not None:
            dispatcher.close()  # in-process jobs (embedded demo) finish their stage first
        ctx.close()

    app = FastAPI(
        title="Estate",
        version=__version__,
        description="Device fleet and facilities platform for a prison estate.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.state.registry = CollectorRegistry()
    app.state.registry.register(EstateInventoryCollector(ctx))
    api_metrics = ApiMetrics(app.state.registry)
    app.middleware("http")(api_metrics.middleware)
    app.add_middleware(SessionGuard, ctx=ctx, max_age_s=settings.session_max_age_s)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="estate_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.profile == "production",
    )
    app.add_middleware(SecurityHeaders)
    # Outermost, so every layer's log lines and the access log carry the request id.
    app.add_middleware(RequestIdMiddleware)
    app.state.sign_in_throttle = SignInThrottle()
    errors.install(app)
    web_errors.install(app)
    _include_routers(app)
    mount_assets(app, settings)
    return app


def _include_routers(app: FastAPI) -> None:
    from facilities.faults.pages import router as fault_pages
    from facilities.faults.routes import router as faults_api
    from facilities.places.pages import router as place_pages
    from facilities.reports.pages import router as fault_report_pages
    from facilities.reports.routes import router as fault_reports_api
    from fleet.alerts.admin_pages import router as alert_admin_pages
    from fleet.alerts.pages import router as alert_pages
    from fleet.alerts.quiet_routes import router as quiet_api
    from fleet.alerts.routes import router as alerts_api
    from fleet.auth.pages import router as auth_pages
    from fleet.auth.routes import router as auth_api
    from fleet.automation.routes import router as automation_api
    from fleet.commands.routes import router as commands_api
    from fleet.devices.pages import router as device_pages
    from fleet.devices.routes import router as devices_api
    from fleet.enrolment.routes import router as enrolment_api
    from fleet.estate.pages import router as estate_pages
    from fleet.estate.routes import router as estate_api
    from fleet.jobs.pages import router as job_pages
    from fleet.jobs.routes import router as jobs_api
    from fleet.ops.routes import router as ops
    from fleet.rollout.pages import router as rollout_pages
    from fleet.rollout.routes import router as rollout_api

    app.include_router(ops)
    for router in (auth_api, estate_api, devices_api, enrolment_api, commands_api):
        app.include_router(router, prefix="/api/v1")
    app.include_router(faults_api, prefix="/api/v1")
    app.include_router(fault_reports_api, prefix="/api/v1")
    # Before any fault pages, whose /faults/{reference} would otherwise answer /faults/reports.
    app.include_router(fault_report_pages)
    app.include_router(place_pages)
    app.include_router(fault_pages)
    app.include_router(rollout_api, prefix="/api/v1")
    app.include_router(automation_api, prefix="/api/v1")
    app.include_router(alerts_api, prefix="/api/v1")
    app.include_router(quiet_api, prefix="/api/v1")
    app.include_router(rollout_pages)
    app.include_router(auth_pages)
    app.include_router(estate_pages)
    app.include_router(device_pages)
    app.include_router(jobs_api, prefix="/api/v1")
    app.include_router(job_pages)
    app.include_router(alert_pages)
    app.include_router(alert_admin_pages)
