"""Execute a batch of claimed Salesforce task runs that share (connection, object, action, key).

One sObject Collections call carries up to 200 records with allOrNone=false; each record's
result goes back to its own task run. Lookups and dedupe checks are one SOQL query per batch.
Errors follow the policy in ARCHITECTURE.md: transient → retry with backoff until the horizon;
request limit → hold the org back; a dead refresh token → pause; Salesforce says the data is
wrong → fail now, keeping its code, message and fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxloop import metrics
from cxloop.db.base import in_chunks
from cxloop.domain.piped_text import PipedTextContext
from cxloop.domain.workflow import SalesforceTask, task_references
from cxloop.engine.render import (
    RenderedRecord,
    RunGone,
    batch_runs,
    record_plan,
    revision_document,
    task_outputs_of,
)
from cxloop.ledger import SalesforceBatchKey, batch_owners, claims
from cxloop.ledger.claims import BatchTarget, ClaimedTaskRun, Outcome
from cxloop.salesforce.client import RecordResult, SalesforceClient
from cxloop.salesforce.errors import SalesforceError, SalesforceUnreachable
from cxloop.services import salesforce_clients
from cxloop.services.salesforce_clients import ConnectionUnusable

if TYPE_CHECKING:
    from cxloop.engine.parts import EngineParts

# Salesforce's words for too many concurrent long-running requests (REQUEST_LIMIT_EXCEEDED too)
_CONCURRENT_LIMIT = "ConcurrentPerOrgLongTxn"
_CONCURRENT_BACKOFF_S = 2.0


@dataclass(slots=True)
class BatchItem:
    """A claimed task run on its way: its task, context, rendered record and outcome."""

    task_run: ClaimedTaskRun
    task: SalesforceTask | None = None
    context: PipedTextContext | None = None
    plan_key: tuple[Any, ...] = ()  # the workflow revision and task its record plan is kept by
    record: RenderedRecord | None = None
    payload: dict[str, Any] | None = None  # what this attempt sent
    outcome: Outcome | None = None


def execute(
    container: EngineParts, task_runs: Sequence[ClaimedTaskRun], target: BatchTarget
) -> list[Outcome]:
    """Do the batch (claimed for `target`, see `claims.batch_target`); returns one outcome per
    task run."""
    items = [BatchItem(t) for t in task_runs]
    screen(container, items, target)
    if all(i.outcome is not None for i in items):
        return [i.outcome for i in items]  # type: ignore[misc]
    connection_id = target.connection_id
    assert connection_id is not None
    try:
        client = client_for(container, connection_id)
    except ConnectionUnusable as exc:
        claims.pause_connection_work(container.db, connection_id, exc.message)
        return [i.outcome or _paused(i, exc.message) for i in items]
    org_id = target.org_id or "unknown"
    call_error: SalesforceError | None = None
    with client:
        try:
            return _execute(container, client, items)
        except SalesforceError as exc:
            call_error = exc
            return whole_batch_failed(container, items, exc, org_id, connection_id)
        finally:
            note_usage(container, client, org_id, connection_id, call_error)


def screen(container: EngineParts, items: Sequence[BatchItem], target: BatchTarget) -> None:
    """Give an outcome (paused) to the items that must not go out with `target`'s connection:
    none of the owner's connections has the workflow's name, the survey belongs to someone
    else now, or the task is paused until its owner picks a connection."""
    if not items:
        return
    key = SalesforceBatchKey.parse(items[0].task_run.batch_key)
    if target.connection_id is None:
        reason = (
            f"The workflow's connection {key.connection!r} is not one of the survey owner's "
            "connections; pick one of theirs for this task and save the workflow: its paused "
            "runs then go out with it."
        )
        for item in items:
            item.outcome = item.outcome or _paused(item, reason, release=True)
        return
    # Defence in depth: whatever the documents say, a connection only ever works for surveys
    # its user owns now, and never for a task paused until its owner picks a connection.
    foreign = claims.foreign_task_runs(container.db, [i.task_run for i in items], key.owner_id)
    for item in items:
        if item.task_run.id in foreign and item.outcome is None:
            item.outcome = _paused(item, foreign[item.task_run.id], release=True)


def note_usage(
    container: EngineParts,
    client: SalesforceClient,
    org_id: str,
    connection_id: str | None = None,
    call_error: SalesforceError | None = None,
) -> None:
    """Count a client's calls, note the connection's health (written with the outcomes), and
    slow down near the org's daily allocation."""
    if connection_id is not None and client.calls:
        container.engine_state.connection_health.note(
            connection_id, str(call_error) if call_error is not None else None
        )
    metrics.SALESFORCE_CALLS.labels(org_id).inc(client.calls)
    if client.last_usage is not None:
        metrics.SALESFORCE_API_USAGE.labels(org_id).set(client.last_usage.fraction)
        _slow_down_near_the_limit(container, org_id, client.last_usage.fraction)


