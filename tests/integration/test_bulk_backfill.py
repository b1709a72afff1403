"""Backfills through Bulk API 2.0: a batch key's large backlog goes in one ingest job, against
the real emulator, exactly once (also when the worker dies mid-job or the close gets no answer)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.run_models import BulkJob, TaskRun, TaskRunAttempt
from cxloop.engine import salesforce_bulk, worker
from cxloop.ledger import bulk_jobs, claims
from cxloop.salesforce.bulk import BulkClient
from cxloop.services import responses
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import sign_in
from tests.integration.test_engine import add_workflow, submit, upsert_workflow


def imported_workflow(action: str = "upsert", sentiment: bool = False) -> dict[str, Any]:
    document = upsert_workflow("Acme", name="Backfill")
    document["event"]["include_imported"] = True
    task = document["tasks"][0]
    if action == "insert":
        task["action"] = "insert"
        del task["key_field"]
    task["mappings"].append({"field": "Completed__c", "value": "true", "constant": True})
    if sentiment:  # the comment is a restricted picklist's value: some rows are refused
        task["mappings"].append(
            {"field": "Sentiment__c", "value": "${q://QID2/ChoiceTextEntryValue}"}
        )
    return document


def import_responses(container: Container, setup: dict[str, Any], comments: list[str]) -> None:
    rows = [
        responses.SourceRow(
            n,
            {
                "values": {"QID1": n % 11, "QID2": comment},
                "embedded_data": {"CaseId": ""},
            },
        )
        for n, comment in enumerate(comments, start=1)
    ]
    result = responses.import_responses(container.db, setup["actor"], setup["survey_id"], rows)
    assert result.stored == len(comments), result.bad_rows


def drain(container: Container, timeout: float = 90.0) -> None:
    """What workers, the sweeper and scheduled checks do, inline, until nothing is open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.sweep(container)
        keys = claims.overdue_keys(container.db, grace_s=0)
        keys += bulk_jobs.overdue_checks(container.db, grace_s=0)
        if not keys and not _open(container):
            return
        for key in keys:
            worker.process(container, key)
        time.sleep(0.02)
    raise AssertionError(f"work still open after {timeout}s: {_open(container)[:5]}")


def _open(container: Container) -> list[Any]:
    with container.db.reader() as uow:
        rows = uow.session.execute(
            select(TaskRun.id, TaskRun.status).where(
                TaskRun.status.in_(("pending", "running", "waiting_retry", "blocked"))
            )
        ).all()
        jobs = uow.session.scalars(select(BulkJob.id).where(BulkJob.settled_at.is_(None))).all()
    return [*rows, *jobs]


def api_calls(emulator: EmulatorServer) -> int:
    return int(emulator.control.get("/api_usage").json()["acme"]["used"])


def records(emulator: EmulatorServer, fields: str = "Id, Response_ID__c") -> list[dict[str, Any]]:
    reply = emulator.client().get(
        "/services/data/v62.0/query/",
        params={"q": f"SELECT {fields} FROM Survey_Response__c"},
    )
    body = reply.json()
    found = list(body["records"])
    while not body.get("done", True):
        body = emulator.client().get(body["nextRecordsUrl"]).json()
        found.extend(body["records"])
    return found


def task_run_rows(container: Container) -> list[TaskRun]:
    with container.db.reader() as uow:
        return list(uow.session.scalars(select(TaskRun).order_by(TaskRun.created_at)))


def jobs(container: Container) -> list[BulkJob]:
    with container.db.reader() as uow:
        return list(uow.session.scalars(select(BulkJob).order_by(BulkJob.created_at)))


# The backfills here cross a threshold of 100, not the default 2,000: a job of 101 takes the
# same path as one of 2,001 (a job is rendered and recorded 5,000 rows at a time), for a
# twentieth of the rows to import, render, send and read back.
THRESHOLD = 100


@pytest.fixture
def fast(linked: Container) -> Container:
    linked.settings.bulk_threshold = THRESHOLD
    linked.settings.bulk_poll_s = 0.05
    linked.settings.bulk_poll_max_s = 0.2
    return linked


@pytest.fixture
def backfill(fast: Container, setup: dict[str, Any]) -> Callable[..., None]:
    """Save the backfill workflow (`action`: upsert or insert), then import `count` responses
    (comments c0, c1, ...) for it: a backlog of one batch key."""

    def make(count: int, action: str = "upsert") -> None:
        add_workflow(fast, setup, imported_workflow(action))
        import_responses(fast, setup, [f"c{n}" for n in range(count)])

    return make


