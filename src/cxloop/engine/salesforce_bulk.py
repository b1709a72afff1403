"""Large backlogs of a Salesforce batch key go through one Bulk API 2.0 ingest job.

When a batch key holds more than `bulk_threshold` ready task runs (a backfill: imported
responses a workflow includes), a worker sends up to `bulk_max_records` of them in one ingest
job instead of one Collections call per 200:

1. create the job at Salesforce (Open, no data);
2. in one transaction, write the job's row and claim the task runs into it
   (`ledger.bulk_jobs.open_job`): from here on the job id is stored against them;
3. render them exactly as a Collections batch does (`salesforce_batch.screen` and `prepare`:
   record plans, lookups, dedupe, keys to Ids), write the CSV and keep each row's cells as
   its task run's payload (`store_upload`);
4. upload the CSV, close the job (UploadComplete), and leave: a check is scheduled on the
   queue (`bulk|<job id>`), so no worker thread waits for Salesforce;
5. each check (`check`) asks the job's state; once it is finished it reads the results and
   gives every task run its outcome under the Collections error policy (data errors fail,
   passing ones retry).

Exactly once. A job that was never closed is never processed by Salesforce, so a check that
finds it Open (its worker died before closing) aborts it and sends its task runs again; a job
that was closed (or may have been: the close got no answer) is waited for and its results
mapped, never sent again. A job Salesforce no longer knows leaves its rows ambiguous (an
insert with a dedupe field then looks before it sends).

Results do not come back in upload order: a result row is matched to the task run whose
uploaded row had exactly the same cells (the job's columns, in order). For an upsert that
includes the external id, for an update or a delete the record Id. Two task runs with
identical rows ask for the same write, so which of them gets which result does not matter;
each result goes to one task run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from cxloop.db.base import in_chunks, utcnow
from cxloop.engine.follow_up import follow_up
from cxloop.engine.salesforce_batch import (
    BatchItem,
    client_for,
    failed,
    note_usage,
    outcome_of_result,
    prepare,
    record_body,
    screen,
    whole_batch_failed,
)
from cxloop.ledger import SalesforceBatchKey, bulk_jobs, claims
from cxloop.ledger.claims import BatchTarget, ClaimedTaskRun, Outcome
from cxloop.salesforce.bulk import (
    ABORTED,
    FAILED,
    JOB_COMPLETE,
    MAX_UPLOAD_BYTES,
    OPEN,
    BulkClient,
    BulkJobInfo,
    BulkResult,
    CsvValueError,
    csv_row,
    write_csv,
)
from cxloop.salesforce.client import RecordResult, SalesforceClient
from cxloop.salesforce.errors import SalesforceError
from cxloop.services.salesforce_clients import ConnectionUnusable

if TYPE_CHECKING:
    from cxloop.db.uow import Database
    from cxloop.engine.parts import EngineParts

log = structlog.get_logger(__name__)

RECORD_CHUNK = 5000  # outcomes recorded per transaction (bind parameters stay bounded)


def is_check_key(batch_key: str) -> bool:
    """Whether a dispatched key is a Bulk job's check."""
    return batch_key.startswith(bulk_jobs.CHECK_KEY_PREFIX)


def send_if_large(container: EngineParts, batch_key: str, target: BatchTarget, worker: str) -> bool:
    """Send the key's ready task runs through one Bulk API 2.0 ingest job when more than
    `bulk_threshold` are ready and the oldest of them is a backfill (from an imported
    response; `claims.oldest_ready_is_backfill`). True when this message is done with the
    key: a job went (the rows it left are dispatched again), or another thread of this
    process is gathering or sending one. False when the key stays with Collections calls
    (too few ready, live traffic, or Salesforce refused the job).

    A backlog that grows fast (an import a workflow includes, `GATHER_FLOOR` of the threshold
    ready and at least `GATHER_RATE` more a second) waits up to `bulk_gather_s` while it
    grows, so that the import fills a few large jobs, not many small ones or Collections
    calls racing it. A steady or shrinking backlog goes at once."""
    settings = container.settings
    if settings.bulk_threshold <= 0 or target.connection_id is None:
        return False
    db = container.db
    # Asked every round of every driver: a probe to just past the threshold first (a few rows
    # under live traffic), not a count to a job's size (~80 ms at a million rows on PostgreSQL).
    count = claims.ready_summary(db, batch_key, cap=settings.bulk_threshold + 1).count
    if count < settings.bulk_threshold * GATHER_FLOOR:
        return False
    if not claims.oldest_ready_is_backfill(db, batch_key):
        return False  # a burst of live responses: Collections calls, several in flight
    pacing = container.engine_state.pacing
    with pacing.lock:
        if batch_key in pacing.bulk:
            return True
        pacing.bulk.add(batch_key)
    try:
        if count > settings.bulk_threshold:  # the probe stopped there: count as far as a job
            count = claims.ready_summary(db, batch_key, cap=settings.bulk_max_records + 1).count
        count = _gather(container, batch_key, count)
        if count <= settings.bulk_threshold:
            return False
        try:
            client = client_for(container, target.connection_id)
        except ConnectionUnusable:
            return False  # the Collections path pauses the connection's work, as always
        with client, container.engine_state.bulk_job_in_memory:
            try:
                sent = _send_job(container, client, batch_key, target, worker)
            finally:
                note_usage(container, client, target.org_id or "unknown", target.connection_id)
    finally:
        with pacing.lock:
            pacing.bulk.discard(batch_key)
    if sent:
        container.ledger.dispatch([batch_key])  # whatever the job left: the next round
    return sent