def client_for(container: EngineParts, connection_id: str) -> SalesforceClient:
    """A REST client for a stored connection (as `salesforce_clients.client_for` makes them),
    on this process's shared HTTP connection pool: a new pool per batch would cost a TLS
    context (tens of milliseconds of CPU loading the CA bundle) and a new connection to
    Salesforce every time."""
    settings = container.settings
    return salesforce_clients.client_for(
        container.db,
        settings,
        connection_id,
        container.describe_cache,
        http=container.engine_state.http.client(settings.salesforce_timeout_s),
    )


def _execute(
    container: EngineParts, client: SalesforceClient, items: list[BatchItem]
) -> list[Outcome]:
    task = prepare(container, client, [i for i in items if i.outcome is None])
    live = [i for i in items if i.outcome is None]
    if task is not None and live:
        results = _send(client, task, live)
        for item, result in zip(live, results, strict=True):
            item.outcome = outcome_of_result(container, item, result)
    return [i.outcome for i in items]  # type: ignore[misc]


def prepare(
    container: EngineParts, client: SalesforceClient, items: list[BatchItem]
) -> SalesforceTask | None:
    """Everything before the write, for Collections calls and Bulk jobs alike: read the runs'
    contexts, render each record with its revision's plan, resolve lookups (one SOQL query per
    object and match field), settle ambiguous inserts already made (dedupe field), turn key
    fields into Ids for update and delete. Items that cannot go get their outcome; returns
    the task the others share (None when none is left)."""
    db = container.db
    with db.reader() as uow:
        session = uow.session
        runs = batch_runs(session, [item.task_run.run_id for item in items], task_outputs=False)
        piping_outputs: set[str] = set()  # runs whose task pipes earlier tasks' outputs
        uses_outputs: dict[int, bool] = {}
        for item in items:
            task_run = item.task_run
            run = runs.get(task_run.run_id)
            if run is None:
                item.outcome = failed(item, "RUN_DELETED", "The run was deleted.")
                continue
            try:
                document = revision_document(
                    session, run.workflow_id, run.workflow_name, run.workflow_revision
                )
            except RunGone as exc:
                item.outcome = failed(item, "WORKFLOW_DELETED", str(exc))
                continue
            task = document.task(task_run.task_id)
            assert isinstance(task, SalesforceTask)
            item.task = task
            item.plan_key = (run.workflow_id, run.workflow_revision, task.id)
            item.context = run.context
            uses = uses_outputs.get(id(task))
            if uses is None:
                uses = uses_outputs[id(task)] = bool(task_references(task))
            if uses:
                piping_outputs.add(run.id)
        if piping_outputs:
            outputs = task_outputs_of(session, piping_outputs)
            for item in items:
                if item.context is not None and item.task_run.run_id in piping_outputs:
                    item.context = dataclasses.replace(
                        item.context, task_outputs=outputs.get(item.task_run.run_id, {})
                    )
    live = [i for i in items if i.outcome is None]
    if not live:
        return None
    task = live[0].task
    assert task is not None
    describe = client.describe(task.object)
    plans = container.engine_state.record_plans
    for item in live:
        assert item.task is not None and item.context is not None
        plan = record_plan(plans, item.plan_key, item.task, describe)
        item.record = plan.render(item.context)
        if item.record.problems:
            item.outcome = failed(item, "CXLOOP_BAD_VALUE", "; ".join(item.record.problems))
    live = [i for i in live if i.outcome is None]
    _resolve_lookups(client, live)
    live = [i for i in live if i.outcome is None]
    if task.action == "insert" and task.dedupe_field:
        _settle_already_inserted(client, task, live)
        live = [i for i in live if i.outcome is None]
    if task.action in ("update", "delete") and (task.key_field or "Id") != "Id":
        _resolve_keys_to_ids(client, task, live)
        live = [i for i in live if i.outcome is None]
    return task


def _send(
    client: SalesforceClient, task: SalesforceTask, items: list[BatchItem]
) -> list[RecordResult]:
    kind = {"type": task.object}
    records = []
    for item in items:
        body: dict[str, Any] = {"attributes": kind, **record_body(task, item)}
        item.payload = body
        records.append(body)
    if task.action == "insert":
        return client.collection_create(records)
    if task.action == "update":
        return client.collection_update(records)
    if task.action == "upsert":
        return client.collection_upsert(task.object, task.key_field or "", records)
    ids = [str(item.record.key_value) for item in items if item.record]
    return client.collection_delete(ids)


