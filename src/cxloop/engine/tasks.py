"""Huey tasks. Messages carry names and ids only; the work reads the truth from the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from huey import Huey

from cxloop.db.uow import Database
from cxloop.engine.scheduler import PeriodicJob, record_execution

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class QueueTasks:
    """The task handles bound to one Huey instance; calling one enqueues it."""

    run_periodic_job: Any


def register_tasks(huey: Huey, db: Database, jobs: list[PeriodicJob]) -> QueueTasks:
    """Register cxloop's tasks on `huey` (names fixed, so every process agrees on them)."""
    by_name = {job.name: job for job in jobs}

    @huey.task(name="cxloop.run_periodic_job")
    def run_periodic_job(job_name: str, slot: int) -> None:
        job = by_name.get(job_name)
        if job is None:
            log.warning("periodic.unknown_job", job=job_name)
            return
        job.run()
        record_execution(db, job_name, slot)
        log.debug("periodic.ran", job=job_name, slot=slot)

    return QueueTasks(run_periodic_job=run_periodic_job)