GATHER_FLOOR = 0.25  # of bulk_threshold: a backlog this large may wait to grow into a job
GATHER_RATE = 200  # ready task runs a second: growing at least this fast, it waits
_GATHER_LOOK_S = 0.5


def _gather(container: EngineParts, batch_key: str, count: int) -> int:
    """Wait while the key's backlog grows fast, up to `bulk_gather_s` (or a full job);
    returns the count of ready task runs at the end."""
    settings = container.settings
    deadline = time.monotonic() + settings.bulk_gather_s
    while count < settings.bulk_max_records and time.monotonic() < deadline:
        time.sleep(_GATHER_LOOK_S)
        cap = settings.bulk_max_records + 1  # counted as far as a job may take
        before, count = count, claims.ready_summary(container.db, batch_key, cap=cap).count
        if count - before < GATHER_RATE * _GATHER_LOOK_S:
            break  # the arrivals slowed down: what is there goes now
    return count


def _send_job(
    container: EngineParts,
    client: SalesforceClient,
    batch_key: str,
    target: BatchTarget,
    worker: str,
) -> bool:
    db, settings = container.db, container.settings
    key = SalesforceBatchKey.parse(batch_key)
    connection_id = target.connection_id
    assert connection_id is not None
    bulk = BulkClient(client)
    external_id_field = key.key_field if key.action == "upsert" else None
    try:
        job = bulk.create_job(key.sobject, key.action, external_id_field=external_id_field)
    except SalesforceError as exc:
        # Nothing is claimed yet: this round goes through Collections calls, whose error
        # policy deals with a limit, a dead token or an org without Bulk API access.
        log.warning("bulk.job_refused", batch_key=batch_key, error=str(exc))
        return False
    claimed = bulk_jobs.open_job(
        db,
        job_id=job.id,
        batch_key=batch_key,
        connection_id=connection_id,
        sobject=key.sobject,
        operation=key.action,
        external_id_field=external_id_field,
        limit=settings.bulk_max_records,
        worker=worker,
        lease_s=settings.lease_s,
    )
    log.info("bulk.job_opened", job_id=job.id, batch_key=batch_key, size=len(claimed))
    # Rendering and uploading 100,000 records can outlast a lease: it is kept alive meanwhile
    # (a dead worker's lapses, and a check then aborts the job it never closed).
    with _keeping_lease(db, job.id, worker, settings.lease_s):
        _prepare_and_upload(container, client, bulk, job, claimed, target, worker)
    return True