def record_body(task: SalesforceTask, item: BatchItem) -> dict[str, Any]:
    """The fields an item's write sends: its rendered fields, with the Id for an update and
    the key field's value for an upsert (a delete sends only the Id)."""
    assert item.record is not None
    if task.action == "delete":
        return {"Id": item.record.key_value}
    body: dict[str, Any] = dict(item.record.fields)
    if task.action == "update":
        body["Id"] = item.record.key_value
    if task.action == "upsert":
        body[task.key_field or ""] = item.record.key_value
    return body


def outcome_of_result(container: EngineParts, item: BatchItem, result: RecordResult) -> Outcome:
    """A record's outcome from Salesforce's result: success, a data error (failed now) or a
    passing one (retried)."""
    task_run = item.task_run
    payload = item.payload
    if result.success:
        return Outcome(
            task_run.id,
            "succeeded",
            record_id=result.id,
            result={"Id": result.id, "created": result.created},
            payload=payload,
            reply={"success": True, "id": result.id, "created": result.created},
        )
    error = result.error
    assert error is not None
    if error.kind == "transient":
        return _retry(container, task_run, error, payload)
    return Outcome(
        task_run.id,
        "failed",
        reason=_explain(task_run, error),
        error=error.as_dict(),
        payload=payload,
        reply={"success": False, "errors": [e.as_dict() for e in result.errors]},
    )


def whole_batch_failed(
    container: EngineParts,
    items: list[BatchItem],
    exc: SalesforceError,
    org_id: str,
    connection_id: str,
) -> list[Outcome]:
    """Every item's outcome when the whole call failed (the error policy, call-wide)."""
    settings = container.settings
    outcomes = []
    if exc.kind == "reauth" or exc.kind == "auth":
        reason = f"The connection needs to be reconnected: {exc.message}"
        claims.pause_connection_work(container.db, connection_id, reason)
        return [i.outcome or _paused(i, reason, exc) for i in items]
    if exc.kind == "limit":
        # Fewer batches of the org in flight from now on, in every process.
        batch_owners.shrink_org_bound(container.db, org_id)
        if _CONCURRENT_LIMIT in exc.message:
            # Too many long requests at once, not the daily allocation: the calls in flight
            # end within seconds, and the smaller bound keeps the next ones under the limit.
            until = claims.throttle_org(
                container.db, org_id, _CONCURRENT_BACKOFF_S, str(exc), escalate=False
            )
        else:
            until = claims.throttle_org(
                container.db, org_id, settings.limit_backoff_s, str(exc), escalate=True
            )
        for item in items:
            outcomes.append(
                item.outcome
                or Outcome(
                    item.task_run.id,
                    "waiting_retry",
                    reason="Salesforce's API limit for the org was reached; held back until "
                    f"{until:%H:%M:%S} UTC",
                    error=exc.as_dict(),
                    payload=item.payload,
                    retry_at=until,
                )
            )
        return outcomes
    ambiguous = isinstance(exc, SalesforceUnreachable)
    held_until = None
    if exc.kind == "transient" and org_id != "unknown":
        # The whole call failed (unreachable, 5xx, timeout): the org is held back a moment,
        # doubling while it stays down, so that the next batches wait instead of each being
        # tried, and a backlog of a million waits as a million untouched rows, not a million
        # failed attempts with a retry message each. This batch goes again when the hold ends.
        held_until = claims.throttle_org(
            container.db, org_id, settings.retry_base_s, f"Salesforce: {exc}", escalate=True
        )
    for item in items:
        if item.outcome is not None:
            outcomes.append(item.outcome)
        elif exc.kind == "transient":
            outcome = _retry(container, item.task_run, exc, item.payload, ambiguous)
            if outcome.retry_at is not None and held_until is not None:
                outcome.retry_at = held_until
            outcomes.append(outcome)
        else:
            outcomes.append(
                Outcome(
                    item.task_run.id,
                    "failed",
                    reason=_explain(item.task_run, exc),
                    error=exc.as_dict(),
                    payload=item.payload,
                )
            )
    return outcomes


def _retry(
    container: EngineParts,
    task_run: ClaimedTaskRun,
    error: SalesforceError,
    payload: dict[str, Any] | None,
    ambiguous: bool = False,
) -> Outcome:
    at = claims.next_retry_at(container.settings, task_run)
    if at is None:
        status = "failed"
        reason = f"Gave up after {task_run.attempts} attempts over the retry horizon: {error}"
    else:
        status = "waiting_retry"
        reason = f"Salesforce had a passing problem ({error}); trying again"
    return Outcome(
        task_run.id,
        status,
        reason=reason,
        error=error.as_dict(),
        payload=payload,
        retry_at=at,
        ambiguous=ambiguous,
    )