def test_a_backfill_past_the_threshold_goes_through_one_bulk_job(
    fast: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    web: TestClient,
    owner: Person,
) -> None:
    size = 2 * THRESHOLD + 50  # past the threshold, and more than one Collections call (200)
    add_workflow(fast, setup, imported_workflow())
    import_responses(fast, setup, [f'comment, with "quotes"\nand a line {n}' for n in range(size)])
    emulator.control.delete("/api_usage")
    drain(fast)
    calls = api_calls(emulator)
    # describe, create, upload, close, a few looks at the job, successful results
    assert calls <= 10, calls
    (job,) = jobs(fast)
    assert job.state == "JobComplete" and job.record_count == size and job.settled_at
    task_runs = task_run_rows(fast)
    assert {t.status for t in task_runs} == {"succeeded"}
    found = records(emulator)
    assert len(found) == size
    assert len({r["Response_ID__c"] for r in found}) == size  # no duplicates
    by_response = {r["Response_ID__c"]: r["Id"] for r in found}
    for task_run in task_runs:  # each task run has its own record's id
        assert task_run.record_id == by_response[task_run.payload["Response_ID__c"]]
        assert task_run.bulk_job_id is None  # no longer held by the job
    # The values went through the CSV intact (commas, quotes, line breaks, booleans).
    sample = records(emulator, "Response_ID__c, Comment__c, Completed__c")[0]
    assert sample["Comment__c"].startswith('comment, with "quotes"\nand a line ')
    assert sample["Completed__c"] is True
    # Run history shows the job id: the API and the run page.
    with fast.db.reader() as uow:
        run_id = uow.session.scalar(select(TaskRun.run_id).limit(1))
        attempt_jobs = set(uow.session.scalars(select(TaskRunAttempt.bulk_job_id)))
    assert attempt_jobs == {job.id}
    detail = web.get(f"/api/v1/runs/{run_id}", headers=owner.headers).json()
    (task_run,) = detail["task_runs"]
    assert task_run["attempt_log"][0]["bulk_job_id"] == job.id
    assert task_run["attempt_log"][0]["reply"]["bulk_job_id"] == job.id
    sign_in(web, owner.email)
    page = web.get(f"/runs/{run_id}")
    assert page.status_code == 200 and "Sent in Bulk API 2.0 job" in page.text
    assert job.id in page.text
    german = web.get(f"/runs/{run_id}", headers={"Accept-Language": "de"})
    assert "Gesendet im Bulk-API-2.0-Auftrag" in german.text
    # A settled job's row goes with the run history it explains.
    claims.delete_old_runs(fast.db, 365)
    assert len(jobs(fast)) == 1
    with fast.db.uow() as uow:
        uow.session.execute(update(BulkJob).values(settled_at=utcnow() - timedelta(days=400)))
        uow.commit()
    claims.delete_old_runs(fast.db, 365)
    assert jobs(fast) == []


