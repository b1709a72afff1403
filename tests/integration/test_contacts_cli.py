"""`cxloop contacts`: import a file with a progress bar and a summary, list, show, opt out."""

from __future__ import annotations

import json
from pathlib import Path

from cxloop.bootstrap import Container
from cxloop.services import directory, users
from cxloop.services.access import Actor
from tests.integration.cli_helpers import cxloop, flat
from tests.integration.survey_helpers import quick_person


def test_import_list_show_and_opt_out(cli_env: Path, container: Container) -> None:
    quick_person(container, "admin@example.com", admin=True)
    people = cli_env / "people.csv"
    people.write_bytes(
        b"\xef\xbb\xbfEmail,First Name,Last Name,ExternalDataReference,Plan\r\n"
        b"ann@example.com,Ann,Lee,003A,gold\r\n"
        b"bad-address,Bad,Row,,\r\n"
        b"bo@example.com,Bo\r\nBcc: x@evil.io,Stone,003B,\r\n"  # a bare line break: 2 rows
        b"dee@example.com,D\xe9e,,,\r\n"
        b'"eve@example.com","Eve\nMulti",,003E,silver\r\n'
    )
    imported = cxloop("contacts", "import", str(people), "--list", "Spring", "--chunk-size", "2")
    assert imported.exit_code == 0, imported.output
    out = flat(imported.output)
    assert "Read 6 row(s) into directory 'Default', on list 'Spring': 3 created, 0 updated, " in out
    assert "line 3: 'bad-address' is not an email address" in out
    assert "line 5:" in out and "line 6: The line is not UTF-8 text" in out

    again = cli_env / "again.jsonl"
    again.write_text(
        '{"email": "ann.new@example.com", "external_ref": "003A", "Plan": "platinum"}\nnot json\n'
    )
    updated = cxloop("contacts", "import", str(again), "--match-on", "external_ref")
    assert updated.exit_code == 0, updated.output
    assert "0 created, 1 updated, 1 refused" in flat(updated.output)
    assert "line 2: Not valid JSON" in flat(updated.output)

    listed = cxloop("contacts", "list")
    assert listed.exit_code == 0, listed.output
    assert all(e in listed.output for e in ("ann.new@example.com", "bo@example.com", "eve@"))
    shown = cxloop("contacts", "show", "ANN.NEW@example.com")
    assert shown.exit_code == 0, shown.output
    out = flat(shown.output)
    assert "external ref: 003A" in out and "embedded Plan: platinum" in out
    assert "mailing lists: Spring" in out and "No invitations yet." in out

    opted = cxloop("contacts", "opt-out", "eve@example.com")
    assert opted.exit_code == 0 and "opted out" in opted.output
    assert "eve@example.com" in cxloop("contacts", "list", "--opted-out").output
    assert "ann.new" not in cxloop("contacts", "list", "--opted-out").output
    undone = cxloop("contacts", "opt-out", "eve@example.com", "--undo")
    assert undone.exit_code == 0 and "opted in again" in undone.output

    # one-line reasons and exit 1 when nothing can be done
    empty = cli_env / "empty.csv"
    empty.write_bytes(b"")
    for args, reason in (
        (("import", str(empty)), "The file is empty"),
        (("import", str(cli_env / "missing.csv")), "no file"),
        (("import", str(cli_env / "people.xlsx")), "cannot tell the format"),
        (("import", str(people), "--match-on", "phone"), "--match-on must be"),
        (("show", "nobody@example.com"), "has no contact nobody@example.com"),
        (("show", "x@example.com", "--directory", "Nope"), "No directory 'Nope'"),
        (("list", "--owner", "ghost@example.com"), "No user with email"),
    ):
        failed = cxloop("contacts", *args)
        assert failed.exit_code == 1, (args, failed.output)
        assert reason in flat(failed.output), (args, failed.output)

    only_bad = cli_env / "bad.csv"
    only_bad.write_text("email\nnot-an-email\n")
    refused = cxloop("contacts", "import", str(only_bad), "--directory", "Other")
    assert refused.exit_code == 1 and "0 created, 0 updated, 1 refused" in flat(refused.output)


def test_several_admins_must_say_whose_directory(cli_env: Path, container: Container) -> None:
    quick_person(container, "one@example.com", admin=True)
    quick_person(container, "two@example.com", admin=True)
    listed = cxloop("contacts", "list")
    assert listed.exit_code == 1 and "--owner EMAIL" in flat(listed.output)
    mine = cxloop("contacts", "list", "--owner", "two@example.com")
    assert mine.exit_code == 1 and "No directory 'Default'" in flat(mine.output)


def admin_of(container: Container) -> Actor:
    admin = users.get_user_by_email(container.db, "admin@example.com")
    return Actor.of(admin)


def test_a_directory_is_named_by_id_or_name_and_a_contact_by_email_or_id(
    cli_env: Path, container: Container
) -> None:
    quick_person(container, "admin@example.com", admin=True)
    people = cli_env / "people.csv"
    people.write_text("email,first name\nann@example.com,Ann\n")
    assert cxloop("contacts", "import", str(people), "-d", "Partners").exit_code == 0
    listed = cxloop("contacts", "list", "-d", "Partners", "--json")
    assert listed.exit_code == 0, listed.output
    [ann] = json.loads(listed.output)
    [partners] = [
        d for d in directory.list_directories(container.db, admin_of(container))
        if d.name == "Partners"
    ]  # fmt: skip
    # The id of a directory, or its name: an id is never a name (names of that shape are refused).
    by_id = cxloop("contacts", "show", "ann@example.com", "-d", partners.id, "--json")
    assert by_id.exit_code == 0, by_id.output
    by_contact_id = cxloop("contacts", "show", ann["id"], "--json")
    assert json.loads(by_contact_id.output)["email"] == "ann@example.com"
    id_shaped = cli_env / "odd.csv"
    id_shaped.write_text("email\nbo@example.com\n")
    refused = cxloop("contacts", "import", str(id_shaped), "-d", "DR_abcdefghijklmno")
    assert refused.exit_code != 0 and "reads as a directory id" in flat(refused.output)
    unknown = cxloop("contacts", "show", "CT_nobody", "-d", "Partners")
    assert unknown.exit_code != 0 and "No contact 'CT_nobody'" in flat(unknown.output)
