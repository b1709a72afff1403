"""`cxloop responses`: import responses from a CSV or JSON-lines file, export them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from cxloop.cli.context import (
    admin_actor,
    console,
    container,
    fail,
    import_format,
    import_progress,
    one_line_errors,
    print_import_report,
)
from cxloop.process import tune_garbage_collector
from cxloop.services import responses as response_service
from cxloop.services.responses import IMPORT_FORMATS, ImportResult

app = typer.Typer(help="Responses: import from CSV or JSON lines, export.", no_args_is_help=True)


@app.command("import")
@one_line_errors
def import_(
    survey_id: str,
    file: Path = typer.Argument(..., help="A .csv (the reference product's layout) or .jsonl."),
    user: str | None = typer.Option(None, "--user", help="Act as this user (default: an admin)."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=10_000, hidden=True),
) -> None:
    """Import responses (source=import); bad lines are listed and exit 1, good ones are kept."""
    fmt = import_format(file, IMPORT_FORMATS)
    tune_garbage_collector()  # a long import: as the server would take it in
    built = container()
    actor = admin_actor(built, user)
    size = file.stat().st_size
    with file.open("rb") as raw, import_progress(raw, size) as (text, show_rows):
        try:
            result = response_service.import_file(
                built.db, actor, survey_id, text, fmt, batch_size=batch_size,
                on_progress=lambda so_far: show_rows(so_far.total),
            )  # fmt: skip
        except UnicodeDecodeError as exc:
            fail(f"{file.name} is not UTF-8 text (byte {exc.start} of a block cannot be read)")
    _report(result)
    if result.failed:
        raise typer.Exit(1)


def _report(result: ImportResult) -> None:
    print_import_report(
        f"Read {result.total} row(s): {result.stored} stored, {result.failed} refused.",
        result.warnings,
        [
            f"line {row.position}: " + "; ".join(_reason(problem) for problem in row.problems)
            for row in result.bad_rows
        ],
        result.failed,
    )


def _reason(problem: dict[str, Any]) -> str:
    qid, message = problem.get("qid"), problem["message"]
    return f"{qid}: {message}" if qid and not message.startswith(qid) else message


@app.command("export")
@one_line_errors
def export(
    survey_id: str,
    format: str = typer.Option("csv", "--format", help="csv, json or jsonl."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
    user: str | None = typer.Option(None, "--user", help="Act as this user (default: an admin)."),
) -> None:
    """Write a survey's responses as CSV (the reference product's layout), JSON or JSON lines."""
    built = container(read_only=True)
    chunks = response_service.export_responses(
        built.db, admin_actor(built, user), survey_id, format
    )
    if output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        for chunk in chunks:
            handle.write(chunk)
    console.print(f"Wrote the responses of {survey_id} to {output}.")