def _prepare_and_upload(
    container: EngineParts,
    client: SalesforceClient,
    bulk: BulkClient,
    job: BulkJobInfo,
    claimed: list[ClaimedTaskRun],
    target: BatchTarget,
    worker: str,
) -> None:
    db, settings = container.db, container.settings
    connection_id = target.connection_id
    assert connection_id is not None
    started_at = utcnow()
    holder = bulk_jobs.holder(job.id)
    items = [BatchItem(t) for t in claimed]
    org_id = target.org_id or "unknown"
    columns: list[str] = []
    try:
        for chunk in in_chunks(items, PREPARE_CHUNK):
            _render_rows(container, client, chunk, target, columns)
    except SalesforceError as exc:  # a lookup query failed: the error policy, call-wide
        _abort_quietly(bulk, job.id)
        outcomes = whole_batch_failed(container, items, exc, org_id, connection_id)
        _record(container, outcomes, started_at, holder)
        bulk_jobs.settle_job(db, job.id, ABORTED, worker=worker, error_message=str(exc))
        return
    live = [i for i in items if i.outcome is None]
    data, live = _fit(columns, live, container)
    # Outcomes known before the upload (not sent, not to be sent) leave the job now.
    _record(container, [i.outcome for i in items if i.outcome is not None], started_at, holder)
    rows = {i.task_run.id: i.payload or {} for i in live}
    if not live:
        _abort_quietly(bulk, job.id)
        bulk_jobs.settle_job(db, job.id, ABORTED, worker=worker, error_message="nothing to send")
        return
    if not bulk_jobs.store_upload(
        db, job.id, worker=worker, lease_s=settings.lease_s, columns=columns, rows=rows
    ):
        return  # a check took the job over (our lease ran out): it aborts and resends
    try:
        bulk.upload(job.id, data)
    except SalesforceError as exc:
        # An Open job's data is never processed: nothing of it reached the org's records.
        _abort_quietly(bulk, job.id)
        outcomes = whole_batch_failed(container, live, exc, org_id, connection_id)
        for outcome in outcomes:
            outcome.ambiguous = False
        _record(container, outcomes, started_at, holder)
        bulk_jobs.settle_job(db, job.id, ABORTED, worker=worker, error_message=str(exc))
        return
    try:
        info = bulk.close(job.id)
        state = info.state
    except SalesforceError as exc:
        # The close may have reached Salesforce: the check asks the job's state and either
        # waits for its results or, still Open, aborts it and sends again.
        log.warning("bulk.close_unanswered", job_id=job.id, error=str(exc))
        state = OPEN
    bulk_jobs.note_state(db, job.id, state, worker=worker, check_in_s=settings.bulk_poll_s)
    _schedule_check(container, job.id, settings.bulk_poll_s)


PREPARE_CHUNK = 5000  # task runs rendered at a time: a job's contexts are never all in memory


def _render_rows(
    container: EngineParts,
    client: SalesforceClient,
    items: list[BatchItem],
    target: BatchTarget,
    columns: list[str],
) -> None:
    """Screen and render `items` (one slice of a job) into their CSV rows, kept as their
    payloads; `columns`, the job's header, gains the columns they add, first seen first.
    Each item then drops its context and rendered record: a job of 100,000 keeps only its
    rows' cells (the contexts of a whole job took most of a gigabyte)."""
    screen(container, items, target)
    task = prepare(container, client, [i for i in items if i.outcome is None])
    if task is not None:
        if not columns:
            columns.extend(_leading_columns(task.action, task.key_field or ""))
        seen = set(columns)
        for item in items:
            if item.outcome is not None:
                continue
            try:
                cells = csv_row(record_body(task, item))
            except CsvValueError as exc:
                item.outcome = failed(item, "CXLOOP_BAD_VALUE", str(exc))
                continue
            item.payload = cells
            for column in cells:
                if column not in seen:
                    seen.add(column)
                    columns.append(column)
    for item in items:
        item.context = item.record = None


