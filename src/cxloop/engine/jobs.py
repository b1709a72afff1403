"""The periodic jobs cxloop runs, with their periods from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxloop.engine import worker
from cxloop.engine.scheduler import PeriodicJob
from cxloop.ledger import claims
from cxloop.services import idempotency, throttle, web_sessions
from cxloop.services.connections import delete_stale_attempts

if TYPE_CHECKING:
    from cxloop.engine.parts import EngineParts


def heartbeat() -> None:
    """Proof of life of the scheduler and workers; `/readyz` can tell how long ago it ran."""


def periodic_jobs(container: EngineParts) -> list[PeriodicJob]:
    """Every periodic job, by name. Names are stable: they key `periodic_slots`."""
    settings, db = container.settings, container.db
    return [
        PeriodicJob("heartbeat", settings.heartbeat_period_s, heartbeat),
        PeriodicJob("sweep_ledger", settings.sweeper_period_s, lambda: worker.sweep(container)),
        PeriodicJob(
            "forget_old_runs",
            3600,
            lambda: claims.delete_old_runs(db, settings.run_retention_days),
        ),
        PeriodicJob("forget_stale_oauth_attempts", 3600, lambda: delete_stale_attempts(db)),
        PeriodicJob(
            "forget_ended_sessions", 3600, lambda: web_sessions.delete_expired(db, settings)
        ),
        PeriodicJob(
            "forget_expired_idempotency_keys", 3600, lambda: idempotency.forget_expired(db)
        ),
        PeriodicJob(
            "forget_old_throttle_counters",
            3600,
            lambda: throttle.Throttle(db, settings).forget_old(),
        ),
    ]
