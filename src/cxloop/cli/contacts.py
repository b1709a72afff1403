"""`cxloop contacts`: import contacts into a directory from CSV or JSON lines, list them, show one
with its history, opt one out (or back in)."""

from __future__ import annotations

from pathlib import Path

import typer

from cxloop.cli.context import (
    JsonOption,
    admin_actor,
    console,
    container,
    err_console,
    fail,
    import_format,
    import_progress,
    one_line_errors,
    print_import_report,
    print_json,
    print_rows,
)
from cxloop.db.directory_models import Contact, Directory
from cxloop.db.uow import Database
from cxloop.errors import NotFound
from cxloop.services import directory as service
from cxloop.services.access import Actor
from cxloop.services.directory import DEFAULT_DIRECTORY, IMPORT_FORMATS, ContactImportResult

app = typer.Typer(
    help="Contacts of a directory: import, list, show, opt out.", no_args_is_help=True
)

DirectoryOption = typer.Option(
    DEFAULT_DIRECTORY, "--directory", "-d", help="Directory name or id (default: Default)."
)

OwnerOption = typer.Option(
    None, "--owner", help="Email of the directory's owner (default: the only admin)."
)


@app.command("import")
@one_line_errors
def import_(
    file: Path = typer.Argument(..., help="A .csv (header row) or .jsonl file."),
    directory: str = typer.Option(
        DEFAULT_DIRECTORY, "--directory", "-d", help="Directory name (made when missing) or id."
    ),
    owner: str | None = OwnerOption,
    list_name: str | None = typer.Option(
        None, "--list", help="Also put every imported contact on this mailing list."
    ),
    match_on: str = typer.Option(
        "email", "--match-on", help="Update the contact with the same email or external_ref."
    ),
    chunk_size: int = typer.Option(500, "--chunk-size", min=1, max=10_000, hidden=True),
) -> None:
    """Add or update contacts from FILE; bad lines are listed, the good ones are stored."""
    fmt = import_format(file, IMPORT_FORMATS)
    if match_on not in service.MATCH_ON:
        fail(f"--match-on must be email or external_ref, not {match_on!r}")
    built = container()
    actor = admin_actor(built, owner, only_for="the directory")
    target = _directory(built.db, actor, directory, create_missing=True)
    size = file.stat().st_size
    try:
        raw = file.open("rb")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    # Bytes that are not UTF-8 reach the parser as lone surrogates: their lines are refused.
    with raw, import_progress(raw, size, errors="surrogateescape") as (text, show_rows):
        result = service.import_contacts(
            built.db, actor, target.id, text, fmt, match_on=match_on, mailing_list=list_name,
            chunk_size=chunk_size, on_progress=lambda so_far: show_rows(so_far.total),
        )  # fmt: skip
    _report(result, target.name, list_name)
    if result.failed and not (result.created or result.updated):
        raise typer.Exit(1)


def _report(result: ContactImportResult, directory_name: str, list_name: str | None) -> None:
    on_list = f", on list {list_name!r}" if list_name and result.mailing_list_id else ""
    print_import_report(
        f"Read {result.total} row(s) into directory {directory_name!r}{on_list}: "
        f"{result.created} created, {result.updated} updated, {result.failed} refused.",
        result.warnings,
        [f"line {problem.line}: {problem.message}" for problem in result.problems],
        result.failed,
    )


@app.command("list")
@one_line_errors
def list_(
    directory: str = DirectoryOption,
    owner: str | None = OwnerOption,
    opted_out: bool | None = typer.Option(
        None, "--opted-out/--not-opted-out", help="Only contacts who opted out (or who did not)."
    ),
    email_contains: str | None = typer.Option(None, "--email", help="Email contains this."),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    as_json: bool = JsonOption,
) -> None:
    """List a directory's contacts, oldest first."""
    built = container(read_only=True)
    actor = admin_actor(built, owner, only_for="the directory")
    target = _directory(built.db, actor, directory)
    page = service.list_contacts(
        built.db, actor, target.id, limit=limit, opted_out=opted_out, email_contains=email_contains
    )
    rows = [
        {"id": c.id, "email": c.email, "name": f"{c.first_name} {c.last_name}".strip(),
         "external_ref": c.external_ref, "opted_out": c.opted_out,
         "opted_out_at": c.opted_out_at}
        for c in page.items
    ]  # fmt: skip
    columns = ["id", "email", "name", "external_ref", "opted_out", "opted_out_at"]
    print_rows(rows, columns, as_json=as_json, title=target.name)
    if page.next_cursor:
        err_console.print(f"(more than {limit}: raise --limit, or filter with --email)")