@pytest.mark.parametrize("slices", [1, 3])
def test_records_refused_by_validation_fail_with_salesforces_words(
    fast: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    slices: int,
) -> None:
    # A job is rendered a slice at a time (its contexts never all in memory): three slices of
    # 70 make the same job as one of 210.
    size = 210  # past the threshold; a tenth of it refused
    monkeypatch.setattr(salesforce_bulk, "PREPARE_CHUNK", size // slices)
    add_workflow(fast, setup, imported_workflow("insert", sentiment=True))
    comments = ["Ecstatic" if n % 10 == 3 else "Positive" for n in range(size)]
    import_responses(fast, setup, comments)
    drain(fast)
    assert len(jobs(fast)) == 1
    task_runs = task_run_rows(fast)
    refused = [t for t in task_runs if t.status == "failed"]
    assert len(refused) == size // 10
    for task_run in refused:
        assert task_run.payload["Sentiment__c"] == "Ecstatic"
        assert task_run.error["error_code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        assert "Sentiment__c" in task_run.error["fields"]
        assert "Salesforce refused the record" in task_run.status_reason
        assert task_run.attempts == 1
    succeeded = [t for t in task_runs if t.status == "succeeded"]
    assert len(succeeded) == size - size // 10
    found = {r["Id"]: r for r in records(emulator)}
    assert len(found) == len(succeeded)  # an insert: each result matched by its row, none twice
    assert {t.record_id for t in succeeded} == set(found)
    for task_run in succeeded:
        assert found[task_run.record_id]["Response_ID__c"] == task_run.payload["Response_ID__c"]


class _Killed(BaseException):
    """The worker process vanishing at this instant (not an error anything handles)."""


def die_at(
    container: Container, monkeypatch: pytest.MonkeyPatch, step: str, *, after: bool = False
) -> None:
    """The worker runs the backlog's key and vanishes at the Bulk client's `step` (before it is
    sent, or after it when `after`); the client is itself again afterwards."""
    real = getattr(BulkClient, step)

    def die(self: BulkClient, *args: Any) -> Any:
        if after:
            real(self, *args)
        raise _Killed

    monkeypatch.setattr(BulkClient, step, die)
    (key,) = claims.overdue_keys(container.db, grace_s=0)
    with pytest.raises(_Killed):
        worker.process(container, key)
    monkeypatch.setattr(BulkClient, step, real)


@pytest.mark.parametrize("dies", ["before_close", "after_close"])
def test_a_worker_killed_mid_job_is_found_again_without_duplicates(
    fast: Container,
    backfill: Callable[..., None],
    setup: dict[str, Any],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    dies: str,
) -> None:
    size = THRESHOLD + 50
    backfill(size, "insert")  # an insert: a resend would duplicate
    die_at(fast, monkeypatch, "close", after=dies == "after_close")
    (job,) = jobs(fast)  # stored before the upload, with its task runs
    with fast.db.reader() as uow:
        held = uow.session.scalar(select(func.count()).where(TaskRun.bulk_job_id == job.id))
    assert held == size
    worker.sweep(fast)  # the job's lease is live: the sweeper leaves it and its rows alone
    assert claims.overdue_keys(fast.db, grace_s=0) == []
    assert bulk_jobs.overdue_checks(fast.db, grace_s=0) == []
    with fast.db.uow() as uow:  # the dead worker's lease runs out
        past = utcnow()
        uow.session.execute(
            update(BulkJob).values(lease_expires_at=past, check_at=past).where(BulkJob.id == job.id)
        )
        uow.commit()
    drain(fast)
    task_runs = task_run_rows(fast)
    assert {t.status for t in task_runs} == {"succeeded"}
    found = records(emulator)
    assert len(found) == size and len({r["Response_ID__c"] for r in found}) == size
    all_jobs = jobs(fast)
    if dies == "before_close":  # aborted (never processed), its rows sent in a new job
        assert [j.state for j in all_jobs] == ["Aborted", "JobComplete"]
        assert {t.attempts for t in task_runs} == {2}
    else:  # closed: waited for and mapped, never sent again
        assert [j.state for j in all_jobs] == ["JobComplete"]
        assert {t.attempts for t in task_runs} == {1}
    assert all(t.record_id for t in task_runs)


def test_a_close_without_an_answer_is_waited_for_not_resent(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    backfill(THRESHOLD + 1, "insert")
    emulator.control.post(
        "/faults",
        json={"mode": "commit_then_drop", "method": "PATCH", "path": "/jobs/ingest", "count": 1},
    ).raise_for_status()
    drain(fast)
    assert emulator.control.get("/faults").json()["faults"] == []  # the close got no answer
    assert [j.state for j in jobs(fast)] == ["JobComplete"]
    assert len(records(emulator)) == THRESHOLD + 1
    assert {t.status for t in task_run_rows(fast)} == {"succeeded"}


def lock_rows_of_the_job(emulator: EmulatorServer, count: int) -> None:
    """The next job's first `count` rows fail with an error worth retrying."""
    emulator.control.post(
        "/faults", json={"target": "bulk", "error": "UNABLE_TO_LOCK_ROW", "count": count}
    ).raise_for_status()


def test_passing_record_errors_in_a_job_are_retried(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    backfill(THRESHOLD + 1)
    lock_rows_of_the_job(emulator, 5)
    drain(fast)
    task_runs = task_run_rows(fast)
    assert {t.status for t in task_runs} == {"succeeded"}
    retried = [t for t in task_runs if t.attempts == 2]
    assert len(retried) == 5  # the five went again (by Collections: fewer than the threshold)
    assert len(records(emulator)) == THRESHOLD + 1


def test_a_jobs_failed_rows_are_brought_back_at_their_earliest_and_latest_retry(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # Bug: the job's check scheduled one message per key at the retry time of whichever row
    # came last, so rows due earlier waited for that one, or for the sweeper.
    backfill(THRESHOLD + 1)
    lock_rows_of_the_job(emulator, 5)
    (key,) = claims.overdue_keys(fast.db, grace_s=0)
    worker.process(fast, key)  # created, uploaded, closed; its check is scheduled
    (job,) = jobs(fast)
    deadline = time.monotonic() + 60
    while job.settled_at is None:
        assert time.monotonic() < deadline, "the job's results were never recorded"
        worker.process(fast, bulk_jobs.check_key(job.id))
        (job,) = jobs(fast)
    due = sorted(t.next_attempt_at for t in task_run_rows(fast) if t.status == "waiting_retry")
    assert len(due) == 5
    # With no consumer running, the messages wait in the queue with their time.
    etas = sorted(t.eta for t in fast.huey.pending() if t.args == (key,) and t.eta is not None)
    assert len(etas) == 2
    for eta, at in zip(etas, (due[0], due[-1]), strict=True):
        # Huey keeps a naive UTC time worked out from a delay: the same moment, give or take.
        assert abs(eta.replace(tzinfo=at.tzinfo) - at) < timedelta(seconds=2)


def test_a_refused_job_leaves_the_backlog_to_collections_calls(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    backfill(THRESHOLD + 1)
    emulator.control.post(
        "/faults",
        json={"error": "UNKNOWN_EXCEPTION", "method": "POST", "path": "/jobs/ingest"},
    ).raise_for_status()
    drain(fast)
    (fault,) = emulator.control.get("/faults").json()["faults"]
    assert fault["fired"] >= 1  # a job was asked for, and refused
    assert jobs(fast) == []
    assert {t.status for t in task_run_rows(fast)} == {"succeeded"}
    assert len(records(emulator)) == THRESHOLD + 1


def test_below_the_threshold_collections_calls_as_before(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # Well under the threshold, and under the gathering floor (a quarter of it): Collections
    # calls, full ones among them (calls of 10 stand in for those of 200 at this size).
    fast.settings.batch_size = 10
    size = 22  # calls of 10, 10 and 2
    backfill(size)
    drain(fast)
    assert jobs(fast) == []
    with fast.db.reader() as uow:
        sizes = set(uow.session.scalars(select(TaskRunAttempt.batch_size)))
        bulk_ids = set(uow.session.scalars(select(TaskRunAttempt.bulk_job_id)))
    assert max(sizes) == 10 and bulk_ids == {None}
    assert len(records(emulator)) == size


def test_live_responses_stay_with_collections_calls_however_many_wait(
    fast: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # Bug: a burst of live responses above the threshold went into a Bulk job, so their
    # records landed when the job was done (tens of seconds), not in a second or two. Bulk
    # API 2.0 is for backfills: imported responses.
    fast.settings.bulk_threshold = 20
    add_workflow(fast, setup, imported_workflow())
    for number in range(30):
        submit(fast, setup, number % 11)
    drain(fast)
    assert jobs(fast) == []
    assert len(records(emulator)) == 30
    import_responses(fast, setup, [f"c{n}" for n in range(30)])  # a backfill of as many
    drain(fast)
    assert len(jobs(fast)) == 1
    assert len(records(emulator)) == 60


def test_a_job_salesforce_no_longer_knows_leaves_its_rows_ambiguous(
    fast: Container,
    backfill: Callable[..., None],
    setup: dict[str, Any],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backfill(THRESHOLD + 1)
    die_at(fast, monkeypatch, "close")
    (job,) = jobs(fast)
    client = emulator.client()
    client.patch(f"/services/data/v62.0/jobs/ingest/{job.id}/", json={"state": "Aborted"})
    assert client.delete(f"/services/data/v62.0/jobs/ingest/{job.id}/").status_code == 204
    with fast.db.uow() as uow:
        uow.session.execute(update(BulkJob).values(lease_expires_at=utcnow(), check_at=utcnow()))
        uow.commit()
    fast.settings.bulk_threshold = 5000  # the rows go again by Collections calls
    drain(fast)
    assert [j.state for j in jobs(fast)] == ["Unknown"]
    task_runs = task_run_rows(fast)
    assert {t.status for t in task_runs} == {"succeeded"}  # upserts: exactly once anyway
    assert len(records(emulator)) == THRESHOLD + 1


def test_a_job_salesforce_fails_fails_its_task_runs_with_its_reason(
    fast: Container,
    backfill: Callable[..., None],
    setup: dict[str, Any],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backfill(THRESHOLD + 1)
    die_at(fast, monkeypatch, "upload")
    (job,) = jobs(fast)
    # Before the check, the Open job gets data Salesforce cannot read, and is closed.
    client = emulator.client()
    path = f"/services/data/v62.0/jobs/ingest/{job.id}"
    put = client.put(
        f"{path}/batches", content=b"Response_ID__c\r\nx\n", headers={"Content-Type": "text/csv"}
    )
    assert put.status_code == 201, put.text
    assert client.patch(f"{path}/", json={"state": "UploadComplete"}).status_code == 200
    with fast.db.uow() as uow:
        uow.session.execute(update(BulkJob).values(lease_expires_at=utcnow(), check_at=utcnow()))
        uow.commit()
    drain(fast)
    (settled,) = jobs(fast)
    assert settled.state == "Failed" and "LineEnding" in settled.error_message
    task_runs = task_run_rows(fast)
    assert {t.status for t in task_runs} == {"failed"}
    error = task_runs[0].error
    assert error["error_code"] == "BULK_JOB_FAILED" and "LineEnding" in error["message"]
    assert job.id in task_runs[0].status_reason
    assert records(emulator) == []


def test_the_bulk_client_says_clearly_what_salesforce_refused(
    fast: Container, setup: dict[str, Any]
) -> None:
    from cxloop.engine.salesforce_batch import client_for
    from cxloop.salesforce.errors import PermanentError

    with client_for(fast, setup["connection"]["id"]) as client:
        bulk = BulkClient(client)
        with pytest.raises(PermanentError, match="Unable to find object") as refused:
            bulk.create_job("No_Such_Object__c", "insert")
        assert refused.value.error_code == "INVALIDJOB"
        with pytest.raises(PermanentError, match="not a Salesforce API name"):
            bulk.create_job("Account/../x", "insert")
        with pytest.raises(PermanentError, match="no operation"):
            bulk.create_job("Account", "merge")
        with pytest.raises(PermanentError, match="external id"):
            bulk.create_job("Account", "upsert")
        with pytest.raises(PermanentError, match="not a Bulk job id"):
            bulk.info("../../limits")
        job = bulk.create_job("Survey_Response__c", "upsert", external_id_field="Response_ID__c")
        assert job.state == "Open"
        with pytest.raises(PermanentError) as early:
            bulk.successful_results(job.id)
        assert early.value.error_code == "INVALIDJOBSTATE"
        bulk.upload(job.id, b'Response_ID__c,Comment__c\nr1,#N/A\nr2,"a,b"\n')
        with pytest.raises(PermanentError) as twice:
            bulk.upload(job.id, b"Response_ID__c\nr3\n")
        assert twice.value.error_code == "INVALIDJOBSTATE"
        assert bulk.close(job.id).state in ("UploadComplete", "InProgress", "JobComplete")
        done = bulk.wait(job.id, timeout_s=30, every_s=0.05)
        assert (done.state, done.records_processed, done.records_failed) == ("JobComplete", 2, 0)
        results = sorted(bulk.successful_results(job.id), key=lambda r: r.values["Response_ID__c"])
        assert [(r.values, r.created) for r in results] == [
            ({"Response_ID__c": "r1", "Comment__c": "#N/A"}, True),
            ({"Response_ID__c": "r2", "Comment__c": "a,b"}, True),
        ]
        assert list(bulk.failed_results(job.id)) == []
        assert bulk.unprocessed_records(job.id) == []
        with pytest.raises(PermanentError) as late:
            bulk.abort(job.id)
        assert late.value.error_code == "INVALIDJOBSTATE"


@pytest.mark.parametrize("gather_s", [0.0, 30.0])
def test_a_growing_backlog_gathers_into_one_job(
    fast: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    gather_s: float,
) -> None:
    import threading

    from cxloop.engine import salesforce_bulk

    # Looks 2 s apart, growth of 20 a second counts: an import on a loaded machine
    # still grows faster than that, and stops growing when it ends.
    monkeypatch.setattr(salesforce_bulk, "_GATHER_LOOK_S", 2.0)
    monkeypatch.setattr(salesforce_bulk, "GATHER_RATE", 20)
    fast.settings.bulk_gather_s = gather_s
    add_workflow(fast, setup, imported_workflow("insert"))
    import_responses(fast, setup, [f"first{n}" for n in range(THRESHOLD + 1)])
    # The rest of the import starts once the worker has counted the backlog it would send, so
    # what of it the job holds was gathered while the worker waited. It comes in batches of 50
    # (more than a look's 40) 0.75 s apart, past the first look: all of it joins only if the
    # worker looks again while the backlog grows.
    parts, part_size = 4, 50
    everything = THRESHOLD + 1 + parts * part_size
    counted = threading.Event()
    ready_summary = claims.ready_summary

    def spy(db: Any, batch_key: str, *, cap: int = claims.READY_COUNT_CAP) -> Any:
        summary = ready_summary(db, batch_key, cap=cap)
        if cap == fast.settings.bulk_max_records + 1:  # counted as far as a job takes
            counted.set()
        return summary

    def import_more() -> None:
        counted.wait()
        for part in range(parts):
            time.sleep(0.75 if part and gather_s else 0)
            import_responses(fast, setup, [f"more{part}-{n}" for n in range(part_size)])

    monkeypatch.setattr(claims, "ready_summary", spy)
    more = threading.Thread(target=import_more)
    (key,) = claims.overdue_keys(fast.db, grace_s=0)
    if gather_s:  # the import goes on while the worker looks
        more.start()
        try:
            worker.process(fast, key)
        finally:
            counted.set()  # (should the worker never count, the import still ends)
            more.join()
    else:  # what is there goes at once, whatever comes after
        worker.process(fast, key)
        counted.set()
        more.start()
        more.join()
    first = jobs(fast)[0]
    if gather_s:
        assert first.record_count == everything  # the import's later batches joined the job
    else:
        assert first.record_count == THRESHOLD + 1
    drain(fast)
    assert len(records(emulator)) == everything
    assert {t.status for t in task_run_rows(fast)} == {"succeeded"}


def test_a_long_upload_keeps_the_jobs_lease(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    import threading

    fast.settings.lease_s = 5
    backfill(THRESHOLD + 1, "insert")
    emulator.control.post(
        "/faults",
        json={"mode": "latency", "latency_ms": 9000, "method": "PUT", "path": "/jobs/ingest"},
    ).raise_for_status()
    (key,) = claims.overdue_keys(fast.db, grace_s=0)
    sending = threading.Thread(target=worker.process, args=(fast, key))
    sending.start()
    try:
        time.sleep(7)  # past the 5 s lease, the upload still under way
        (job,) = jobs(fast)
        assert job.state == "Open" and job.lease_expires_at > utcnow()
        assert bulk_jobs.overdue_checks(fast.db, grace_s=0) == []  # the sweeper leaves it
    finally:
        sending.join()
    emulator.control.delete("/faults")
    drain(fast)
    assert [j.state for j in jobs(fast)] == ["JobComplete"]
    assert len(records(emulator)) == THRESHOLD + 1


def test_an_upload_whose_job_a_check_took_over_stores_nothing(container: Container) -> None:
    # Bug: store_upload called a rollback() the unit of work does not have: a worker whose
    # job had been taken over (its lease ran out while it rendered) died with AttributeError.
    job_id = "750TAKEN0000001AAA"
    bulk_jobs.open_job(container.db, job_id=job_id, batch_key="sf|UR_x|Acme|Contact|insert|",
                       connection_id="CN_x", sobject="Contact", operation="insert",
                       external_id_field=None, limit=10, worker="sender", lease_s=5)  # fmt: skip
    with container.db.uow() as uow:  # the sender's lease runs out; a check takes the job
        uow.session.execute(update(BulkJob).values(lease_expires_at=utcnow()))
        uow.commit()
    assert bulk_jobs.claim_job(container.db, job_id, worker="check", lease_s=5) is not None
    stored = bulk_jobs.store_upload(
        container.db, job_id, worker="sender", lease_s=5, columns=["Name"], rows={}
    )
    assert stored is False
    job = bulk_jobs.job_of(container.db, job_id)
    assert job is not None and job.columns == [] and job.claimed_by == "check"


def test_a_job_whose_claim_took_longer_than_a_lease_is_still_its_workers(
    fast: Container, backfill: Callable[..., None]
) -> None:
    # Bug: open_job counted the job's lease from the start of its transaction. Claiming
    # 100,000 rows on a busy PostgreSQL took longer than the 10 s lease, so a check took every
    # job over (and aborted it) while its worker was still rendering it: nothing drained.
    from sqlalchemy import event

    fast.settings.lease_s = 5
    backfill(THRESHOLD + 1, "insert")

    def slow_claim(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        claiming = statement.startswith("UPDATE task_runs") and "RETURNING" in statement
        if claiming:
            time.sleep(6)  # a busy database: the claim outlasts the lease

    batch_key = task_run_rows(fast)[0].batch_key
    event.listen(fast.db.engine, "before_cursor_execute", slow_claim)
    try:
        bulk_jobs.open_job(fast.db, job_id="750SLOW00000001AAA", batch_key=batch_key,
                           connection_id="CN_x", sobject="Survey_Response__c",
                           operation="insert", external_id_field=None, limit=5000,
                           worker="sender", lease_s=5)  # fmt: skip
    finally:
        event.remove(fast.db.engine, "before_cursor_execute", slow_claim)
    job = bulk_jobs.job_of(fast.db, "750SLOW00000001AAA")
    assert job is not None and job.record_count == THRESHOLD + 1
    assert job.lease_expires_at > utcnow() + timedelta(seconds=3)
    assert bulk_jobs.overdue_checks(fast.db, grace_s=0) == []
    assert bulk_jobs.claim_job(fast.db, job.id, worker="check", lease_s=5) is None
    # Bug: store_upload locked the job's row first, then wrote every payload (minutes for
    # 100,000): the keeper could not renew, and the lease counted from the start was over.
    rows = {t.id: {"Response_ID__c": t.id} for t in task_run_rows(fast)}

    def slow_payloads(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE task_runs SET payload"):
            time.sleep(6)

    event.listen(fast.db.engine, "before_cursor_execute", slow_payloads)
    try:
        stored = bulk_jobs.store_upload(fast.db, job.id, worker="sender", lease_s=5,
                                        columns=["Response_ID__c"], rows=rows)  # fmt: skip
    finally:
        event.remove(fast.db.engine, "before_cursor_execute", slow_payloads)
    assert stored is True
    job = bulk_jobs.job_of(fast.db, job.id)
    assert job is not None and job.lease_expires_at > utcnow() + timedelta(seconds=3)


def test_a_long_check_keeps_the_jobs_lease(
    fast: Container, backfill: Callable[..., None], setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # Bug: reading and recording a 100,000-record job's results outlasted the check's lease
    # under load; the sweeper's checks took the job over, three at once in one worker, each
    # holding every result in memory (885 MB).
    import threading

    fast.settings.lease_s = 4
    backfill(THRESHOLD + 1, "insert")
    (key,) = claims.overdue_keys(fast.db, grace_s=0)
    worker.process(fast, key)  # created, uploaded, closed; its check is scheduled
    (job,) = jobs(fast)
    from cxloop.engine.salesforce_batch import client_for

    with client_for(fast, setup["connection"]["id"]) as client:
        assert BulkClient(client).wait(job.id, timeout_s=60, every_s=0.05).is_finished
    emulator.control.post(
        "/faults",
        json={"mode": "latency", "latency_ms": 12000, "method": "GET", "path": "successfulResults"},
    ).raise_for_status()
    checking = threading.Thread(target=worker.process, args=(fast, bulk_jobs.check_key(job.id)))
    checking.start()
    try:
        time.sleep(8)  # twice the lease, the results still on their way
        (job,) = jobs(fast)
        assert job.settled_at is None and job.lease_expires_at > utcnow()
        assert bulk_jobs.overdue_checks(fast.db, grace_s=0) == []  # the sweeper leaves it
        assert bulk_jobs.claim_job(fast.db, job.id, worker="another", lease_s=4) is None
    finally:
        checking.join()
    emulator.control.delete("/faults")
    (job,) = jobs(fast)
    assert job.state == "JobComplete" and job.settled_at is not None
    assert {t.status for t in task_run_rows(fast)} == {"succeeded"}


@pytest.mark.parametrize("action", ["update", "delete"])
def test_updates_and_deletes_by_a_key_field_go_through_a_job(
    fast: Container, setup: dict[str, Any], emulator: EmulatorServer, action: str
) -> None:
    from cxloop.db.models import Response
    from cxloop.engine.salesforce_batch import client_for

    document = imported_workflow()
    task = document["tasks"][0]
    task.update(action=action, key_value="${e://Field/ResponseID}")
    task["mappings"] = (
        [{"field": "Comment__c", "value": "changed: ${q://QID2/ChoiceTextEntryValue}"}]
        if action == "update"
        else []
    )
    add_workflow(fast, setup, document)
    size = 3 * THRESHOLD + 1  # past the threshold, and two key look-ups (300 values each)
    import_responses(fast, setup, [f"c{n}" for n in range(size)])
    with fast.db.reader() as uow:
        response_ids = list(uow.session.scalars(select(Response.id)))
    # The records the workflow changes exist already (made here with a Bulk job of our own).
    with client_for(fast, setup["connection"]["id"]) as client:
        bulk = BulkClient(client)
        seed = bulk.create_job("Survey_Response__c", "insert")
        rows = "".join(f"{r},old\n" for r in response_ids)
        bulk.upload(seed.id, f"Response_ID__c,Comment__c\n{rows}".encode())
        bulk.close(seed.id)
        assert bulk.wait(seed.id, timeout_s=60, every_s=0.05).records_processed == size
    emulator.control.delete("/api_usage")
    drain(fast)
    # describe, 2 key look-ups, create, upload, close, looks, results
    assert api_calls(emulator) <= 11
    (job,) = jobs(fast)
    assert job.operation == action and job.columns[0] == "Id"
    task_runs = task_run_rows(fast)
    assert {t.status for t in task_runs} == {"succeeded"}
    found = records(emulator, "Id, Response_ID__c, Comment__c")
    if action == "delete":
        assert found == []
    else:
        assert len(found) == size and all(r["Comment__c"].startswith("changed: c") for r in found)
        by_id = {r["Id"]: r for r in found}
        for task_run in task_runs:  # each result went to the task run of its record
            assert task_run.record_id == task_run.payload["Id"]
            assert by_id[task_run.record_id]["Comment__c"] == task_run.payload["Comment__c"]


@pytest.mark.parametrize("kind", ["live", "backfill"])
def test_the_bulk_check_counts_no_further_than_just_past_the_threshold(
    fast: Container,
    setup: dict[str, Any],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    # Bug: every round of every driver counted the key's ready rows up to a whole job's size
    # (`bulk_max_records` + 1; ~80 ms at a million rows on PostgreSQL) to compare them with
    # the threshold. A probe to the threshold + 1 decides; a backlog under it is exact there.
    fast.settings.bulk_threshold = 40
    fast.settings.bulk_max_records = 5000
    fast.settings.bulk_gather_s = 0  # (a backlog that waits to grow counts as far as a job)
    add_workflow(fast, setup, imported_workflow())
    if kind == "live":
        for number in range(30):
            submit(fast, setup, number % 11)
    else:  # between the gathering floor (10) and the threshold: no job, Collections calls
        import_responses(fast, setup, [f"c{n}" for n in range(30)])
    caps: list[int] = []
    counted = claims.ready_summary

    def spy(db: Any, batch_key: str, *, cap: int = claims.READY_COUNT_CAP) -> Any:
        caps.append(cap)
        return counted(db, batch_key, cap=cap)

    monkeypatch.setattr(claims, "ready_summary", spy)
    drain(fast)
    assert jobs(fast) == []
    assert len(records(emulator)) == 30
    assert 41 in caps and 5001 not in caps  # the probe, and never a count to a job's size


def test_a_backlog_past_the_probe_is_counted_as_far_as_a_job_takes(
    fast: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    # The probe stops at the threshold + 1; the job then takes every ready row (up to
    # `bulk_max_records`), not just as many as the probe counted.
    fast.settings.bulk_threshold = 40
    fast.settings.bulk_gather_s = 0
    add_workflow(fast, setup, imported_workflow())
    import_responses(fast, setup, [f"c{n}" for n in range(120)])
    drain(fast)
    assert [job.record_count for job in jobs(fast)] == [120]
    assert len(records(emulator)) == 120
