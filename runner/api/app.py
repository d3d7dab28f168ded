"""The HTTP API: one FastAPI app serving the OpenAI-compatible and management routes."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp.abc import AbstractResolver
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from runner import __version__, heap
from runner.api import demo, management, openapi, routes
from runner.errors import ErrorEnvelope, RunnerError
from runner.integrations.registry import Registry
from runner.integrations.service import IntegrationService, StartupRefused
from runner.integrations.watcher import watch_handlers
from runner.observe import access_log, tracing
from runner.observe.metrics import Metrics
from runner.observe.middleware import Observe
from runner.observe.recorder import Recorder
from runner.observe.state import service_state
from runner.security.admission import Admission, ApiKeys
from runner.security.secret_keys import KeyConfigError, load_secret_box
from runner.settings import Settings
from runner.store import IntegrationStore, StoreConfigError

log = logging.getLogger(__name__)
# FastAPI 0.165+ traces, counts and logs every request itself once an OpenTelemetry
# provider exists; the runner's own server span (runner.observe) already covers each
# request, with the call's attributes, so FastAPI's would only be a second, poorer one.
_NO_NATIVE_TELEMETRY: dict[str, object] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(
    settings: Settings | None = None, resolver: AbstractResolver | None = None
) -> FastAPI:
    """Build the app; integrations in ``settings.config_dir`` are registered at start.

    ``resolver`` replaces the system's name resolution for upstream requests (the
    tests use it to point names at addresses the runner must refuse).
    """
    settings = settings or Settings()
    tracing.configure()  # when OpenTelemetry's variables ask for traces; once per process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            box = await asyncio.to_thread(load_secret_box, settings)
            store = await IntegrationStore.open(settings.effective_database_url)
        except (KeyConfigError, StoreConfigError) as exc:
            log.error("refusing to start: %s", exc)
            raise
        registry = Registry(settings, resolver)
        service = IntegrationService(settings, registry, store, box)
        app.state.registry = registry
        app.state.service = service
        tasks: list[asyncio.Task[None]] = []
        try:
            await service.start()
            log.info("serving %d integrations", len(registry))
            heap.freeze_long_lived()
            heap.collect_young_less_often()
            tracing.start_export()
            tasks.append(asyncio.create_task(service.follow(settings.sync_seconds)))
            if settings.custom_llms_enabled:
                tasks.append(asyncio.create_task(watch_handlers(service)))
            yield
        except StartupRefused as exc:
            log.error("refusing to start: %s", exc)
            raise
        finally:
            for task in tasks:
                task.cancel()
            app.state.recorder.drain()
            await tracing.stop_export()
            await registry.aclose()
            await store.aclose()

    app = FastAPI(
        title="runner",
        version=__version__,
        lifespan=lifespan,
        # Every route may refuse, always in the same envelope; declaring it as the
        # default response also keeps FastAPI from describing its own 422 shape,
        # which the runner never sends.
        responses={"default": {"model": ErrorEnvelope, "description": "An error"}},
        **_NO_NATIVE_TELEMETRY,
    )
    app.state.settings = settings
    app.include_router(routes.router)
    app.include_router(management.router)
    if settings.demo:
        app.include_router(demo.router)
    keys = settings.api_keys.get_secret_value().split(",") if settings.api_keys else []
    # Added last, so outermost: the checks run first, then the call routes are served
    # ahead of FastAPI's routing, and everything else goes on to FastAPI.
    app.add_middleware(routes.CallRoutes, state=app.state)
    app.add_middleware(
        Admission,
        api_keys=ApiKeys(keys) if keys else None,
        max_request_bytes=settings.max_request_bytes,
        admin_key=settings.admin_key.get_secret_value() if settings.admin_key else None,
        metrics_key=settings.metrics_key.get_secret_value() if settings.metrics_key else None,
    )
    # Outermost of all: every request, refused ones too, gets an id and is counted.
    metrics = (
        Metrics(lambda: service_state(getattr(app.state, "service", None)))
        if settings.metrics
        else None
    )
    consumers = [metrics.observe] if metrics is not None else []
    if settings.access_log:
        consumers.append(access_log.write)
    if tracing.exporter is not None:
        consumers.append(tracing.export)
    recorder = Recorder(consumers)
    app.state.recorder = recorder
    app.add_middleware(
        Observe,
        finished=recorder.add if consumers else None,
        access_log_enabled=settings.access_log,
    )
    plain_document = app.openapi
    app.openapi = lambda: openapi.document(plain_document())  # type: ignore[method-assign]
    app.add_exception_handler(RunnerError, _runner_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

    @app.get("/health", tags=["ops"])
    async def health(request: Request) -> dict[str, object]:
        service: IntegrationService = request.app.state.service
        # With RUNNER_WORKERS > 1 each answer describes one worker process: the pid
        # says which, matching uvicorn's "Started server process [pid]" line.
        return {**service.status(), "worker": {"pid": os.getpid()}}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format (see the README's Observability section)."""
        if metrics is None:
            raise RunnerError("metrics are off (RUNNER_METRICS=false)", 404, code="metrics_off")
        recorder.drain()  # every request answered so far is counted
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _runner_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RunnerError)
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.response_headers())


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error = RunnerError(str(exc.detail), exc.status_code, "invalid_request_error")
    return JSONResponse(error.to_body(), status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = RunnerError("internal error in the runner; see its log", 500, "server_error")
    return JSONResponse(error.to_body(), status_code=500)
