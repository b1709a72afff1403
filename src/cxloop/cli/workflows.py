"""`cxloop workflows`: list, show, export and apply workflow documents; revisions and diffs.

`export` writes exactly what `apply` reads, so a workflow can live in git: export it, review the
change as a diff, apply it (to this survey or, say, from a sandbox survey to production).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
import yaml

from cxloop.bootstrap import Container
from cxloop.cli.context import (
    JsonOption,
    UserOption,
    actor_for,
    console,
    container,
    err_console,
    fail,
    one_line_errors,
    print_json,
    print_rows,
)
from cxloop.domain.workflow import DocumentProblem
from cxloop.engine.dry_run import dry_run
from cxloop.services import workflows as service
from cxloop.services.access import Actor
from cxloop.services.task_checks import SalesforceChecksFailed, SalesforceProblem, SaveChecks

app = typer.Typer(help="Workflows: documents with revisions, kept as YAML.", no_args_is_help=True)


@app.command("list")
@one_line_errors
def list_(survey_id: str, user: str | None = UserOption, as_json: bool = JsonOption) -> None:
    """List a survey's workflows."""
    built = container(read_only=True)
    rows = [
        {"id": w.id, "name": w.name, "event": w.event_type, "enabled": w.enabled,
         "revision": w.revision, "updated": w.updated_at}
        for w in service.list_workflows(built.db, actor_for(built, user), survey_id)
    ]  # fmt: skip
    columns = ["id", "name", "event", "enabled", "revision", "updated"]
    print_rows(rows, columns, as_json=as_json)


