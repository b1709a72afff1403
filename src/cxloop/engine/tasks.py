"""Huey tasks. Messages carry names and batch keys only; the work reads the truth from the
database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from huey import Huey

from cxloop import metrics
from cxloop.engine import worker
from cxloop.engine.scheduler import record_execution

if TYPE_CHECKING:
    from cxloop.engine.parts import EngineParts

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class QueueTasks:
    """The task handles bound to one Huey instance; calling one enqueues it."""

    run_periodic_job: Any
    dispatch: Any


def register_tasks(huey: Huey, container: EngineParts) -> QueueTasks:
    """Register cxloop's tasks on `huey` (names fixed, so every process agrees on them)."""

    @huey.task(name="cxloop.run_periodic_job")
    def run_periodic_job(job_name: str, slot: int) -> None:
        job = next((j for j in container.jobs if j.name == job_name), None)
        if job is None:
            log.warning("periodic.unknown_job", job=job_name)
            return
        job.run()
        record_execution(container.db, job_name, slot)
        metrics.PERIODIC_RUNS.labels(job_name).inc()
        log.debug("periodic.ran", job=job_name, slot=slot)

    @huey.task(name="cxloop.dispatch")
    def dispatch(batch_key: str) -> None:
        worker.process(container, batch_key)

    return QueueTasks(run_periodic_job=run_periodic_job, dispatch=dispatch)
