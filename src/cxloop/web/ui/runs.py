"""Run history pages: the runs list (all surveys the user can see, or one survey's), a run's
timeline with each task run's attempts and its error explained, and Retry / Replay.

The list and the run come from the same services as `/api/v1/runs` (services/run_history.py): the
filters are a `RunFilter`, paging is its keyset cursor. The plain-words explanations of errors
come from domain/run_errors.py, the one table the API could use too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query
from fastapi.responses import Response

from cxloop.db.run_models import RUN_STATUSES, Run, TaskRun
from cxloop.domain.run_errors import Explanation, explain
from cxloop.domain.statuses import TaskRunStatus
from cxloop.errors import Forbidden, InvalidInput, NotFound
from cxloop.services import run_history, surveys
from cxloop.web.ui.context import Page, ui_router
from cxloop.web.ui.i18n import N_

router = ui_router()

PAGE_SIZE = 25
SURVEY_CHOICES = 500  # the survey filter lists this many surveys (more: filter by link)

STATUS_LABELS = MappingProxyType(
    {
        "pending": N_("Pending"),
        "running": N_("Running"),
        "succeeded": N_("Succeeded"),
        "failed": N_("Failed"),
        "paused": N_("Paused"),
        "skipped": N_("Skipped"),
        "blocked": N_("Waiting for an earlier task"),
        "waiting_retry": N_("Waiting to retry"),
    }
)
OUTCOME_LABELS = MappingProxyType(
    {
        "succeeded": N_("Succeeded"),
        "failed": N_("Failed"),
        "retry": N_("Will retry"),
        "waiting_retry": N_("Will retry"),
        "paused": N_("Paused"),
        "skipped": N_("Skipped"),
        # the call may have reached Salesforce unseen (a timeout): looked up before resending
        "ambiguous": N_("No answer"),
        # the worker stopped answering mid-attempt; the sweeper recorded it
        "interrupted": N_("Interrupted"),
    }
)
TASK_TYPE_LABELS = MappingProxyType(
    {
        "salesforce": N_("Salesforce"),
        "directory": N_("Directory"),
        "email": N_("Email"),
    }
)
# Keys of a payload or reply whose values are never shown (none are expected there; this is a
# second line of defence should a mapping pipe a secret into a record).
# The task runs whose error the runs list shows (the first of a run's), and those a retry of
# the run sends again (the page's count beside the button).
_WITH_ERROR = frozenset({TaskRunStatus.FAILED, TaskRunStatus.PAUSED, TaskRunStatus.WAITING_RETRY})
_RETRYABLE = frozenset({TaskRunStatus.FAILED, TaskRunStatus.SKIPPED, TaskRunStatus.PAUSED})
_SECRET_WORDS = ("token", "secret", "password", "authorization", "session_id")


@dataclass(frozen=True)
class RunQuery:
    """The list's filters as the page's form holds them (strings; empty = not filtered)."""

    survey: str = ""
    workflow: str = ""
    status: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""

    def run_filter(self) -> run_history.RunFilter:
        """The service's filter: dates are whole days in UTC, `until` included."""
        since = datetime.combine(self.since, time(), UTC) if self.since else None
        until = (
            datetime.combine(self.until + timedelta(days=1), time(), UTC) if self.until else None
        )
        return run_history.RunFilter(
            self.survey or None,
            self.workflow or None,
            self.status or None,
            since,
            until,
            self.q.strip() or None,
        )

    def params(self, **changes: str) -> dict[str, str]:
        """The filters as query parameters (only those set), with `changes` applied."""
        values = {
            "survey": self.survey,
            "workflow": self.workflow,
            "status": self.status,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "q": self.q,
            **changes,
        }
        return {k: v for k, v in values.items() if v}

    def url(self, **changes: str) -> str:
        query = urlencode(self.params(**changes))
        return "/runs" + (f"?{query}" if query else "")

    @property
    def filtered(self) -> bool:
        return bool(self.params())


