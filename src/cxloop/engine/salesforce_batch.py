"""Execute a batch of claimed Salesforce task runs that share (connection, object, action, key).

One sObject Collections call carries up to 200 records with allOrNone=false; each record's
result goes back to its own task run. Lookups and dedupe checks are one SOQL query per batch.
Errors follow the policy in ARCHITECTURE.md: transient → retry with backoff until the horizon;
request limit → hold the org back; a dead refresh token → pause; Salesforce says the data is
wrong → fail now, keeping its code, message and fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxloop import metrics
from cxloop.db.run_models import TaskRun
from cxloop.domain.piped_text import PipedTextContext
from cxloop.domain.workflow import SalesforceTask
from cxloop.engine import ledger
from cxloop.engine.ledger import Outcome
from cxloop.engine.render import RenderedRecord, RunGone, render_record, run_contexts, run_document
from cxloop.salesforce.client import RecordResult, SalesforceClient
from cxloop.salesforce.errors import SalesforceError, SalesforceUnreachable
from cxloop.services.runs import SalesforceBatchKey
from cxloop.services.salesforce_clients import ConnectionUnusable, client_for

if TYPE_CHECKING:
    from cxloop.bootstrap import Container


@dataclass
class _Item:
    task_run: TaskRun
    task: SalesforceTask | None = None
    context: PipedTextContext | None = None
    record: RenderedRecord | None = None
    outcome: Outcome | None = None


def execute(container: Container, task_runs: Sequence[TaskRun]) -> list[Outcome]:
    """Do the batch; returns one outcome per task run."""
    items = [_Item(t) for t in task_runs]
    key = SalesforceBatchKey.parse(task_runs[0].batch_key)
    connection_id = ledger.use_owner_connection(
        container.db, key.owner_id, key.connection, task_runs
    )
    if connection_id is None:
        reason = (
            f"The workflow's connection {key.connection!r} is not one of the survey owner's "
            "connections; pick one of theirs in the workflow, then retry the run."
        )
        return [_paused(i.task_run, reason) for i in items]
    try:
        client = client_for(
            container.db, container.settings, connection_id, container.describe_cache
        )
    except ConnectionUnusable as exc:
        ledger.pause_connection_work(container.db, connection_id, exc.message)
        return [_paused(i.task_run, exc.message) for i in items]
    org_id = ledger.org_of_connection(container.db, connection_id) or "unknown"
    with client:
        try:
            return _execute(container, client, items)
        except SalesforceError as exc:
            return _whole_batch_failed(container, items, exc, org_id, connection_id)
        finally:
            metrics.SALESFORCE_CALLS.labels(org_id).inc(client.calls)
            if client.last_usage is not None:
                metrics.SALESFORCE_API_USAGE.labels(org_id).set(client.last_usage.fraction)
                _slow_down_near_the_limit(container, org_id, client.last_usage.fraction)


def _execute(container: Container, client: SalesforceClient, items: list[_Item]) -> list[Outcome]:
    db = container.db
    with db.reader() as uow:
        contexts = run_contexts(uow.session, [item.task_run.run for item in items])
        for item in items:
            try:
                document = run_document(uow.session, item.task_run.run)
            except RunGone as exc:
                item.outcome = _failed(item.task_run, "WORKFLOW_DELETED", str(exc))
                continue
            task = document.task(item.task_run.task_id)
            assert isinstance(task, SalesforceTask)
            item.task = task
            item.context = contexts[item.task_run.run_id]
    live = [i for i in items if i.outcome is None]
    if not live:
        return [i.outcome for i in items]  # type: ignore[misc]
    task = live[0].task
    assert task is not None
    describe = client.describe(task.object)
    for item in live:
        assert item.task is not None and item.context is not None
        item.record = render_record(item.task, item.context, describe)
        if item.record.problems:
            item.outcome = _failed(
                item.task_run, "CXLOOP_BAD_VALUE", "; ".join(item.record.problems)
            )
    live = [i for i in live if i.outcome is None]
    _resolve_lookups(client, live)
    live = [i for i in live if i.outcome is None]
    if task.action == "insert" and task.dedupe_field:
        _settle_already_inserted(client, task, live)
        live = [i for i in live if i.outcome is None]
    if task.action in ("update", "delete") and (task.key_field or "Id") != "Id":
        _resolve_keys_to_ids(client, task, live)
        live = [i for i in live if i.outcome is None]
    if live:
        results = _send(client, task, live)
        for item, result in zip(live, results, strict=True):
            item.outcome = _from_result(container, item, result)
    return [i.outcome for i in items]  # type: ignore[misc]


def _send(client: SalesforceClient, task: SalesforceTask, items: list[_Item]) -> list[RecordResult]:
    kind = {"type": task.object}
    records = []
    for item in items:
        assert item.record is not None
        body: dict[str, Any] = {"attributes": kind, **item.record.fields}
        if task.action == "update":
            body["Id"] = item.record.key_value
        if task.action == "upsert":
            body[task.key_field or ""] = item.record.key_value
        item.task_run.payload = body
        records.append(body)
    if task.action == "insert":
        return client.collection_create(records)
    if task.action == "update":
        return client.collection_update(records)
    if task.action == "upsert":
        return client.collection_upsert(task.object, task.key_field or "", records)
    ids = [str(item.record.key_value) for item in items if item.record]
    return client.collection_delete(ids)


def _from_result(container: Container, item: _Item, result: RecordResult) -> Outcome:
    task_run = item.task_run
    payload = task_run.payload
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


def _whole_batch_failed(
    container: Container,
    items: list[_Item],
    exc: SalesforceError,
    org_id: str,
    connection_id: str,
) -> list[Outcome]:
    settings = container.settings
    outcomes = []
    if exc.kind == "reauth" or exc.kind == "auth":
        reason = f"The connection needs to be reconnected: {exc.message}"
        ledger.pause_connection_work(container.db, connection_id, reason)
        return [i.outcome or _paused(i.task_run, reason, exc) for i in items]
    if exc.kind == "limit":
        until = ledger.throttle_org(
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
                    payload=item.task_run.payload,
                    retry_at=until,
                )
            )
        return outcomes
    ambiguous = isinstance(exc, SalesforceUnreachable)
    for item in items:
        if item.outcome is not None:
            outcomes.append(item.outcome)
        elif exc.kind == "transient":
            outcomes.append(_retry(container, item.task_run, exc, item.task_run.payload, ambiguous))
        else:
            outcomes.append(
                Outcome(
                    item.task_run.id,
                    "failed",
                    reason=_explain(item.task_run, exc),
                    error=exc.as_dict(),
                    payload=item.task_run.payload,
                )
            )
    return outcomes


def _retry(
    container: Container,
    task_run: TaskRun,
    error: SalesforceError,
    payload: dict[str, Any] | None,
    ambiguous: bool = False,
) -> Outcome:
    settings = container.settings
    at = ledger.next_retry_at(settings, task_run)
    if at is None:
        return Outcome(
            task_run.id,
            "failed",
            reason=f"Gave up after {task_run.attempts} attempts over the retry horizon: {error}",
            error=error.as_dict(),
            payload=payload,
            ambiguous=ambiguous,
        )
    return Outcome(
        task_run.id,
        "waiting_retry",
        reason=f"Salesforce had a passing problem ({error}); trying again",
        error=error.as_dict(),
        payload=payload,
        retry_at=at,
        ambiguous=ambiguous,
    )


def _resolve_lookups(client: SalesforceClient, items: list[_Item]) -> None:
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
                item.outcome = _failed(
                    item.task_run,
                    "CXLOOP_LOOKUP_NOT_FOUND",
                    f"no {obj} has {match_field} = {value!r}, so {field_name} cannot be set",
                )


def _settle_already_inserted(
    client: SalesforceClient, task: SalesforceTask, items: list[_Item]
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
    client: SalesforceClient, task: SalesforceTask, items: list[_Item]
) -> None:
    key_field = task.key_field or "Id"
    values = {str(i.record.key_value) for i in items if i.record and i.record.key_value}
    ids = _ids_by_value(client, task.object, key_field, values)
    for item in items:
        assert item.record is not None
        record_id = ids.get(str(item.record.key_value))
        if record_id is None:
            item.outcome = _failed(
                item.task_run,
                "NOT_FOUND",
                f"no {task.object} has {key_field} = {item.record.key_value!r}",
            )
        else:
            item.record.key_value = record_id


def _ids_by_value(
    client: SalesforceClient, obj: str, match_field: str, values: set[str]
) -> dict[str, str]:
    if not values:
        return {}
    quoted = ", ".join(_soql_string(v) for v in sorted(values))
    soql = f"SELECT Id, {match_field} FROM {obj} WHERE {match_field} IN ({quoted})"
    found: dict[str, str] = {}
    for row in client.query_all(soql):
        key = row.get(match_field)
        if key is not None:
            found.setdefault(str(key), row["Id"])
    return found


def _soql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _slow_down_near_the_limit(container: Container, org_id: str, fraction: float) -> None:
    if fraction >= container.settings.api_usage_threshold:
        ledger.throttle_org(
            container.db,
            org_id,
            10.0,
            f"the org has used {fraction:.0%} of its daily API requests",
            escalate=False,
        )


def _failed(task_run: TaskRun, code: str, message: str) -> Outcome:
    return Outcome(
        task_run.id,
        "failed",
        reason=message,
        error={"kind": "permanent", "error_code": code, "message": message, "fields": []},
        payload=task_run.payload,
    )


def _paused(task_run: TaskRun, reason: str, exc: SalesforceError | None = None) -> Outcome:
    return Outcome(
        task_run.id,
        "paused",
        reason=reason,
        error=exc.as_dict() if exc else None,
        payload=task_run.payload,
    )


def _explain(task_run: TaskRun, error: SalesforceError) -> str:
    fields = f" (fields: {', '.join(error.fields)})" if error.fields else ""
    return (
        f"Salesforce refused the record: {error.error_code} — {error.message}{fields}. "
        f"Fix the mapping of task '{task_run.task_id}' or the data, then retry the run."
    )