@app.command()
@one_line_errors
def show(
    workflow_id: str,
    revision: int | None = typer.Option(None, "--revision", help="Show this revision instead."),
    user: str | None = UserOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a workflow (or one of its revisions): what it is, then its document as YAML."""
    built = container(read_only=True)
    actor = actor_for(built, user)
    if as_json:
        print_json(_workflow_json(built, actor, workflow_id, revision))
        return
    if revision is not None:
        found = service.get_revision(built.db, actor, workflow_id, revision)
        typer.echo(
            f"# {workflow_id} revision {found.revision} by {found.author.email} on "
            f"{found.created_at:%Y-%m-%d %H:%M} UTC: {found.summary}"
        )
        typer.echo(
            service.export_workflow(built.db, actor, workflow_id, revision=revision), nl=False
        )
        return
    view = service.get_workflow(built.db, actor, workflow_id)
    w = view.workflow
    state = "enabled" if w.enabled else "disabled"
    typer.echo(
        f"# {w.id} {w.name!r} of survey {w.survey_id}: {w.event_type}, {state}, revision "
        f"{w.revision}, updated {w.updated_at:%Y-%m-%d %H:%M} UTC"
    )
    _warn(view.warnings)
    typer.echo(service.export_workflow(built.db, actor, workflow_id), nl=False)


@app.command()
@one_line_errors
def export(
    workflow_id: str,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file."),
    revision: int | None = typer.Option(None, "--revision", help="Export this revision."),
    user: str | None = UserOption,
) -> None:
    """Write the document as YAML, exactly what `apply` reads back."""
    built = container(read_only=True)
    text = service.export_workflow(built.db, actor_for(built, user), workflow_id, revision=revision)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    err_console.print(f"Wrote {output}.", highlight=False)


@app.command()
@one_line_errors
def apply(
    survey_id: str,
    file: Path = typer.Argument(..., help="A YAML or JSON document; - reads standard input."),
    strict: bool = typer.Option(
        False, "--strict", help="Refuse to save (exit 1) while the Salesforce checks warn."
    ),
    user: str | None = UserOption,
) -> None:
    """Create or update the survey's workflow named in FILE; unchanged documents store nothing.

    Its Salesforce tasks are checked against their orgs: warnings with their fixes go to
    standard error (with --strict they refuse the save)."""
    built = container()
    actor = actor_for(built, user)
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        view = service.apply_workflow(
            built.db, actor, survey_id, service.parse_text(raw),
            checks=SaveChecks.of(built), strict=strict,
        )  # fmt: skip
    except SalesforceChecksFailed as exc:
        _warn(exc.problems, label="[red]error:[/]")
        fail(f"not saved: {len(exc.problems)} problem(s) above (--strict)")
    w = view.workflow
    _warn(view.warnings)
    console.print(f"{view.outcome}: {w.id} {w.name!r}, revision {w.revision}.", highlight=False)


@app.command()
@one_line_errors
def revisions(workflow_id: str, user: str | None = UserOption, as_json: bool = JsonOption) -> None:
    """List a workflow's revisions: who changed what, when (UTC)."""
    built = container(read_only=True)
    rows = [
        {"revision": r.revision, "created": r.created_at, "author": r.author.email,
         "enabled": r.enabled, "summary": r.summary}
        for r in service.list_revisions(built.db, actor_for(built, user), workflow_id)
    ]  # fmt: skip
    print_rows(rows, ["revision", "created", "author", "enabled", "summary"], as_json=as_json)


@app.command()
@one_line_errors
def diff(workflow_id: str, a: int, b: int, user: str | None = UserOption) -> None:
    """Show what changed from revision A to revision B, as a unified diff of their YAML."""
    built = container(read_only=True)
    text = service.diff_revisions(built.db, actor_for(built, user), workflow_id, a, b)
    if not text:
        err_console.print(f"Revisions {a} and {b} have the same document.", highlight=False)
    typer.echo(text, nl=False)


@app.command()
@one_line_errors
def test(
    workflow_id: str,
    response: str | None = typer.Option(
        None, "--response", help="The response to try it on (R_...)."
    ),
    field: list[str] = typer.Option(
        [],
        "--field",
        help="For an outbound message workflow: a field of the record, NAME=VALUE (repeat).",
    ),
    user: str | None = UserOption,
) -> None:
    """Dry run: show what the workflow would send for a response, or for an outbound message's
    record (--field Id=500... --field SuppliedEmail=...), without sending anything."""
    event_fields = None
    if field:
        pairs = [item.partition("=") for item in field]
        if any(not name or not sep for name, sep, _ in pairs):
            fail("--field takes NAME=VALUE, e.g. --field SuppliedEmail=ann@example.com")
        event_fields = {name: value for name, _, value in pairs}
    if (response is None) == (event_fields is None):
        fail("give --response R_... (a survey_response workflow) or --field NAME=VALUE ...")
    built = container()
    preview = dry_run(
        built, actor_for(built, user), workflow_id, response, event_fields=event_fields
    )
    typer.echo(json.dumps(preview, indent=2, default=str))
    if not preview["would_run"]:
        err_console.print(f"It would not run: {'; '.join(preview['why_not'])}.", highlight=False)


def _workflow_json(
    built: Container, actor: Actor, workflow_id: str, revision: int | None
) -> dict[str, object]:
    """A workflow (or one revision) for `show --json`: what it is, its warnings, its document."""
    document = yaml.safe_load(
        service.export_workflow(built.db, actor, workflow_id, revision=revision)
    )
    if revision is not None:
        found = service.get_revision(built.db, actor, workflow_id, revision)
        return {
            "id": workflow_id, "revision": found.revision, "author": found.author.email,
            "created": found.created_at, "enabled": found.enabled, "summary": found.summary,
            "document": document,
        }  # fmt: skip
    view = service.get_workflow(built.db, actor, workflow_id)
    w = view.workflow
    return {
        "id": w.id, "name": w.name, "survey_id": w.survey_id, "event": w.event_type,
        "enabled": w.enabled, "revision": w.revision, "updated": w.updated_at,
        "warnings": [str(warning) for warning in view.warnings], "document": document,
    }  # fmt: skip


def _warn(warnings: list[DocumentProblem], label: str = "[yellow]warning:[/]") -> None:
    for warning in warnings:
        if isinstance(warning, SalesforceProblem):
            err_console.print(
                f"{label} {warning.path}: {warning.message}", highlight=False, soft_wrap=True
            )
            err_console.print(f"    [dim]fix:[/] {warning.fix}", highlight=False, soft_wrap=True)
        else:
            err_console.print(f"{label} {warning}", highlight=False, soft_wrap=True)


@app.command("outbound-url")
@one_line_errors
def outbound_url(
    workflow_id: str,
    survey: str | None = typer.Option(
        None, "--survey", help="The workflow's survey (checked when given)."
    ),
    rotate: bool = typer.Option(
        False, "--rotate", help="Make a new URL; the old one stops working at once."
    ),
    user: str | None = UserOption,
) -> None:
    """Print the URL Salesforce sends this workflow's outbound messages to, and the setup steps."""
    built = container()
    actor = actor_for(built, user)
    call = service.rotate_outbound_token if rotate else service.outbound_endpoint
    endpoint = call(built.db, actor, survey, workflow_id, base_url=built.settings.base_url)
    if rotate:
        err_console.print("New URL: the old one no longer works. Update Salesforce now.")
    typer.echo(endpoint.url)
    typer.echo("")
    typer.echo("Set up Salesforce:")
    for number, step in enumerate(endpoint.steps, 1):
        typer.echo(f"{number}. {step}")
