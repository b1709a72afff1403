"""Liveness, readiness and metrics: what load balancers and Prometheus ask."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from cxloop import metrics
from cxloop.db import migrate
from cxloop.engine.queue import ping, queue_depth

router = APIRouter(tags=["health"])


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


class ReadinessOut(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="database, queue: `ok` or what is wrong")


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    responses={
        503: {
            "model": ReadinessOut,
            "description": "The database or the queue does not answer (checks say which)",
        }
    },
)
def readyz(request: Request) -> JSONResponse:
    """200 when the database (at the current schema) and the queue answer; else 503 saying which."""
    container = request.app.state.container
    checks: dict[str, Any] = {}
    try:
        with container.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = (
            "ok"
            if migrate.is_up_to_date(container.db.engine)
            else "schema is not at the newest revision: run `cxloop db upgrade`"
        )
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        ping(container.huey)
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    try:
        metrics.QUEUE_DEPTH.set(queue_depth(request.app.state.container.huey))
    except Exception:
        metrics.QUEUE_DEPTH.set(float("nan"))
    return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)
