"""`cxloop surveys`: list, import from a file (.json, .yaml, .qsf), export the content; offer,
accept or decline a transfer of ownership; allow connections for a survey's editors.

Every command acts as `--user EMAIL` (default: the only user; among several it asks), the one
option of cli/context.py; only `import` names the new survey's `--owner` instead."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import typer

from cxloop.cli.context import (
    JsonOption,
    UserOption,
    actor_for,
    admin_actor,
    console,
    container,
    fail,
    one_line_errors,
    print_rows,
)
from cxloop.db.models import Survey
from cxloop.db.uow import Database
from cxloop.domain.qsf import DEFAULT_MAX_BYTES
from cxloop.domain.statuses import TransferStatus
from cxloop.services import connection_grants as grant_service
from cxloop.services import signed_links, survey_content
from cxloop.services import surveys as survey_service
from cxloop.services import transfers as transfer_service
from cxloop.services.access import Actor

app = typer.Typer(
    help="Surveys: list, import, export, open and close; transfers, connection grants, links.",
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
    for change in report.get("behaviour_changes", []):
        console.print(f"[yellow]changed:[/] {change}", highlight=False, soft_wrap=True)
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report["imported"].items())) or "none"
    console.print(
        f"Created survey {survey.id} ({survey.name!r}, draft) owned by {actor.email}: "
        f"{report['imported_total']} questions ({counts}) on {report['pages']} page(s), "
        f"{report['embedded_data_fields']} embedded data field(s).",
        highlight=False,
        soft_wrap=True,
    )
    if report.get("embedded_data_from_link"):
        console.print(
            "  embedded data anyone may set from the link (source query): "
            + ", ".join(report["embedded_data_from_link"]),
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
    user: str | None = UserOption,
) -> None:
    """Print (or write) a survey's content document, to edit and import again."""
    if format not in ("json", "yaml"):
        fail(f"unknown format {format!r}: use json or yaml")
    built = container(read_only=True)
    state = survey_content.get_content(built.db, actor_for(built, user), survey_id)
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
    user: str | None = UserOption,
) -> None:
    """Open a survey for responses (an imported survey is a draft until opened)."""
    _change_status(survey_service.open_survey, survey_id, user, "is open (active)")


@app.command("close")
@one_line_errors
def close(
    survey_id: str,
    user: str | None = UserOption,
) -> None:
    """Close a survey: it takes no more responses; `cxloop surveys open` reopens it."""
    _change_status(survey_service.close_survey, survey_id, user, "is closed")


def _change_status(
    change: Callable[[Database, Actor, str], Survey], survey_id: str, user: str | None, now: str
) -> None:
    built = container()
    survey = change(built.db, actor_for(built, user), survey_id)
    console.print(f"Survey {survey.id} ({survey.name!r}) {now}.", highlight=False)


@app.command("list")
@one_line_errors
def list_(user: str | None = UserOption, as_json: bool = JsonOption) -> None:
    """List the surveys you can see (an admin: all of them)."""
    built = container(read_only=True)
    actor = actor_for(built, user)
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


# -- signed links and the anonymous link (trusted embedded data) -----------------------------

_DURATION_UNITS = MappingProxyType({"s": 1, "m": 60, "h": 3600, "d": 86400})


def _duration_s(text: str) -> int:
    """`7d`, `12h`, `30m`, `90s` or plain seconds, as seconds; a one-line refusal otherwise."""
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _DURATION_UNITS else (text, "s")
    if not number.isdecimal() or len(number) > 9 or int(number) == 0:
        fail(f"--expires-in {text!r} is not a duration: use e.g. 7d, 12h, 30m or 3600")
    return int(number) * _DURATION_UNITS[unit]


