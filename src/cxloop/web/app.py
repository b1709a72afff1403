"""The ASGI app: API, pages, health; optionally the embedded worker and scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from cxloop import __version__
from cxloop.bootstrap import Container, build_container
from cxloop.db.operations_models import PROCESS_ROLES
from cxloop.engine.leases import LeaseKeeper
from cxloop.engine.queue import IDLE_POLL_MAX_S, SHUTDOWN_TIMEOUT_S, EmbeddedConsumer
from cxloop.logs import configure_logging
from cxloop.process import limit_malloc_arenas, tune_garbage_collector
from cxloop.services.heartbeats import Heartbeat
from cxloop.settings import load_settings
from cxloop.web import api_docs, health, hooks, oauth, optout, pages, respond, ui
from cxloop.web.api import (
    audit,
    connections,
    questions,
    responses,
    runs,
    surveys,
    users,
    workflows,
)
from cxloop.web.api import directories as directories_api
from cxloop.web.api import distributions as distributions_api
from cxloop.web.api import salesforce as salesforce_api
from cxloop.web.api import signed_links as signed_links_api
from cxloop.web.api import transfers as transfers_api
from cxloop.web.api.schemas import API_ERRORS, error_responses
from cxloop.web.errors import install_error_handlers
from cxloop.web.middleware import (
    BodySizeLimitMiddleware,
    PageSessionMiddleware,
    RequestContextMiddleware,
    RequestReadTimeoutMiddleware,
    SecurityHeadersMiddleware,
)

log = structlog.get_logger(__name__)

API_DESCRIPTION = """
cxloop's REST API. Every `/api/v1` endpoint needs `Authorization: Bearer <token>`
(`cxloop tokens create --user EMAIL`). Errors always have the shape
`{"error": {"code": "...", "message": "...", "details": ...}}`.
"""


class EmbeddedWorker:
    """The Huey consumer and the periodic scheduler, run inside the web server's process."""

    def __init__(self, container: Container) -> None:
        self._consumer = EmbeddedConsumer(
            container.huey,
            workers=container.settings.worker_threads,
            periodic=False,  # cxloop's own scheduler claims periods in the database
            worker_type="thread",
            check_worker_health=False,
            max_delay=IDLE_POLL_MAX_S,
        )
        self._scheduler = container.scheduler()
        self._pacing = container.engine_state.pacing
        # /readyz of every web process reads these (services/heartbeats.py)
        period_s = container.settings.process_heartbeat_s
        self._heartbeats = [Heartbeat(container.db, role, period_s) for role in PROCESS_ROLES]
        self._leases = LeaseKeeper(
            container.db,
            lease_s=container.settings.lease_s,
            period_s=container.settings.effective_lease_heartbeat_s,
        )

    def start(self) -> None:
        self._leases.start()
        self._consumer.start()
        self._scheduler.start_thread()
        for heartbeat in self._heartbeats:
            heartbeat.start()
        log.info("worker.embedded_started")

    def stop(self) -> None:
        """Stop claiming new work and let what is running finish."""
        for heartbeat in self._heartbeats:
            heartbeat.stop()
        self._scheduler.stop()
        self._consumer.stop(graceful=True)
        # And the batches a driver left in flight (engine/worker.py).
        self._pacing.wait_for_senders(SHUTDOWN_TIMEOUT_S)
        # After the consumer: the calls it let finish kept their leases to the end.
        self._leases.stop()
        log.info("worker.embedded_stopped")


def create_app(
    container: Container, *, embedded_worker: bool = False, owns_container: bool = False
) -> FastAPI:
    """The cxloop web application around `container` (closed on shutdown if it `owns` it)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = EmbeddedWorker(container) if embedded_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()
            if owns_container:
                container.close()

    app = FastAPI(
        title="cxloop",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc come from api_docs: served from the package, no CDN, no inline script
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = container
    settings = container.settings
    assert settings.secret_key is not None
    app.add_middleware(
        PageSessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie="cxloop_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestReadTimeoutMiddleware, timeout_s=settings.request_read_timeout_s)
    app.add_middleware(RequestContextMiddleware)
    # Outermost: even the refusals of the middleware above carry the headers.
    app.add_middleware(
        SecurityHeadersMiddleware,
        frame_ancestors=settings.frame_ancestors,
        https=settings.base_url.startswith("https://"),
        salesforce_hosts=list(settings.salesforce_extra_hosts),
        survey_image_hosts=list(settings.survey_image_hosts),
    )
    install_error_handlers(app)
    # Routes are matched in this order: the busiest endpoint (responses) is looked at first.
    routers = (
        responses.router,
        health.router,
        users.router,
        surveys.router,
        connections.router,
        workflows.router,
        runs.router,
        audit.router,
        oauth.router,
        pages.router,
        questions.router,
        respond.router,
        hooks.router,
    )
    api_routers = (
        distributions_api.router,
        directories_api.router,
        transfers_api.router,
        signed_links_api.router,
        salesforce_api.router,
    )
    for router in (*routers, *api_routers):
        app.include_router(router, responses=_documented_errors(router))
    app.include_router(optout.router)
    app.include_router(api_docs.router)
    ui.install(app)  # the admin pages
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return app


# Routers whose endpoints read a body in a format told by its Content-Type.
_READS_TYPED_BODIES = frozenset({"workflows", "directory"})


def _documented_errors(router: APIRouter) -> dict[int | str, dict[str, Any]] | None:
    """The error statuses an API router's endpoints may answer, for the OpenAPI document."""
    if not router.prefix.startswith("/api/"):
        return None
    statuses = API_ERRORS
    if _READS_TYPED_BODIES & set(router.tags):
        statuses = (*statuses, 415)
    return error_responses(*statuses)


def served_app() -> FastAPI:
    """The app of one of `cxloop serve --processes N`'s server processes (a uvicorn factory):
    its own container, from the same settings as the supervising process, and no worker.

    uvicorn starts these processes fresh (multiprocessing's spawn), so they inherit nothing
    of the supervising process's interpreter: the garbage collector is tuned here again, in
    the processes that take the responses in."""
    tune_garbage_collector()
    limit_malloc_arenas()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(build_container(settings), owns_container=True)
