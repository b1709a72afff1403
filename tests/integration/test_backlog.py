"""A backlog waiting for an org that is down: it waits as untouched rows, with a message per key
(not per row) on the queue, and the queries that drain it read an index of ready rows instead
of sorting or counting the whole backlog (bench/backlog_bench.py measures it at a million)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text, update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.run_models import OrgThrottle, Run, TaskRun, TaskRunAttempt
from cxloop.engine import worker
from cxloop.engine.render import batch_runs, task_outputs_of
from cxloop.ledger import claims
from cxloop.ledger.claims import ClaimedTaskRun
from cxloop.services import surveys, users
from cxloop.services.access import Actor
from sfemu.testing import EmulatorServer
from tests.integration.test_engine import (
    add_workflow,
    drain,
    sf_records,
    submit,
    task_runs,
    upsert_workflow,
)

KEY = "sf|UR_backlog|Acme|Survey_Response__c|upsert|Response_ID__c"
OTHER_KEY = "sf|UR_backlog|Acme|Contact|insert|"


# --- an org that is down


def test_a_strike_while_the_org_is_held_counts_once(container: Container) -> None:
    # Bug: several batches of one org in flight failed together in one outage and each added a
    # strike, doubling the hold per batch (and two first strikes at once both inserted the row).
    first = claims.throttle_org(container.db, "00Dstrike", 30, "down", escalate=True)
    again = claims.throttle_org(container.db, "00Dstrike", 30, "down", escalate=True)
    assert again == first
    with container.db.reader() as uow:
        throttle = uow.session.get(OrgThrottle, "00Dstrike")
        assert throttle is not None and throttle.strikes == 1
    with container.db.uow() as uow:  # the hold ended: the next failure is a second strike
        uow.session.execute(update(OrgThrottle).values(until=utcnow()))
        uow.commit()
    later = claims.throttle_org(container.db, "00Dstrike", 30, "down", escalate=True)
    assert later - utcnow() > timedelta(seconds=45)  # 30 s doubled


def queued(container: Container) -> int:
    """Messages on the queue: due now, or scheduled (Huey keeps those on the queue until a
    consumer sees them)."""
    return container.huey.pending_count() + container.huey.scheduled_count()


def test_an_unreachable_org_is_tried_one_batch_at_a_time_not_row_by_row(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # Bug: every ready row was claimed, sent into the void and given a retry message of its
    # own: 5,000 imported responses made 12,558 attempts and 11,976 queue messages in 5 s.
    linked.settings.batch_size = 2
    linked.settings.retry_base_s = 30.0  # the hold outlasts the test's look at the backlog
    # One batch in flight: with a bound of N, an outage costs at most the N batches that were
    # in flight when it began (and one strike: see the next test).
    linked.settings.salesforce_max_concurrent_batches = 1
    add_workflow(linked, setup, upsert_workflow("Acme"))
    emulator.control.post("/faults", json={"target": "rest", "mode": "drop"}).raise_for_status()
    for number in range(7):
        submit(linked, setup, number)
    (key,) = claims.overdue_keys(linked.db, grace_s=0)
    messages_before = queued(linked)
    worker.process(linked, key)
    worker.process(linked, key)  # another message of the same key meets the hold
    statuses = sorted(t.status for t in task_runs(linked))
    assert statuses == ["pending"] * 5 + ["waiting_retry"] * 2
    with linked.db.reader() as uow:
        assert len(uow.session.scalars(select(TaskRunAttempt.id)).all()) == 2
        (throttle,) = uow.session.scalars(select(OrgThrottle)).all()
    assert throttle.strikes == 1 and "Salesforce" in throttle.reason
    # the two retried rows come back with the hold's end; the key is scheduled once for it
    assert {t.next_attempt_at for t in task_runs(linked) if t.attempts} == {throttle.until}
    assert queued(linked) - messages_before == 2

    emulator.control.delete("/faults").raise_for_status()
    with linked.db.uow() as uow:  # time passes: the hold ends, the retries are due
        uow.session.execute(update(OrgThrottle).values(until=utcnow()))
        uow.session.execute(
            update(TaskRun).where(TaskRun.attempts > 0).values(next_attempt_at=utcnow())
        )
        uow.commit()
    drain(linked)
    assert {t.status for t in task_runs(linked)} == {"succeeded"}
    assert len(sf_records(emulator, "Survey_Response__c")) == 7
    with linked.db.reader() as uow:
        # the org answered: the next outage starts from the first, short hold
        assert uow.session.scalar(select(OrgThrottle.strikes)) == 0


def test_a_failed_batch_brings_its_retries_back_with_two_messages_per_key() -> None:
    now = utcnow()
    retries = [(KEY, now + timedelta(seconds=s)) for s in (1.5, 1.1, 1.9, 1.2)]
    retries += [(OTHER_KEY, now + timedelta(seconds=3))] * 3
    assert claims.Settled(retries=retries).retry_messages() == {
        KEY: [now + timedelta(seconds=1.1), now + timedelta(seconds=1.9)],
        OTHER_KEY: [now + timedelta(seconds=3)],
    }
    assert claims.Settled().retry_messages() == {}


# --- the sweeper resumes paused work without loading it


@pytest.fixture
def orm_loads(linked: Container) -> Iterator[list[str]]:
    loaded: list[str] = []

    def note(target: Any, _context: Any) -> None:
        loaded.append(type(target).__name__)

    event.listen(TaskRun, "load", note)
    event.listen(Run, "load", note)
    yield loaded
    event.remove(TaskRun, "load", note)
    event.remove(Run, "load", note)


def test_paused_work_resumes_in_chunks_without_loading_a_row(
    linked: Container, setup: dict[str, Any], orm_loads: list[str]
) -> None:
    # Bug: resume_paused loaded every paused task run (and its run) as an object, in one
    # transaction: a connection back after a day of a million paused rows meant a million
    # objects in the sweeper and SQLite's write lock held throughout.
    add_workflow(linked, setup, upsert_workflow("Acme"))
    for number in range(11):
        submit(linked, setup, number)
    with linked.db.uow() as uow:
        uow.session.execute(
            update(TaskRun).values(
                status="paused", connection_id=setup["connection"]["id"], first_attempt_at=utcnow()
            )
        )
        uow.session.execute(update(Run).values(status="paused"))
        uow.commit()
    orm_loads.clear()
    keys = claims.resume_paused(linked.db, chunk=4)
    assert orm_loads == []
    assert keys == [task_runs(linked)[0].batch_key]
    rows = task_runs(linked)
    assert {(t.status, t.first_attempt_at) for t in rows} == {("pending", None)}
    with linked.db.reader() as uow:
        assert set(uow.session.scalars(select(Run.status))) == {"pending"}
    assert claims.resume_paused(linked.db, chunk=4) == []


# --- a Bulk job's worth of task runs


def test_a_bulk_jobs_worth_of_runs_is_read_in_bounded_in_lists(container: Container) -> None:
    # Bug: the million-waiting bench on PostgreSQL drained nothing. A Bulk job claims up to
    # 100,000 task runs and its screen read their runs with one IN list of every run id: past
    # PostgreSQL's 65,535 bound parameters the statement failed, the job stayed Open until its
    # lease ran out, was aborted, and the next job failed the same way.
    survey_id = _backlog(container, ready=2, done=0)
    now = utcnow()
    real = [ClaimedTaskRun(f"TR_b{n:09d}", f"RN_b{n:09d}", "t", "salesforce", KEY, 1, None,
                           False, now) for n in range(2)]  # fmt: skip
    gone = [ClaimedTaskRun(f"TR_g{n:09d}", f"RN_g{n:09d}", "t", "salesforce", KEY, 1, None,
                           False, now) for n in range(70_000)]  # fmt: skip
    task_runs = gone[:40_000] + real + gone[40_000:]  # the runs that exist in a middle chunk
    foreign = claims.foreign_task_runs(container.db, task_runs, owner_id="UR_someone_else")
    assert sorted(foreign) == ["TR_b000000000", "TR_b000000001"]
    run_ids = [t.run_id for t in task_runs]
    with container.db.reader() as uow:
        runs = batch_runs(uow.session, run_ids)
        outputs = task_outputs_of(uow.session, run_ids)
    assert sorted(runs) == ["RN_b000000000", "RN_b000000001"]
    assert {run.survey_id for run in runs.values()} == {survey_id}
    assert outputs == {}


# --- the queries read the ready rows' index


def _backlog(container: Container, ready: int, done: int) -> str:
    """`ready` pending task runs of KEY (and a few of OTHER_KEY, some not due yet) and `done`
    succeeded ones, each in a run of its own; the survey's id."""
    owner = Actor.of(users.create_user(container.db, "o@example.com", "a long passphrase 1"))
    survey_id = surveys.create_survey(container.db, owner, "Backlog").id
    now = utcnow()
    runs, rows = [], []
    for n in range(ready + done + 20):
        key, status, at = KEY, "pending", now - timedelta(seconds=ready - n)
        if n >= ready + done:
            key, at = OTHER_KEY, now + timedelta(hours=1)  # waits for its retry
        elif n >= ready:
            status = "succeeded"
        runs.append({"id": f"RN_b{n:09d}", "survey_id": survey_id, "workflow_name": "W",
                     "workflow_revision": 1, "event_type": "survey_response",
                     "event_key": f"response:R_{n}:created", "event_data": {},
                     "status": "pending", "created_at": now})  # fmt: skip
        rows.append({"id": f"TR_b{n:09d}", "run_id": f"RN_b{n:09d}", "task_id": "t",
                     "task_index": 0, "task_type": "salesforce", "status": status,
                     "status_reason": "", "batch_key": key, "depends_on": [], "attempts": 0,
                     "next_attempt_at": at, "ambiguous": False, "created_at": now})  # fmt: skip
    with container.db.uow() as uow:
        uow.session.execute(insert(Run.__table__), runs)
        uow.session.execute(insert(TaskRun.__table__), rows)
        uow.commit()
    with container.db.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    return survey_id