@app.command("signed-link")
@one_line_errors
def signed_link(
    survey_id: str,
    field: list[str] = typer.Option(
        [], "--field", help="NAME=VALUE of a declared query or personal_link field (repeatable)."
    ),
    expires_in: str = typer.Option(
        "30d", "--expires-in", help="How long the link works: 7d, 12h, 30m, 3600 (max 366d)."
    ),
    user: str | None = UserOption,
) -> None:
    """Print a signed link to SURVEY_ID carrying embedded data that nobody can change."""
    values: dict[str, str] = {}
    for item in field:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--field {item!r} is not NAME=VALUE")
        if name in values:
            fail(f"--field {name} is given twice")
        values[name] = value
    seconds = _duration_s(expires_in)
    built = container()
    link = signed_links.create_signed_link(
        built.db, actor_for(built, user), survey_id, values,
        expires_in_s=seconds, base_url=built.settings.base_url,
    )  # fmt: skip
    sys.stdout.write(link.url + "\n")
    console.print(
        f"Works until {link.expires_at:%Y-%m-%d %H:%M} UTC.", style="dim", highlight=False
    )


@app.command("rotate-link-key")
@one_line_errors
def rotate_link_key(survey_id: str, user: str | None = UserOption) -> None:
    """Replace SURVEY_ID's signing key: every signed link made before stops working."""
    built = container()
    signed_links.rotate_signing_key(built.db, actor_for(built, user), survey_id)
    console.print(
        f"Replaced the signing key of {survey_id}: older signed links no longer work.",
        highlight=False,
        soft_wrap=True,
    )


@app.command("anonymous-link")
@one_line_errors
def anonymous_link(
    survey_id: str,
    state: str = typer.Argument(..., help="on: anyone with /s/ID may answer; off: only links."),
    user: str | None = UserOption,
) -> None:
    """Turn SURVEY_ID's anonymous link on or off (off: only personal and signed links work)."""
    if state not in ("on", "off"):
        fail(f"{state!r} is neither on nor off")
    built = container()
    survey_service.update_survey(
        built.db, actor_for(built, user), survey_id, {"anonymous_link": state == "on"}
    )
    console.print(f"The anonymous link of {survey_id} is {state}.", highlight=False, soft_wrap=True)


# --- ownership: transfer offers