@router.get("/runs")
def run_list(
    page: Page,
    survey: Annotated[str, Query(max_length=40)] = "",
    workflow: Annotated[str, Query(max_length=40)] = "",
    status: Annotated[str, Query(pattern="^(|" + "|".join(RUN_STATUSES) + ")$")] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Runs newest first across the surveys the user can see (admins: all), or one survey's,
    filtered by survey, workflow, status, dates and text, a page at a time."""
    query = RunQuery(
        survey,
        workflow,
        status,
        _day(page, since, page._("From")),
        _day(page, until, page._("Until")),
        q,
    )
    found = run_history.list_runs(
        page.db, page.user, query.run_filter(), limit=PAGE_SIZE, cursor=cursor or None
    )
    choices = surveys.list_surveys(page.db, page.user, limit=SURVEY_CHOICES).items
    names = {s.id: s.name for s in choices}
    survey_workflows = run_history.workflow_choices(page.db, page.user, survey) if survey else []
    rows = [_row(page, run, names) for run in found.items]
    return page.render(
        "ui/runs/list.html",
        section="runs",
        query=query,
        rows=rows,
        survey_options=[("", page._("All surveys"))] + [(s.id, s.name) for s in choices],
        workflow_options=[("", page._("All workflows")), *survey_workflows],
        status_options=[("", page._("Any status"))]
        + [(s, page._(STATUS_LABELS[s])) for s in RUN_STATUSES],
        survey_name=names.get(survey, survey) if survey else "",
        next_url=query.url(cursor=found.next_cursor) if found.next_cursor else None,
        first_url=query.url() if cursor else None,
        status_labels=STATUS_LABELS,
    )


def _day(page: Page, value: str, name: str) -> date | None:
    """A date filter (YYYY-MM-DD, as a date input sends it); empty is no filter."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            page._("%(name)s must be a date like 2026-12-31.", name=name), code="bad_date"
        ) from None


@dataclass(frozen=True)
class RunRow:
    """A run as the list shows it."""

    run: Run
    survey_name: str
    event: str
    tasks: list[tuple[str, int]]  # (status, count), in the order of STATUS_LABELS
    duration: str
    error: str


def _row(page: Page, run: Run, survey_names: dict[str, str]) -> RunRow:
    counts = Counter(t.status for t in run.task_runs)
    tasks = [(status, counts[status]) for status in STATUS_LABELS if counts[status]]
    finished = run.finished_at
    error = ""
    for task_run in run.task_runs:
        if task_run.status not in _WITH_ERROR:
            continue
        explanation = explain(task_run.status, task_run.error, task_run.status_reason)
        # The plain words of the run page, in the page's language; the engine's own otherwise.
        error = (
            page._(explanation.summary, **explanation.values)
            if explanation is not None
            else task_run.status_reason
        )
        if error:
            break
    return RunRow(
        run,
        survey_names.get(run.survey_id, run.survey_id),
        _event_words(run),
        tasks,
        duration_words(finished - run.created_at) if finished else "",
        error if len(error) <= 140 else error[:139] + "…",
    )


def duration_words(span: timedelta) -> str:
    """A duration the way people read it: 850 ms, 12 s, 3 min 5 s, 2 h 10 min (the units are
    the same in English and German)."""
    ms = max(0, round(span.total_seconds() * 1000))
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _event_words(run: Run) -> str:
    """The event in a few characters: the response id, or the outbound record's id."""
    if run.response_id:
        return run.response_id
    record = (run.event_data or {}).get("Id")
    return str(record) if record else _notification_id(run) or run.event_type


def _notification_id(run: Run) -> str:
    """The outbound message's notification id (from the event key `outbound:ORG:ID`)."""
    parts = run.event_key.split(":")
    return parts[2] if len(parts) >= 3 and parts[0] == "outbound" else ""


@router.get("/runs/{run_id}")
def run_page(run_id: str, page: Page) -> Response:
    """A run's timeline: the event, the conditions, each task run with its attempts, what was
    sent, Salesforce's reply and the error in plain words; Retry / Replay for editors and up."""
    return _run_page(page, run_id)