@contextmanager
def _keeping_lease(db: Database, job_id: str, worker: str, lease_s: int) -> Iterator[None]:
    """Renew the worker's lease on the job every third of a lease while the block runs."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(max(lease_s / 3, 1.0)):
            if not bulk_jobs.renew_lease(db, job_id, worker=worker, lease_s=lease_s):
                return

    keeper = threading.Thread(target=renew, name=f"bulk-lease-{job_id}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


def _leading_columns(action: str, key_field: str) -> list[str]:
    # The column Salesforce matches records by comes first, as people read such files.
    if action in ("update", "delete"):
        return ["Id"]
    if action == "upsert" and key_field:
        return [key_field]
    return []


def _fit(
    columns: list[str], live: list[BatchItem], container: EngineParts
) -> tuple[bytes, list[BatchItem]]:
    """The CSV of the live items, cut to Salesforce's upload limit: the items that do not fit
    go back to ready (a waiting_retry due now, not ambiguous: they were never sent)."""
    data = write_csv(columns, (i.payload or {} for i in live))
    if len(data) <= MAX_UPLOAD_BYTES:
        return data, live
    keep = max(1, int(len(live) * MAX_UPLOAD_BYTES / len(data) * 0.95))
    while True:
        data = write_csv(columns, (i.payload or {} for i in live[:keep]))
        if len(data) <= MAX_UPLOAD_BYTES or keep == 1:
            break
        keep = int(keep * 0.9) or 1
    for item in live[keep:]:
        item.outcome = Outcome.retry_now(
            item.task_run.id,
            "did not fit in this Bulk API 2.0 job (100 MB per upload); goes with the next",
        )
    return data, live[:keep]


# --- checks


def check(container: EngineParts, job_id: str, worker: str) -> None:
    """Check a Bulk job (dispatched as `bulk|<job id>`, scheduled after each look, re-sent by
    the sweeper when overdue): wait for it, or map its results; abort it if it was never
    closed. A check that finds someone else on the job leaves it to them."""
    db, settings = container.db, container.settings
    job = bulk_jobs.claim_job(db, job_id, worker=worker, lease_s=settings.lease_s)
    if job is None:
        return
    key = SalesforceBatchKey.parse(job.batch_key)
    target = claims.batch_target(db, key.owner_id, key.connection)
    wait = min(settings.bulk_poll_s * 2**job.checks, settings.bulk_poll_max_s)
    if target.held_until is not None:  # the org is held back: ask it nothing now
        held_for = (target.held_until - utcnow()).total_seconds()
        _later(container, job, worker, max(held_for, 0.0))
        return
    try:
        client = client_for(container, job.connection_id)
    except ConnectionUnusable as exc:
        # The job runs at Salesforce whatever our token does: look again when it may work.
        log.warning("bulk.check_without_connection", job_id=job_id, reason=exc.message)
        _later(container, job, worker, settings.bulk_poll_max_s)
        return
    org_id = target.org_id or "unknown"
    # Reading and recording 100,000 results can outlast a lease: a second check taking the
    # job over meanwhile would read them all again beside this one.
    with client, _keeping_lease(db, job_id, worker, settings.lease_s):
        try:
            _check(container, BulkClient(client), job, worker, wait)
        except SalesforceError as exc:
            if exc.status == 404:  # Salesforce does not know the job (deleted): unknown fate
                _settle_unknown(container, job, worker, str(exc))
            else:
                log.warning("bulk.check_failed", job_id=job_id, error=str(exc))
                _later(container, job, worker, wait)
        finally:
            note_usage(container, client, org_id, job.connection_id)


def _later(container: EngineParts, job: bulk_jobs.JobRow, worker: str, wait: float) -> None:
    bulk_jobs.note_state(container.db, job.id, job.state, worker=worker, check_in_s=wait)
    _schedule_check(container, job.id, wait)


def _check(
    container: EngineParts, bulk: BulkClient, job: bulk_jobs.JobRow, worker: str, wait: float
) -> None:
    db = container.db
    info = bulk.info(job.id)
    if info.state == OPEN:
        # Never closed (its worker stopped before): Salesforce has processed nothing of it.
        # Aborted, its task runs go again; whatever it did process in between shows in its
        # results below, so nothing is sent twice.
        info = bulk.abort(job.id)
    if not info.is_finished:
        bulk_jobs.note_state(db, job.id, info.state, worker=worker, check_in_s=wait)
        _schedule_check(container, job.id, wait)
        return
    with container.engine_state.bulk_job_in_memory:
        _settle(container, bulk, job, info, worker)


def _settle(
    container: EngineParts, bulk: BulkClient, job: bulk_jobs.JobRow, info: BulkJobInfo, worker: str
) -> None:
    """Give each task run of the finished job its outcome, from its result row (or from the
    job's state, without one), and settle the job."""
    db = container.db
    held = bulk_jobs.held_task_runs(db, job.id)
    matched, unmatched = correlate(
        job.columns, ((h.task_run.id, h.payload) for h in held), _results_of(bulk, info)
    )
    if unmatched:
        log.warning("bulk.results_unmatched", job_id=job.id, rows=unmatched)
    for chunk in in_chunks(held, RECORD_CHUNK):
        outcomes = []
        for task_run, payload in chunk:
            item = BatchItem(task_run, payload=payload)
            result = matched.pop(task_run.id, None)
            if result is not None:
                outcome = outcome_of_result(container, item, _record_result(result))
                outcome.reply = {**(outcome.reply or {}), "bulk_job_id": job.id}
            else:
                outcome = _without_result(item, info)
            outcome.bulk_job_id = job.id
            outcomes.append(outcome)
        _record(container, outcomes, job.created_at, bulk_jobs.holder(job.id))
    bulk_jobs.settle_job(db, job.id, info.state, worker=worker, error_message=info.error_message)
    log.info(
        "bulk.job_settled",
        job_id=job.id,
        state=info.state,
        task_runs=len(held),
        failed=info.records_failed,
    )


def _results_of(bulk: BulkClient, info: BulkJobInfo) -> Iterator[BulkResult]:
    """The finished job's result rows, successful then failed, each file asked for when the
    one before is read: one file's text in memory at a time, its rows as they are matched."""
    if info.state == ABORTED and not info.records_processed:
        return
    if info.records_processed > info.records_failed or info.state != JOB_COMPLETE:
        yield from bulk.successful_results(info.id)
    if info.records_failed or info.state != JOB_COMPLETE:
        yield from bulk.failed_results(info.id)


def _without_result(item: BatchItem, info: BulkJobInfo) -> Outcome:
    """A task run of a finished job that has no result row."""
    task_run = item.task_run
    if info.state == FAILED:
        message = (
            f"Salesforce's Bulk API 2.0 job {info.id} failed before this record: "
            f"{info.error_message or 'no reason given'}"
        )
        return failed(item, "BULK_JOB_FAILED", message)
    if info.state == ABORTED:
        return Outcome.retry_now(
            task_run.id,
            f"its Bulk API 2.0 job {info.id} was aborted before Salesforce processed it; "
            "sent again",
            payload=item.payload,
        )
    # JobComplete without a word about this record: it may or may not be written.
    return Outcome.retry_now(
        task_run.id,
        f"Bulk API 2.0 job {info.id} finished without a result for this record; "
        "tried again (looked up first where the task has a dedupe field)",
        payload=item.payload,
        ambiguous=True,
    )


def _settle_unknown(container: EngineParts, job: bulk_jobs.JobRow, worker: str, error: str) -> None:
    outcomes = [
        Outcome.retry_now(
            h.task_run.id,
            f"Salesforce no longer knows Bulk API 2.0 job {job.id}; tried again "
            "(looked up first where the task has a dedupe field)",
            payload=h.payload,
            ambiguous=True,
            bulk_job_id=job.id,
        )
        for h in bulk_jobs.held_task_runs(container.db, job.id)
    ]
    _record(container, outcomes, job.created_at, bulk_jobs.holder(job.id))
    bulk_jobs.settle_job(container.db, job.id, "Unknown", worker=worker, error_message=error)


def _record_result(result: BulkResult) -> RecordResult:
    if result.success:
        return RecordResult(success=True, id=result.id, created=result.created)
    return RecordResult(success=False, id=result.id, errors=[result.error] if result.error else [])


def correlate(
    columns: Sequence[str],
    sent: Iterable[tuple[str, dict[str, str] | None]],
    results: Iterable[BulkResult],
) -> tuple[dict[str, BulkResult], int]:
    """Each task run's result, matched by the cells of its uploaded row (`columns`, in
    order; a missing cell is empty), whatever order the results come in. Identical rows are
    interchangeable; each result goes to one task run. Returns the matches and how many
    result rows matched no task run."""
    waiting: dict[tuple[str, ...], deque[str]] = {}
    for task_run_id, row in sent:
        if row is None:
            continue  # never uploaded
        waiting.setdefault(tuple(row.get(c, "") for c in columns), deque()).append(task_run_id)
    matched: dict[str, BulkResult] = {}
    unmatched = 0
    for result in results:
        ids = waiting.get(tuple(result.values.get(c, "") for c in columns))
        if ids:
            matched[ids.popleft()] = result
        else:
            unmatched += 1
    return matched, unmatched


# --- recording and scheduling


def _record(
    container: EngineParts, outcomes: Sequence[Outcome], started_at: datetime, worker: str
) -> None:
    """Record outcomes in transactions of `RECORD_CHUNK`; a retry is scheduled, ready
    dependents dispatched. Only rows the job still holds are written, so a check that
    records again after a crash changes nothing twice."""
    for chunk in in_chunks(outcomes, RECORD_CHUNK):
        settled = claims.record_outcomes(container.db, chunk, started_at=started_at, worker=worker)
        follow_up(container, settled)


def _schedule_check(container: EngineParts, job_id: str, delay_s: float) -> None:
    """Check the job again in `delay_s` (the sweeper re-sends it if this message is lost)."""
    container.tasks.dispatch.schedule(args=(bulk_jobs.check_key(job_id),), delay=delay_s)


def _abort_quietly(bulk: BulkClient, job_id: str) -> None:
    # Best effort: an Open job nobody closes is never processed, aborted or not.
    try:
        bulk.abort(job_id)
    except SalesforceError as exc:
        log.info("bulk.abort_failed", job_id=job_id, error=str(exc))
