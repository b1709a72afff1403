"""Liveness, readiness and metrics: what load balancers and Prometheus ask.

`/readyz` answers 503 only when this process cannot take work in (the database or the queue
does not answer, or the schema is behind). Silent workers or a silent scheduler make it
`degraded` with 200: the web tier can still take responses in, and the ledger keeps them until
a worker comes back, whereas a 503 would take every web pod out of the load balancer and stop
the intake too (docs/deploy.md). `?strict=true` answers 503 for degraded as well, for monitors.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from cxloop import metrics
from cxloop.engine.queue import queue_depth
from cxloop.services.readiness import readiness
from cxloop.web.api.schemas import error_responses

router = APIRouter(tags=["health"])


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


class ReadinessOut(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, str] = Field(
        description="database, queue (and workers, scheduler): `ok` or what is wrong"
    )
    degraded: list[str] | None = Field(
        default=None, description="the silent roles (`workers`, `scheduler`), when degraded"
    )


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    responses={
        200: {
            "description": "ready, or degraded: no heartbeat from any worker or from the "
            "scheduler for CXLOOP_PROCESS_SILENT_AFTER_S (checks say which, and since when)"
        },
        503: {
            "model": ReadinessOut,
            "description": "The database or the queue does not answer (checks say which)",
        },
        **error_responses(422),  # a `strict` that is not a boolean, in our error shape
    },
)
def readyz(
    request: Request,
    strict: bool = Query(False, description="Answer 503 when degraded too (for monitors)."),
) -> JSONResponse:
    """200 when the database (at the current schema) and the queue answer, with `status`
    `ready`, or `degraded` when workers or the scheduler are silent; else 503 saying which."""
    status_code, body = readiness(request.app.state.container, with_processes=True)
    if strict and body["status"] == "degraded":
        status_code = 503
    return JSONResponse(body, status_code=status_code)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    try:
        metrics.QUEUE_DEPTH.set(queue_depth(request.app.state.container.huey))
    except Exception:
        metrics.QUEUE_DEPTH.set(float("nan"))
    return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)