def _run_page(page: Page, run_id: str, confirm: str = "", status_code: int = 200) -> Response:
    view = run_history.get_run_view(page.db, page.user, _run_id(run_id))
    run, survey = view.run, view.survey
    role = surveys.survey_access(survey, page.user)
    can_change = role in ("owner", "editor")
    if confirm and not can_change:
        raise Forbidden(
            page._("Only the survey's owner and editors can retry or replay runs."), localized=True
        )
    tasks = [_task_view(run, task_run) for task_run in run.task_runs]
    retryable = sum(1 for t in run.task_runs if t.status in _RETRYABLE)
    return page.render(
        "ui/runs/run.html",
        status_code=status_code,
        section="runs",
        run=run,
        survey=survey,
        role=role,
        can_change=can_change,
        can_retry=can_change and retryable > 0,
        can_replay=can_change and run.workflow_id is not None,
        retryable=retryable,
        confirm=confirm,
        tasks=tasks,
        notification_id=_notification_id(run),
        record_id=(run.event_data or {}).get("Id"),
        event_fields=_shown(run.event_data) if run.event_type != "survey_response" else None,
        conditions=view.conditions,
        workflow_url=(
            f"/surveys/{run.survey_id}/workflows/{run.workflow_id}" if run.workflow_id else None
        ),
        duration=duration_words(run.finished_at - run.created_at) if run.finished_at else "",
        status_labels=STATUS_LABELS,
        outcome_labels=OUTCOME_LABELS,
        task_type_labels=TASK_TYPE_LABELS,
    )


@dataclass(frozen=True)
class TaskView:
    """A task run as the timeline shows it."""

    task_run: TaskRun
    explanation: Explanation | None
    fix_url: str | None
    attempts: list[dict[str, Any]]
    payload: Any
    reply: Any
    error: Any
    bulk_job_id: str | None = None  # the Bulk API 2.0 job it is in now, or its last went in


def _task_view(run: Run, task_run: TaskRun) -> TaskView:
    explanation = explain(task_run.status, task_run.error, task_run.status_reason)
    fix_url = None
    if explanation is not None and explanation.action == "accounts":
        fix_url = "/accounts"
    elif explanation is not None and explanation.action == "workflow" and run.workflow_id:
        fix_url = f"/surveys/{run.survey_id}/workflows/{run.workflow_id}"
    attempts = [
        {
            "number": a.number,
            "started_at": a.started_at,
            "outcome": a.outcome,
            "duration_ms": max(0, round((a.finished_at - a.started_at).total_seconds() * 1000)),
            "batch_size": a.batch_size,
            "error": _shown(a.error),
        }
        for a in task_run.attempt_log
    ]
    last = task_run.attempt_log[-1] if task_run.attempt_log else None
    return TaskView(
        task_run,
        explanation,
        fix_url,
        attempts,
        _shown(task_run.payload if task_run.payload is not None else last and last.payload),
        _shown(last.reply if last is not None else None),
        _shown(task_run.error),
        task_run.bulk_job_id or (last.bulk_job_id if last is not None else None),
    )


def _shown(value: Any) -> Any:
    """A payload, reply or error as shown: values under secret-looking keys are hidden."""
    if isinstance(value, dict):
        return {
            k: "••••••" if any(w in str(k).lower() for w in _SECRET_WORDS) else _shown(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def _run_id(run_id: str) -> str:
    if len(run_id) > 40:
        raise NotFound(f"No run {run_id!r}.", subject="run")
    return run_id


@router.post("/runs/{run_id}/retry")
def retry(run_id: str, page: Page, confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    """Retry the run's failed, skipped and paused task runs (editors and up), after the person
    confirmed on the run's page."""
    if confirm != "yes":
        return _run_page(page, run_id, confirm="retry")
    queued = run_history.retry_run(page.db, page.user, _run_id(run_id))
    return page.redirect(
        f"/runs/{run_id}", page._("Retried: %(n)s task runs queued again.", n=queued)
    )


@router.post("/runs/{run_id}/replay")
def replay(run_id: str, page: Page, confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    """Replay every failed run of this run's workflow (editors and up), after confirming."""
    if confirm != "yes":
        return _run_page(page, run_id, confirm="replay")
    run = run_history.get_run(page.db, page.user, _run_id(run_id))
    if run.workflow_id is None:
        raise NotFound(page._("The workflow of this run was deleted."), localized=True)
    queued = run_history.retry_failed_runs(page.db, page.user, run.workflow_id, run.survey_id)
    return page.redirect(
        f"/runs/{run_id}",
        page._("Replayed: %(n)s task runs of the workflow's failed runs queued again.", n=queued),
    )
