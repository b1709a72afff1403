"""The periodic jobs cxloop runs, with their periods from settings."""

from __future__ import annotations

from cxloop.db.uow import Database
from cxloop.engine.scheduler import PeriodicJob
from cxloop.services.connections import delete_stale_attempts
from cxloop.settings import Settings


def heartbeat() -> None:
    """Proof of life of the scheduler and workers; `/readyz` can tell how long ago it ran."""


def periodic_jobs(settings: Settings, db: Database) -> list[PeriodicJob]:
    """Every periodic job, by name. Names are stable: they key `periodic_slots`."""
    return [
        PeriodicJob("heartbeat", settings.heartbeat_period_s, heartbeat),
        PeriodicJob("forget_stale_oauth_attempts", 3600, lambda: delete_stale_attempts(db)),
    ]
