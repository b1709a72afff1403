"""Retention: finished runs older than the period go, set-based, with their task runs and
attempts (ON DELETE CASCADE); unfinished and recent runs stay. Both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, func, select

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.run_models import Run, TaskRun, TaskRunAttempt
from cxloop.ledger import claims
from cxloop.services import surveys
from tests.conftest import Person
from tests.integration.conftest import actor


def _add_runs(container: Container, survey_id: str, status: str, age_days: int, count: int) -> None:
    """`count` runs of `status`, `age_days` old, each with two task runs of one attempt."""
    created = utcnow() - timedelta(days=age_days)
    with container.db.uow() as uow:
        for n in range(count):
            run = Run(
                survey_id=survey_id, workflow_name="W", workflow_revision=1,
                event_type="survey_response", event_key=f"{status}-{age_days}-{n}",
                status=status, created_at=created,
            )  # fmt: skip
            for index in range(2):
                task_run = TaskRun(
                    task_id=f"t{index}", task_index=index, task_type="email", status="succeeded",
                    batch_key="mail", created_at=created,
                )  # fmt: skip
                task_run.attempt_log.append(
                    TaskRunAttempt(number=1, started_at=created, outcome="succeeded")
                )
                run.task_runs.append(task_run)
            uow.session.add(run)
        uow.commit()


def _counts(container: Container) -> tuple[int, int, int]:
    with container.db.reader() as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(select(func.count()).select_from(model))
            for model in (Run, TaskRun, TaskRunAttempt)
        )


def test_old_finished_runs_go_in_chunks_with_their_task_runs(
    container: Container, alice: Person
) -> None:
    survey = surveys.create_survey(container.db, actor(alice), "Retention")
    for status in ("succeeded", "failed", "skipped"):
        _add_runs(container, survey.id, status, age_days=400, count=3)
    _add_runs(container, survey.id, "running", age_days=400, count=2)  # not finished: stays
    _add_runs(container, survey.id, "succeeded", age_days=10, count=2)  # recent: stays
    assert _counts(container) == (13, 26, 26)

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()).lower())

    engine = container.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        first = claims.delete_old_runs(container.db, 365, chunk_size=4, most=6)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # At most `most` a call, in chunks: 4, then the 2 left of the 6.
    assert first == 6
    run_deletes = [s for s in statements if s.startswith("delete from runs")]
    assert len(run_deletes) == 2 and all(" in (select runs.id" in s for s in run_deletes)
    # No row was loaded to be deleted one by one.
    assert not [s for s in statements if s.startswith("select") and "task_run" in s]
    assert _counts(container) == (7, 14, 14)

    assert claims.delete_old_runs(container.db, 365, chunk_size=4) == 3
    assert claims.delete_old_runs(container.db, 365, chunk_size=4) == 0
    assert _counts(container) == (4, 8, 8)
    with container.db.reader() as uow:
        left = {(r.status, r.created_at > utcnow() - timedelta(days=30)) for r in
                uow.session.scalars(select(Run))}  # fmt: skip
    assert left == {("running", False), ("succeeded", True)}