class Plans:
    """The plan of every statement run while watching, as the database would run it."""

    def __init__(self, container: Container) -> None:
        self.engine = container.db.engine
        self.seen: list[tuple[str, Any]] = []

    def note(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.seen.append((statement, parameters))

    def of(self, fragment: str) -> str:
        """The plan of the last statement seen that contains `fragment`."""
        statement, parameters = next(s for s in reversed(self.seen) if fragment in s[0])
        explain = "EXPLAIN QUERY PLAN " if self.engine.dialect.name == "sqlite" else "EXPLAIN "
        with self.engine.connect() as connection:
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            connection.rollback()
        return "\n".join(str(row[-1]) for row in rows)


@pytest.fixture
def plans(container: Container) -> Iterator[Plans]:
    watch = Plans(container)
    event.listen(container.db.engine, "before_cursor_execute", watch.note)
    yield watch
    event.remove(container.db.engine, "before_cursor_execute", watch.note)


def _sorts(plan: str) -> bool:
    return "TEMP B-TREE" in plan or "Sort" in plan


def test_claiming_from_a_backlog_reads_its_first_rows_from_the_ready_index(
    container: Container, plans: Plans
) -> None:
    # Bug: the claim's ORDER BY next_attempt_at, id came from no index (the status IN two
    # values breaks the order of (batch_key, status, next_attempt_at)): every claim sorted
    # every ready row of its key, a million at a time under a backlog.
    _backlog(container, ready=3000, done=2000)
    claimed = claims.claim_task_runs(container.db, KEY, limit=200, lease_s=60, worker="w")
    assert [c.id for c in claimed] == [f"TR_b{n:09d}" for n in range(200)]  # oldest first
    plan = plans.of("UPDATE task_runs")
    assert "ix_task_runs_ready_queue" in plan and not _sorts(plan), plan


def test_the_ready_summary_counts_a_backlog_only_up_to_its_cap(
    container: Container, plans: Plans
) -> None:
    _backlog(container, ready=3000, done=100)
    count, oldest, newest = claims.ready_summary(container.db, KEY)
    assert count == claims.READY_COUNT_CAP
    assert oldest is not None and newest is not None and oldest < newest
    plan = plans.of("count(*)")
    assert "ix_task_runs_ready_queue" in plan and not _sorts(plan), plan
    assert claims.ready_summary(container.db, OTHER_KEY).count == 0  # not due yet


def test_the_sweeper_finds_overdue_keys_with_a_probe_per_key(
    container: Container, plans: Plans
) -> None:
    # Bug: SELECT DISTINCT batch_key read every ready row each sweeper period.
    _backlog(container, ready=3000, done=100)
    assert claims.overdue_keys(container.db, grace_s=0) == [KEY]  # OTHER_KEY is not due
    plan = plans.of("ready_keys")
    assert "ix_task_runs_ready" in plan, plan  # either index: probes, no scan
    assert "SCAN task_runs" not in plan and "Seq Scan on task_runs" not in plan, plan


def test_the_ready_index_is_made_by_the_migration(container: Container) -> None:
    with container.db.engine.connect() as connection:
        if container.db.engine.dialect.name == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_task_runs_ready_queue'"
        else:
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_task_runs_ready_queue'"
        definition = connection.execute(text(sql)).scalar()
    assert definition is not None and "pending" in definition and "waiting_retry" in definition
