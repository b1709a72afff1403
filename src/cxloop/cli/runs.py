"""`cxloop runs`: run history and replay."""

from __future__ import annotations

import json
from datetime import datetime

import typer

from cxloop.cli.context import (
    JsonOption,
    UserOption,
    actor_for,
    console,
    container,
    one_line_errors,
    print_json,
    print_rows,
)
from cxloop.services import run_history as service

app = typer.Typer(help="Run history: what workflows did, and replaying what failed.")


@app.command("list")
@one_line_errors
def list_(
    survey: str | None = typer.Option(None, "--survey", help="Only this survey's runs."),
    workflow: str | None = typer.Option(None, "--workflow", help="Only this workflow's runs."),
    status: str | None = typer.Option(None, "--status", help="pending, running, succeeded, ..."),
    since: datetime | None = typer.Option(None, "--since", help="Started at or after (ISO)."),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    user: str | None = UserOption,
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first."""
    built = container(read_only=True)
    page = service.list_runs(
        built.db,
        actor_for(built, user),
        service.RunFilter(survey, workflow, status, since, None),
        limit=limit,
    )
    rows = [
        {"run": run.id, "started": run.created_at, "workflow": run.workflow_name,
         "status": run.status, "tasks": [f"{t.task_id}:{t.status}" for t in run.task_runs],
         "response": run.response_id}
        for run in page.items
    ]  # fmt: skip
    print_rows(rows, ["run", "started", "workflow", "status", "tasks", "response"], as_json=as_json)


@app.command()
@one_line_errors
def show(run_id: str, user: str | None = UserOption, as_json: bool = JsonOption) -> None:
    """Show a run: each task run's attempts, payload, Salesforce's reply, the record Id."""
    built = container(read_only=True)
    run = service.get_run(built.db, actor_for(built, user), run_id)
    if as_json:
        # the API's shape (GET /api/v1/runs/{id}): one set of keys for scripts either way
        from cxloop.web.api.runs import RunDetail

        print_json(RunDetail.model_validate(run))
        return
    console.print(
        f"[bold]{run.id}[/] {run.workflow_name} (revision {run.workflow_revision}) "
        f"— {run.status}; event {run.event_key}",
        highlight=False,
    )
    for task_run in run.task_runs:
        console.print(
            f"  [bold]{task_run.task_id}[/] ({task_run.task_type}): {task_run.status} "
            f"after {task_run.attempts} attempt(s)"
            + (f"; record {task_run.record_id}" if task_run.record_id else "")
            + (f" — {task_run.status_reason}" if task_run.status_reason else ""),
            highlight=False,
        )
        for attempt in task_run.attempt_log:
            console.print(
                f"    #{attempt.number} {attempt.started_at:%H:%M:%S} {attempt.outcome} "
                f"(batch of {attempt.batch_size})",
                highlight=False,
            )
            if attempt.payload:
                console.print(f"      sent: {json.dumps(attempt.payload)}", highlight=False)
            if attempt.error:
                console.print(f"      error: {json.dumps(attempt.error)}", highlight=False)


@app.command()
@one_line_errors
def retry(
    run_id: str | None = typer.Argument(None, help="The run to replay."),
    failed_of: str | None = typer.Option(
        None, "--failed-of", help="Replay every failed run of this workflow instead."
    ),
    user: str | None = UserOption,
) -> None:
    """Replay a run's failed task runs, or every failed run of a workflow."""
    built = container()
    actor = actor_for(built, user)
    if failed_of:
        count = service.retry_failed_runs(built.db, actor, failed_of)
    elif run_id:
        count = service.retry_run(built.db, actor, run_id)
    else:
        raise typer.BadParameter("give a RUN_ID or --failed-of WORKFLOW_ID")
    console.print(f"Queued {count} task run(s) again.", highlight=False)
