"""`cxloop surveys`: list, import from a file (.json, .yaml, .qsf), export the content."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cxloop.cli.context import (
    JsonOption,
    admin_actor,
    console,
    container,
    fail,
    one_line_errors,
    print_rows,
)
from cxloop.domain.qsf import DEFAULT_MAX_BYTES
from cxloop.services import survey_content
from cxloop.services import surveys as survey_service

app = typer.Typer(
    help="Surveys: list, import from a file, export the content, open and close.",
    no_args_is_help=True,
)


@app.command("import")
@one_line_errors
def import_(
    file: Path = typer.Argument(..., help="A .qsf export, or a .json / .yaml content document."),
    owner: str | None = typer.Option(
        None, "--owner", help="Email of the new survey's owner (default: the only admin)."
    ),
    name: str | None = typer.Option(None, "--name", help="Survey name (default: from the file)."),
) -> None:
    """Create a draft survey with the questions of FILE and print what was imported."""
    if not file.is_file():
        fail(f"no file {file}")
    if file.stat().st_size > DEFAULT_MAX_BYTES:
        fail(f"{file} is larger than {DEFAULT_MAX_BYTES // (1024 * 1024)} MB")
    built = container()
    actor = admin_actor(built, owner, only_for="the survey")
    survey, report = survey_content.create_survey_from_file(
        built.db, actor, file.name, file.read_bytes(), name=name
    )
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report["imported"].items())) or "none"
    console.print(
        f"Created survey {survey.id} ({survey.name!r}, draft) owned by {actor.email}: "
        f"{report['imported_total']} questions ({counts}) on {report['pages']} page(s), "
        f"{report['embedded_data_fields']} embedded data field(s).",
        highlight=False,
        soft_wrap=True,
    )
    for skipped in report["skipped"]:
        console.print(
            f"  skipped {skipped['element']} ({skipped['kind']}): {skipped['reason']}",
            highlight=False,
            soft_wrap=True,
        )
    for warning in report["warnings"]:
        console.print(f"  note: {warning}", highlight=False, soft_wrap=True)


@app.command("export")
@one_line_errors
def export(
    survey_id: str,
    format: str = typer.Option("json", "--format", help="json or yaml."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Print (or write) a survey's content document, to edit and import again."""
    if format not in ("json", "yaml"):
        fail(f"unknown format {format!r}: use json or yaml")
    built = container()
    state = survey_content.get_content(built.db, admin_actor(built), survey_id)
    text = state.content.to_json() + "\n" if format == "json" else state.content.to_yaml()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"Wrote {survey_id} (content version {state.version}) to {output}.")


@app.command("open")
@one_line_errors
def open_(
    survey_id: str,
    user: str | None = typer.Option(None, "--user", help="Act as this user (default: an admin)."),
) -> None:
    """Open a survey for responses (an imported survey is a draft until opened)."""
    built = container()
    survey = survey_service.open_survey(built.db, admin_actor(built, user), survey_id)
    console.print(f"Survey {survey.id} ({survey.name!r}) is open (active).", highlight=False)


@app.command("close")
@one_line_errors
def close(
    survey_id: str,
    user: str | None = typer.Option(None, "--user", help="Act as this user (default: an admin)."),
) -> None:
    """Close a survey: it takes no more responses; `cxloop surveys open` reopens it."""
    built = container()
    survey = survey_service.close_survey(built.db, admin_actor(built, user), survey_id)
    console.print(f"Survey {survey.id} ({survey.name!r}) is closed.", highlight=False)


@app.command("list")
@one_line_errors
def list_(as_json: bool = JsonOption) -> None:
    """List all surveys."""
    built = container()
    actor = admin_actor(built)
    rows = []
    cursor = None
    while True:
        page = survey_service.list_surveys(built.db, actor, limit=500, cursor=cursor)
        rows += [
            {"id": survey.id, "name": survey.name, "status": survey.status,
             "owner": survey.owner.email, "created": survey.created_at}
            for survey in page.items
        ]  # fmt: skip
        cursor = page.next_cursor
        if cursor is None:
            break
    print_rows(rows, ["id", "name", "status", "owner", "created"], as_json=as_json)