@app.command("show")
@one_line_errors
def show(
    email_or_id: str = typer.Argument(..., metavar="EMAIL_OR_ID"),
    directory: str = DirectoryOption,
    owner: str | None = OwnerOption,
    as_json: bool = JsonOption,
) -> None:
    """A contact's fields, mailing lists, invitations and responses."""
    built = container(read_only=True)
    actor = admin_actor(built, owner, only_for="the directory")
    found = _contact(built.db, actor, email_or_id, directory)
    details = service.contact_details(built.db, actor, found.id)
    c = details.contact
    invitations = [
        {"sent": i.sent_at or i.created_at, "survey": i.survey_id, "subject": i.subject,
         "status": i.status, "status_reason": i.status_reason}
        for i in details.invitations
    ]  # fmt: skip
    responses = [
        {"recorded": r.created_at, "survey": r.survey_id, "response": r.id, "finished": r.finished}
        for r in details.responses
    ]
    if as_json:
        print_json({
            "id": c.id, "email": c.email, "first_name": c.first_name, "last_name": c.last_name,
            "phone": c.phone, "language": c.language, "external_ref": c.external_ref,
            "opted_out": c.opted_out, "opted_out_at": c.opted_out_at,
            "mailing_lists": [m.name for m in details.mailing_lists],
            "embedded_data": c.embedded_data, "invitations": invitations,
            "responses": responses,
        })  # fmt: skip
        return
    rows = [
        ("id", c.id), ("email", c.email), ("first name", c.first_name),
        ("last name", c.last_name), ("phone", c.phone), ("language", c.language),
        ("external ref", c.external_ref or ""),
        ("opted out", f"yes, {c.opted_out_at:%Y-%m-%d %H:%M} UTC" if c.opted_out_at else "no"),
        ("mailing lists", ", ".join(m.name for m in details.mailing_lists) or "none"),
    ]  # fmt: skip
    rows += [(f"embedded {name}", str(value)) for name, value in c.embedded_data.items()]
    for label, value in rows:
        console.print(f"{label + ':':<16} {value}", highlight=False, soft_wrap=True)
    console.print("")
    if invitations:
        columns = ["sent", "survey", "subject", "status", "status_reason"]
        print_rows(invitations, columns, title="Invitations")
    else:
        console.print("No invitations yet.")
    console.print("")
    if responses:
        print_rows(responses, ["recorded", "survey", "response", "finished"], title="Responses")
    else:
        console.print("No responses yet.")


@app.command("opt-out")
@one_line_errors
def opt_out(
    email_or_id: str = typer.Argument(..., metavar="EMAIL_OR_ID"),
    directory: str = DirectoryOption,
    owner: str | None = OwnerOption,
    undo: bool = typer.Option(False, "--undo", help="Opt the contact back in."),
) -> None:
    """Stop invitations to a contact (or, with --undo, allow them again)."""
    built = container()
    actor = admin_actor(built, owner, only_for="the directory")
    found = _contact(built.db, actor, email_or_id, directory)
    contact = service.set_contact_opt_out(built.db, actor, found.id, not undo)
    state = "opted out: no more invitations" if contact.opted_out else "opted in again"
    console.print(f"{contact.email} is {state}.", highlight=False, soft_wrap=True)


# --- what a command's argument names: the rule for "a name or an id", decided here


def _directory(
    db: Database, actor: Actor, name_or_id: str, *, create_missing: bool = False
) -> Directory:
    """`--directory`: the id of a directory the actor may use, else the name of one of theirs
    (made when missing, for an import). A directory's name never has the shape of an id, so
    the two cannot be confused."""
    try:
        return service.get_directory(db, actor, name_or_id)
    except NotFound:
        return service.find_directory_by_name(db, actor, name_or_id, create_missing=create_missing)


def _contact(db: Database, actor: Actor, email_or_id: str, directory: str) -> Contact:
    """`EMAIL_OR_ID`: an email (it has an @) in `--directory`, else a contact id."""
    if "@" in email_or_id:
        target = _directory(db, actor, directory)
        return service.find_contact_by_email(db, actor, target.id, email_or_id)
    return service.get_contact(db, actor, email_or_id)