@app.command("transfer")
@one_line_errors
def transfer(
    survey_id: str,
    new_owner_email: str,
    keep: bool = typer.Option(
        True, "--keep/--no-keep", help="Ask to stay on as editor (the receiver decides)."
    ),
    message: str = typer.Option("", "--message", help="A note to the receiver."),
    user: str | None = UserOption,
) -> None:
    """Offer SURVEY_ID to another user (the owner); an admin moves it at once."""
    built = container()
    view = transfer_service.offer_transfer(
        built.db, actor_for(built, user), survey_id, new_owner_email,
        keep_previous_owner_as_editor=keep,
        expires_in_days=built.settings.transfer_offer_days, message=message,
    )  # fmt: skip
    offer = view.transfer
    if offer.status == TransferStatus.PENDING:
        console.print(
            f"Offered {survey_id} to {offer.to_user.email} ({offer.id}); it changes hands when "
            f"they accept (`cxloop surveys accept-transfer {offer.id}`), at the latest by "
            f"{offer.expires_at:%Y-%m-%d %H:%M} UTC.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"{survey_id} now belongs to {offer.to_user.email}.", highlight=False)
        _print_paused(view)


@app.command("transfers")
@one_line_errors
def transfers(
    direction: str = typer.Option(
        "incoming", "--direction", help="incoming, outgoing or all (an admin: everyone's)."
    ),
    status: str = typer.Option("pending", "--status", help="pending, accepted, declined, "
                               "cancelled, expired, or any."),
    user: str | None = UserOption,
    as_json: bool = JsonOption,
) -> None:  # fmt: skip
    """List transfer offers to you (or from you)."""
    built = container(read_only=True)
    found = transfer_service.list_transfers(
        built.db, actor_for(built, user), direction=direction,  # type: ignore[arg-type]
        status=None if status == "any" else status,
    )  # fmt: skip
    rows = [
        {"id": t.id, "survey": t.survey_id, "survey_name": t.survey.name,
         "from": t.from_user.email, "to": t.to_user.email,
         "keep_asked": t.keep_previous_owner_as_editor, "status": t.status,
         "expires": t.expires_at}
        for t in found
    ]  # fmt: skip
    print_rows(
        rows,
        ["id", "survey", "survey_name", "from", "to", "keep_asked", "status", "expires"],
        as_json=as_json,
    )


@app.command("accept-transfer")
@one_line_errors
def accept_transfer(
    transfer_id: str,
    keep_previous_owner: bool = typer.Option(
        False,
        "--keep-previous-owner",
        help="Let the previous owner stay on as editor (only if they asked to).",
    ),
    user: str | None = UserOption,
) -> None:
    """Take over the survey of an offer made to you."""
    built = container()
    view = transfer_service.accept_transfer(
        built.db, actor_for(built, user), transfer_id,
        keep_previous_owner_as_editor=keep_previous_owner,
    )  # fmt: skip
    offer = view.transfer
    kept = " (the previous owner stays on as editor)" if offer.kept_previous_owner else ""
    console.print(f"You now own {offer.survey_id}{kept}.", highlight=False)
    _print_paused(view)


@app.command("decline-transfer")
@one_line_errors
def decline_transfer(transfer_id: str, user: str | None = UserOption) -> None:
    """Say no to an offer made to you."""
    built = container()
    offer = transfer_service.decline_transfer(built.db, actor_for(built, user), transfer_id)
    console.print(f"Declined {offer.id}: {offer.survey_id} stays with its owner.", highlight=False)


@app.command("cancel-transfer")
@one_line_errors
def cancel_transfer(transfer_id: str, user: str | None = UserOption) -> None:
    """Take back an offer you made."""
    built = container()
    offer = transfer_service.cancel_transfer(built.db, actor_for(built, user), transfer_id)
    console.print(f"Cancelled {offer.id}.", highlight=False)


def _print_paused(view: transfer_service.TransferView) -> None:
    for paused in view.paused_tasks:
        console.print(f"  paused: {paused.reason}", highlight=False, soft_wrap=True)


# --- which of the owner's connections editors may pick


@app.command("grants")
@one_line_errors
def grants(survey_id: str, user: str | None = UserOption, as_json: bool = JsonOption) -> None:
    """List the owner's connections this survey's editors may pick."""
    built = container(read_only=True)
    rows = [
        {"connection_id": g.connection_id, "name": g.connection_name,
         "type": g.connection_type, "status": g.connection_status, "granted": g.granted_at}
        for g in grant_service.list_grants(built.db, actor_for(built, user), survey_id)
    ]  # fmt: skip
    print_rows(rows, ["connection_id", "name", "type", "status", "granted"], as_json=as_json)


@app.command("grant-connection")
@one_line_errors
def grant_connection(
    survey_id: str,
    connection: str = typer.Argument(..., help="The owner's connection, by id or name."),
    user: str | None = UserOption,
) -> None:
    """Allow this survey's editors to pick one of your connections for its tasks."""
    built = container()
    grant = grant_service.grant_connection(built.db, actor_for(built, user), survey_id, connection)
    console.print(
        f"Editors of {survey_id} may now pick the connection {grant.connection_name!r} "
        f"({grant.connection_id}).",
        highlight=False,
    )


@app.command("revoke-connection")
@one_line_errors
def revoke_connection(
    survey_id: str,
    connection: str = typer.Argument(..., help="The owner's connection, by id or name."),
    user: str | None = UserOption,
) -> None:
    """Stop this survey's editors from picking that connection (saved tasks keep running)."""
    built = container()
    grant_service.revoke_connection(built.db, actor_for(built, user), survey_id, connection)
    console.print(f"Editors of {survey_id} may no longer pick {connection!r}.", highlight=False)
