"""The ledger's moves under concurrency, the matcher's cost, and how batches fill.

The races here are PostgreSQL's (READ COMMITTED, row locks); on SQLite the writers are serial
and the same tests pass trivially, which is the point: both engines give the same answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.models import Response
from cxloop.db.run_models import Run, TaskRun
from cxloop.engine import worker
from cxloop.ledger import claims, writing
from cxloop.ledger.claims import Outcome
from cxloop.services import workflows
from cxloop.services.responses import new_response_id
from tests.integration.test_engine import (
    add_workflow,
    drain,
    submit,
    task_runs,
    upsert_workflow,
)


class CheckedThread(threading.Thread):
    """A thread whose exception, a failed assert included, fails the test: `finish` joins it
    and raises what it raised. A plain thread's exception would end as a warning at most."""

    def __init__(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self._target_call = (target, args)
        self.error: BaseException | None = None

    def run(self) -> None:
        target, args = self._target_call
        try:
            target(*args)
        except BaseException as exc:  # handed to the test's thread by finish()
            self.error = exc

    def finish(self, timeout: float = 10.0) -> None:
        """Join; fail if the thread is still running or raised."""
        self.join(timeout)
        assert not self.is_alive(), f"thread {self.name} still runs after {timeout} s"
        if self.error is not None:
            raise self.error


def two_tasks_and_one_that_uses_both() -> dict[str, Any]:
    document = upsert_workflow("Acme", name="Two and one")
    document["tasks"] += [
        {
            "id": "contact",
            "type": "salesforce",
            "connection": "Acme",
            "object": "Contact",
            "action": "insert",
            "mappings": [{"field": "LastName", "value": "Respondent"}],
        },
        {
            "id": "both",
            "type": "salesforce",
            "connection": "Acme",
            "object": "Case",
            "action": "insert",
            "mappings": [
                {"field": "Subject", "value": "${task://response/Id} ${task://contact/Id}"}
            ],
        },
    ]
    return document


def by_task(container: Container) -> dict[str, TaskRun]:
    return {t.task_id: t for t in task_runs(container)}


def succeeded(task_run_id: str, record_id: str) -> Outcome:
    return Outcome(task_run_id, "succeeded", record_id=record_id, result={"Id": record_id})


def test_two_tasks_of_a_run_finishing_together_free_the_task_that_waits_for_both(
    linked: Container, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bug: each worker's transaction settled the run from what it saw. On PostgreSQL the
    # second saw the first's task still running (not committed yet) and the first saw the
    # second's: the task that waits for both stayed blocked for good, the run "running".
    add_workflow(linked, setup, two_tasks_and_one_that_uses_both())
    submit(linked, setup, 9)
    rows = by_task(linked)
    claimed_a = claims.claim_task_runs(
        linked.db, rows["response"].batch_key, limit=5, lease_s=60, worker="A"
    )
    claimed_b = claims.claim_task_runs(
        linked.db, rows["contact"].batch_key, limit=5, lease_s=60, worker="B"
    )
    assert len(claimed_a) == len(claimed_b) == 1
    real_release = linked.ledger.release_blocked
    a_settled, a_may_commit = threading.Event(), threading.Event()

    def release_then_hold(session: Any, run_ids: Any) -> list[str]:
        freed = real_release(session, run_ids)
        if threading.current_thread().name == "A":  # A holds its transaction open
            a_settled.set()
            assert a_may_commit.wait(10)
        return freed

    monkeypatch.setattr(linked.ledger, "release_blocked", release_then_hold)
    freed: dict[str, list[str]] = {}

    def record(name: str, outcome: Outcome) -> None:
        settled = claims.record_outcomes(linked.db, [outcome], started_at=utcnow(), worker=name)
        freed[name] = settled.ready_keys

    a = CheckedThread(record, "A", succeeded(claimed_a[0].id, "a0X000000000001AAA"), name="A")
    b = CheckedThread(record, "B", succeeded(claimed_b[0].id, "003000000000001AAA"), name="B")
    a.start()
    assert a_settled.wait(10)
    b.start()
    b.join(0.5)  # B runs as far as it can while A's transaction is open
    a_may_commit.set()
    a.finish()
    b.finish()
    rows = by_task(linked)
    assert rows["both"].status == "pending"
    assert freed["A"] + freed["B"] == [rows["both"].batch_key]
    with linked.db.reader() as uow:
        assert uow.session.scalar(select(Run.status)) == "running"


def test_an_outcome_is_never_written_over_a_row_the_sweeper_took_back(
    linked: Container, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bug: recording read the rows it held without locking them. A sweeper that found the
    # lease expired in between handed the row to another worker, and the first worker's
    # outcome then overwrote the second one's claim: the record went to Salesforce twice.
    add_workflow(linked, setup, upsert_workflow("Acme"))
    submit(linked, setup, 9)
    (row,) = task_runs(linked)
    (claimed,) = claims.claim_task_runs(
        linked.db, row.batch_key, limit=5, lease_s=60, worker="slow"
    )
    with linked.db.uow() as uow:  # the batch took longer than its lease
        uow.session.execute(
            update(TaskRun).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()
    real_columns = claims.outcome_columns
    has_read, may_write = threading.Event(), threading.Event()

    def columns_after_a_pause(outcome: Outcome, now: Any) -> dict[str, Any]:
        has_read.set()
        assert may_write.wait(10)
        return real_columns(outcome, now)

    monkeypatch.setattr(claims, "outcome_columns", columns_after_a_pause)
    recording = CheckedThread(
        lambda: claims.record_outcomes(
            linked.db, [succeeded(claimed.id, "a0X000000000001AAA")],
            started_at=utcnow(), worker="slow",
        )
    )  # fmt: skip
    recording.start()
    assert has_read.wait(10)
    taken_again: list[Any] = []

    def sweep_then_claim() -> None:
        claims.expire_leases(linked.db, linked.settings)
        taken_again.extend(
            claims.claim_task_runs(linked.db, row.batch_key, limit=5, lease_s=60, worker="other")
        )

    sweeper = CheckedThread(sweep_then_claim)
    sweeper.start()
    sweeper.join(1.0)  # as far as it gets while the outcome is being recorded
    may_write.set()
    recording.finish()
    sweeper.finish()
    assert taken_again == []
    (row,) = task_runs(linked)
    assert (row.status, row.claimed_by, row.attempts) == ("succeeded", None, 1)


@pytest.fixture
def statements(linked: Container) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(linked.db.engine, "before_cursor_execute", note)
    yield seen
    event.remove(linked.db.engine, "before_cursor_execute", note)


def unsaved_responses(survey_id: str, count: int) -> list[Response]:
    now = utcnow()
    return [
        Response(
            id=new_response_id(),
            survey_id=survey_id,
            values={"QID1": n % 11},
            embedded_data={},
            started_at=now,
            ended_at=now,
            duration_s=0,
            finished=True,
            source="api",
            language="en",
            created_at=now,
            updated_at=now,
        )
        for n in range(count)
    ]


def test_matching_a_batch_costs_one_query_and_two_inserts(
    linked: Container,
    setup: dict[str, Any],
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    add_workflow(linked, setup, upsert_workflow("Acme", name="Second"))
    # The rows go to the driver (on PostgreSQL by COPY, which the engine's events do not see):
    # count the writes where they are made too.
    writes: list[str] = []
    insert_rows = writing.insert_rows

    def counted(connection: Any, table: Any, rows: Any) -> None:
        writes.append(table.name)
        insert_rows(connection, table, rows)

    monkeypatch.setattr(writing, "insert_rows", counted)
    for _ in range(2):  # the first batch also reads the documents; later ones do not
        statements.clear()
        writes.clear()
        with linked.db.uow() as uow:
            batch = unsaved_responses(setup["survey_id"], 30)
            uow.ledger.record_response_events(uow, batch, "created")
            uow.commit()
    assert statements.count("SELECT") == 1
    assert writes == ["runs", "task_runs"] * 2  # runs and task runs, for each workflow
    if linked.db.engine.dialect.name == "sqlite":
        assert statements.count("INSERT") == 4
    with linked.db.reader() as uow:
        assert len(uow.session.scalars(select(Run.id)).all()) == 2 * 2 * 30


def test_a_survey_without_workflows_costs_one_query(
    linked: Container, setup: dict[str, Any], statements: list[str]
) -> None:
    with linked.db.uow() as uow:
        batch = unsaved_responses(setup["survey_id"], 10)
        uow.ledger.record_response_events(uow, batch, "created")
    assert statements.count("SELECT") == 1
    assert "INSERT" not in statements


def test_a_saved_workflow_matches_with_its_new_revision_and_a_disabled_one_not_at_all(
    linked: Container, setup: dict[str, Any]
) -> None:
    actor, survey_id = setup["actor"], setup["survey_id"]
    created = workflows.create_workflow(linked.db, actor, survey_id, upsert_workflow("Acme"))
    workflow_id = created.workflow.id
    submit(linked, setup, 9)
    workflows.update_workflow(
        linked.db, actor, workflow_id, upsert_workflow("Acme", name="Renamed"), survey_id=survey_id
    )
    submit(linked, setup, 8)
    workflows.set_enabled(linked.db, actor, workflow_id, False, survey_id=survey_id)
    submit(linked, setup, 7)
    with linked.db.reader() as uow:
        started = uow.session.execute(
            select(Run.workflow_name, Run.workflow_revision).order_by(Run.created_at)
        ).all()
    assert [tuple(r) for r in started] == [
        ("Survey response to Salesforce", 1),
        ("Renamed", 2),
    ]


def ready_key(container: Container, setup: dict[str, Any], count: int) -> str:
    add_workflow(container, setup, upsert_workflow("Acme"))
    for number in range(count):
        submit(container, setup, number % 11)
    (key,) = claims.overdue_keys(container.db, grace_s=0)
    return key


def test_a_filling_batch_goes_once_nothing_joins_it(
    linked: Container, setup: dict[str, Any]
) -> None:
    linked.settings.batch_linger_s, linked.settings.batch_quiet_s = 5.0, 0.1
    key = ready_key(linked, setup, 3)
    linked.engine_state.pacing.last_batch_at[key] = (
        time.monotonic()
    )  # under load: a batch went moments ago
    started = time.monotonic()
    with worker.batch_turn(linked, key) as waited:
        assert waited is not None
    assert time.monotonic() - started < 2.0  # well before the 5 s linger


def test_a_batch_of_this_process_in_flight_is_no_reason_to_stop_waiting(
    linked: Container, setup: dict[str, Any]
) -> None:
    # While this process sends a batch, arrivals pause because of it: keep filling (past
    # `batch_quiet_s` without an arrival; three times that is the end of the traffic).
    linked.settings.batch_linger_s, linked.settings.batch_quiet_s = 0.6, 0.15
    key = ready_key(linked, setup, 3)
    linked.engine_state.pacing.last_batch_at[key] = time.monotonic()
    linked.engine_state.pacing.in_flight[key] = 1  # a sender thread of this process is busy
    with worker.batch_turn(linked, key) as waited:
        assert waited is not None and waited >= 0.3


def test_two_messages_never_split_one_batch(linked: Container, setup: dict[str, Any]) -> None:
    linked.settings.batch_size, linked.settings.batch_linger_s = 2, 5.0
    key = ready_key(linked, setup, 3)
    # another thread of this process drives this key: it takes these rows
    linked.engine_state.pacing.driving.add(key)
    worker.process(linked, key)
    assert sorted(t.status for t in task_runs(linked)) == ["pending"] * 3
    linked.engine_state.pacing.driving.discard(key)
    worker.process(linked, key)
    assert sorted(t.status for t in task_runs(linked)) == ["succeeded"] * 3


def test_an_org_held_back_during_a_message_gets_no_more_batches_from_it(
    linked: Container,
    setup: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bug: the hold was looked at once per message; the rounds after it went on claiming.
    linked.settings.batch_size = 1
    # One batch in flight at a time: the second is claimed only after the first is back (with
    # two, it may rightly go beside the first, before the hold exists).
    linked.settings.salesforce_max_concurrent_batches = 1
    key = ready_key(linked, setup, 2)
    scheduled: list[str] = []
    monkeypatch.setattr(worker, "schedule", lambda _c, batch_key, _at: scheduled.append(batch_key))
    real_execute = worker.salesforce_batch.execute

    def execute_then_hold_back(container: Container, claimed: Any, target: Any) -> Any:
        outcomes = real_execute(container, claimed, target)
        claims.throttle_org(container.db, target.org_id, 60, "test", escalate=False)
        return outcomes

    monkeypatch.setattr(worker.salesforce_batch, "execute", execute_then_hold_back)
    worker.process(linked, key)
    statuses = sorted(t.status for t in task_runs(linked))
    assert statuses == ["pending", "succeeded"] and scheduled == [key]
    assert claims.batch_target(linked.db, setup["actor"].id, "Acme").held_until is not None


def test_a_nearly_full_batch_waits_half_as_long_again_to_fill(
    linked: Container, setup: dict[str, Any]
) -> None:
    settings = linked.settings
    # A linger of 2 s: the records' set-up may take up to a second on a loaded machine (the
    # wait counts from the oldest record's arrival) and the wait still shows above the linger.
    settings.batch_size, settings.batch_linger_s, settings.batch_quiet_s = 3, 2.0, 0.0
    key = ready_key(linked, setup, 2)  # two thirds of a batch, after a quiet spell
    with worker.batch_turn(linked, key) as waited:
        assert waited is not None and waited > 2.0  # more than the linger itself


def trickle(container: Container, setup: dict[str, Any], count: int, every_s: float) -> Any:
    """A thread submitting `count` responses, one every `every_s` seconds (started)."""

    def submit_all() -> None:
        for number in range(count):
            time.sleep(every_s)
            submit(container, setup, number % 11)

    thread = threading.Thread(target=submit_all, daemon=True)
    thread.start()
    return thread


def test_under_steady_traffic_a_partial_batch_waits_to_fill_while_records_arrive(
    linked: Container, setup: dict[str, Any]
) -> None:
    # Bug: right after a batch (or beside one in flight) a partial batch went once its oldest
    # record had waited a linger (or two): at 120-180 responses a second in the cluster bench
    # every call carried 130-190 records, 6.3-7.3 calls per 1,000 instead of 5.
    settings = linked.settings
    settings.batch_size, settings.batch_linger_s, settings.batch_quiet_s = 400, 0.2, 0.0
    key = ready_key(linked, setup, 2)
    linked.engine_state.pacing.last_batch_at[key] = time.monotonic()  # a batch went just now
    arriving = trickle(linked, setup, 40, 0.03)
    with worker.batch_turn(linked, key) as waited:
        count, oldest, _ = claims.ready_summary(linked.db, key)
        assert oldest is not None
        oldest_waited = (utcnow() - oldest).total_seconds()
    arriving.join()
    assert waited is not None and count > 2
    # Its oldest record waited 4 lingers (one, or 1.5 nearly full, before); not much more.
    assert 0.75 <= oldest_waited <= 0.8 + 0.5, oldest_waited


def test_with_nothing_ready_beside_a_batch_in_flight_the_driver_stays_for_the_next_records(
    linked: Container, setup: dict[str, Any]
) -> None:
    # Bug: the driver left when its last claim took every ready row, though a batch of the key
    # was in flight and records kept coming; the key went to a new driver (often in another
    # process) that sent what piled up meanwhile as a partial batch.
    settings = linked.settings
    settings.batch_size, settings.batch_linger_s, settings.batch_quiet_s = 3, 0.2, 0.0
    key = drained_key(linked, setup)
    pacing = linked.engine_state.pacing
    pacing.in_flight[key] = 1
    pacing.last_batch_at[key] = time.monotonic()
    arriving = trickle(linked, setup, 3, 0.1)
    try:
        with worker.batch_turn(linked, key) as waited:
            count = claims.ready_summary(linked.db, key).count
    finally:
        arriving.join()
        pacing.in_flight.pop(key, None)
    assert waited is not None and count == 3


def test_with_nothing_ready_and_nothing_in_flight_the_driver_leaves(
    linked: Container, setup: dict[str, Any]
) -> None:
    key = drained_key(linked, setup)
    linked.engine_state.pacing.last_batch_at[key] = time.monotonic()
    with worker.batch_turn(linked, key) as waited:
        assert waited is None


def drained_key(container: Container, setup: dict[str, Any]) -> str:
    """The workflow's batch key, its one record sent: nothing of it is ready now."""
    key = ready_key(container, setup, 1)
    drain(container)
    assert claims.ready_summary(container.db, key).count == 0
    return key


def test_runs_written_through_the_driver_are_stored_as_a_core_insert_stores_them(
    linked: Container, setup: dict[str, Any]
) -> None:
    add_workflow(linked, setup, upsert_workflow("Acme"))
    with linked.db.uow() as uow:
        [response] = unsaved_responses(setup["survey_id"], 1)
        uow.ledger.record_response_events(uow, [response], "created")
        uow.commit()
    with linked.db.reader() as uow:
        run = uow.session.execute(select(Run.__table__)).one()._asdict()
        task_run = uow.session.execute(select(TaskRun.__table__)).one()._asdict()
        # SQL NULL, not JSON null, where a Core INSERT left the column out
        json_nulls = uow.session.execute(
            select(TaskRun.id).where(
                TaskRun.payload.is_(None), TaskRun.result.is_(None), TaskRun.error.is_(None)
            )
        ).all()
    # What the rows had to spell out (the driver applies no column defaults)
    assert (run["status"], run["event_data"], run["finished_at"]) == ("pending", {}, None)
    assert task_run | {k: None for k in ("id", "run_id", "next_attempt_at", "created_at")} == {
        "id": None, "run_id": None, "task_id": "response", "task_index": 0,
        "task_type": "salesforce", "status": "pending", "status_reason": "",
        "batch_key": task_run["batch_key"], "connection_id": None, "depends_on": [],
        "attempts": 0, "next_attempt_at": None, "lease_expires_at": None, "claimed_by": None,
        "claimed_at": None, "ambiguous": False, "bulk_job_id": None, "record_id": None,
        "payload": None, "result": None, "error": None, "created_at": None,
        "first_attempt_at": None, "finished_at": None,
    }  # fmt: skip
    assert task_run["batch_key"].startswith("sf|") and task_run["run_id"] == run["id"]
    assert json_nulls == [(task_run["id"],)]
