"""Whether this process can take work in, and whether its workers and scheduler are heard
from: the body of `/readyz` (web/health.py) and of the probe server of `cxloop worker` and
`cxloop scheduler` (web/probe_server.py), which answers without FastAPI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from cxloop.db import migrate
from cxloop.db.base import utcnow
from cxloop.engine.queue import ping
from cxloop.services import heartbeats


def readiness(container: Any, *, with_processes: bool) -> tuple[int, dict[str, Any]]:
    """The status code and body of `/readyz`: the database and the queue of this process and,
    `with_processes`, whether workers and a scheduler are heard from (heartbeats)."""
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
    if not all(value == "ok" for value in checks.values()):
        return 503, {"status": "unavailable", "checks": checks}
    if not with_processes:
        return 200, {"status": "ready", "checks": checks}
    settings = container.settings
    now = utcnow()
    silent = []
    for health in heartbeats.role_health(container.db, settings.process_silent_after_s, now):
        name = "workers" if health.role == "worker" else health.role
        checks[name] = health.describe(now)
        if health.is_silent:
            silent.append(name)
    if silent:
        return 200, {"status": "degraded", "checks": checks, "degraded": silent}
    return 200, {"status": "ready", "checks": checks}