def _resolve_lookups(client: SalesforceClient, items: list[BatchItem]) -> None:
    """Fill reference fields from one SOQL query per (object, match field)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for item in items:
        assert item.record is not None
        for obj, match_field, value, _missing in item.record.lookups.values():
            if value:
                wanted.setdefault((obj, match_field), set()).add(value)
    found: dict[tuple[str, str], dict[str, str]] = {}
    for (obj, match_field), values in wanted.items():
        found[(obj, match_field)] = _ids_by_value(client, obj, match_field, values)
    for item in items:
        assert item.record is not None
        for field_name, (obj, match_field, value, when_missing) in item.record.lookups.items():
            record_id = found.get((obj, match_field), {}).get(value) if value else None
            if record_id:
                item.record.fields[field_name] = record_id
            elif when_missing == "fail":
                item.outcome = failed(
                    item,
                    "CXLOOP_LOOKUP_NOT_FOUND",
                    f"no {obj} has {match_field} = {value!r}, so {field_name} cannot be set",
                )


def _settle_already_inserted(
    client: SalesforceClient, task: SalesforceTask, items: list[BatchItem]
) -> None:
    """After an ambiguous failure, records that did get inserted are found, not sent again."""
    suspects = [i for i in items if i.task_run.ambiguous and i.record is not None]
    if not suspects or not task.dedupe_field:
        return
    values = {str(i.record.fields.get(task.dedupe_field)) for i in suspects if i.record}
    existing = _ids_by_value(client, task.object, task.dedupe_field, values)
    for item in suspects:
        assert item.record is not None
        record_id = existing.get(str(item.record.fields.get(task.dedupe_field)))
        if record_id:
            item.outcome = Outcome(
                item.task_run.id,
                "succeeded",
                reason="found already inserted by an earlier attempt; not sent again",
                record_id=record_id,
                result={"Id": record_id, "created": True},
            )


def _resolve_keys_to_ids(
    client: SalesforceClient, task: SalesforceTask, items: list[BatchItem]
) -> None:
    key_field = task.key_field or "Id"
    values = {str(i.record.key_value) for i in items if i.record and i.record.key_value}
    ids = _ids_by_value(client, task.object, key_field, values)
    for item in items:
        assert item.record is not None
        record_id = ids.get(str(item.record.key_value))
        if record_id is None:
            item.outcome = failed(
                item,
                "NOT_FOUND",
                f"no {task.object} has {key_field} = {item.record.key_value!r}",
            )
        else:
            item.record.key_value = record_id


def _ids_by_value(
    client: SalesforceClient, obj: str, match_field: str, values: set[str]
) -> dict[str, str]:
    found: dict[str, str] = {}
    ordered = sorted(values)
    # A Collections batch asks one query; a Bulk job's thousands of values go in slices, so
    # that no query outgrows Salesforce's limits on a SOQL statement and its URL.
    for chunk in in_chunks(ordered, _VALUES_PER_QUERY):
        quoted = ", ".join(_soql_string(v) for v in chunk)
        soql = f"SELECT Id, {match_field} FROM {obj} WHERE {match_field} IN ({quoted})"
        for row in client.query_all(soql):
            key = row.get(match_field)
            if key is not None:
                found.setdefault(str(key), row["Id"])
    return found


_VALUES_PER_QUERY = 300


def _soql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _slow_down_near_the_limit(container: EngineParts, org_id: str, fraction: float) -> None:
    if fraction >= container.settings.api_usage_threshold:
        batch_owners.shrink_org_bound(container.db, org_id)
        claims.throttle_org(
            container.db,
            org_id,
            10.0,
            f"the org has used {fraction:.0%} of its daily API requests",
            escalate=False,
        )


def failed(item: BatchItem, code: str, message: str) -> Outcome:
    """A permanent failure of cxloop's own making (a bad value, a lookup not found)."""
    return Outcome.permanent_failure(item.task_run.id, code, message, payload=item.payload)


def _paused(
    item: BatchItem, reason: str, exc: SalesforceError | None = None, *, release: bool = False
) -> Outcome:
    return Outcome(
        item.task_run.id,
        "paused",
        reason=reason,
        error=exc.as_dict() if exc else None,
        payload=item.payload,
        release_connection=release,
    )


def _explain(task_run: ClaimedTaskRun, error: SalesforceError) -> str:
    fields = f" (fields: {', '.join(error.fields)})" if error.fields else ""
    return (
        f"Salesforce refused the record: {error.error_code} — {error.message}{fields}. "
        f"Fix the mapping of task '{task_run.task_id}' or the data, then retry the run."
    )
