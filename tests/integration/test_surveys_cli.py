"""`cxloop surveys` and `cxloop responses`: import and export content and responses from files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cxloop.bootstrap import Container
from cxloop.cli.main import app
from tests.integration.cli_helpers import cxloop
from tests.integration.survey_helpers import GOOD_VALUES, all_types, quick_person

QSF = Path(__file__).resolve().parents[1] / "fixtures" / "qsf"


def created_id(output: str) -> str:
    return output.split("Created survey ", 1)[1].split(" ", 1)[0]


def test_surveys_import_export_and_list(cli_env: Path, container: Container) -> None:
    quick_person(container, "admin@example.com", admin=True)
    nps = cxloop("surveys", "import", str(QSF / "nps.qsf"))
    assert nps.exit_code == 0, nps.output
    assert "owned by admin@example.com: 1 questions (nps 1) on 1 page(s)" in nps.output
    unsupported = cxloop("surveys", "import", str(QSF / "unsupported.qsf"), "--name", "Odd")
    assert unsupported.exit_code == 0
    assert "skipped QID1 (SBS/SBSMatrix): side-by-side questions are not supported" in (
        unsupported.output.replace("\n", " ")
    )
    survey_id = created_id(nps.output)
    as_yaml = cxloop("surveys", "export", survey_id, "--format", "yaml")
    assert as_yaml.exit_code == 0 and "type: nps" in as_yaml.output
    target = cli_env / "nps.json"
    written = cxloop("surveys", "export", survey_id, "--output", str(target))
    assert written.exit_code == 0 and json.loads(target.read_text())["questions"][0]["qid"]
    copy = cxloop("surveys", "import", str(target), "--name", "NPS copy")
    assert copy.exit_code == 0 and "'NPS copy', draft" in copy.output
    listed = cxloop("surveys", "list")
    assert listed.exit_code == 0
    assert all(name in listed.output for name in ("NPS", "Odd", "NPS copy"))


def test_surveys_import_mistakes_are_one_line(cli_env: Path, container: Container) -> None:
    nobody = cxloop("surveys", "import", str(QSF / "nps.qsf"))
    assert nobody.exit_code == 1 and "there is no admin yet" in nobody.output
    quick_person(container, "one@example.com", admin=True)
    quick_person(container, "two@example.com", admin=True)
    several = cxloop("surveys", "import", str(QSF / "nps.qsf"))
    assert several.exit_code == 1 and "--owner EMAIL" in several.output
    owned = cxloop("surveys", "import", str(QSF / "nps.qsf"), "--owner", "two@example.com")
    assert owned.exit_code == 0 and "owned by two@example.com" in owned.output
    garbage = cli_env / "garbage.qsf"
    garbage.write_bytes(b"\x00\x01 not json")
    wrong_ext = cli_env / "survey.txt"
    wrong_ext.write_text("{}")
    for args, reason in (
        (("surveys", "import", str(garbage), "--owner", "one@example.com"),
         "The QSF file cannot be imported"),
        (("surveys", "import", str(wrong_ext), "--owner", "one@example.com"),
         "name it .json, .yaml, .yml or .qsf"),
        (("surveys", "import", str(cli_env / "missing.qsf")), "no file"),
        (("surveys", "import", str(QSF / "nps.qsf"), "--owner", "ghost@example.com"),
         "No user with email"),
        (("surveys", "export", "SV_nope", "--user", "one@example.com"), "No survey"),
        (("surveys", "export", "SV_nope", "--format", "xml"), "unknown format"),
    ):  # fmt: skip
        result = cxloop(*args)
        assert result.exit_code == 1, (args, result.output)
        assert reason in result.output and "Traceback" not in result.output


def test_every_surveys_command_takes_the_same_user_option() -> None:
    """One --user in the group: the same default (the only user) and the same help everywhere;
    only `import` names the new survey's --owner instead."""
    group = typer.main.get_command(app).commands["surveys"]
    shapes = {}
    for name, command in group.commands.items():
        option = next((p for p in command.params if "--user" in p.opts), None)
        if name == "import":
            assert option is None and any("--owner" in p.opts for p in command.params)
            continue
        assert option is not None, f"cxloop surveys {name} has no --user"
        shapes[name] = (option.default, option.required, option.help)
    assert set(shapes.values()) == {(None, False, "Act as this user (default: the only user).")}


def test_surveys_commands_act_as_the_only_user_and_ask_for_user_among_several(
    cli_env: Path, container: Container
) -> None:
    quick_person(container, "owner@example.com")
    survey_id = created_id(cxloop("surveys", "import", str(QSF / "nps.qsf"),
                                  "--owner", "owner@example.com").output)  # fmt: skip
    alone = cxloop("surveys", "open", survey_id)  # the only user: no --user needed
    assert alone.exit_code == 0 and "is open" in alone.output, alone.output
    quick_person(container, "admin@example.com", admin=True)
    for args in (("open", survey_id), ("close", survey_id), ("list",), ("export", survey_id),
                 ("rotate-link-key", survey_id), ("grants", survey_id)):  # fmt: skip
        several = cxloop("surveys", *args)
        assert several.exit_code == 1, (args, several.output)
        assert "there are several users: say which with --user EMAIL" in several.output
    closed = cxloop("surveys", "close", survey_id, "--user", "owner@example.com")
    assert closed.exit_code == 0 and "is closed" in closed.output
    listed = cxloop("surveys", "list", "--user", "admin@example.com", "--json")
    assert [row["id"] for row in json.loads(listed.output)] == [survey_id]
    stranger = cxloop("surveys", "export", survey_id, "--user", "ghost@example.com")
    assert stranger.exit_code == 1 and "No user with email" in stranger.output


def test_responses_import_reports_bad_lines_and_export_writes_them(
    cli_env: Path, container: Container
) -> None:
    quick_person(container, "admin@example.com", admin=True)
    document = cli_env / "survey.json"
    document.write_text(json.dumps(all_types()))
    survey_id = created_id(cxloop("surveys", "import", str(document)).output)
    csv_file = cli_env / "responses.csv"
    csv_file.write_text(
        "ResponseId,Finished,QID1,QID3,QID9_1,QID9_2\n"
        "R_fromTheCsvFile1,1,9,1,3,3\n"
        ",1,eleven,1,3,3\n"
        ",0,5,,,\n",
        encoding="utf-8",
    )
    result = cxloop("responses", "import", survey_id, str(csv_file))
    assert result.exit_code == 1, result.output
    assert "Read 3 row(s): 2 stored, 1 refused." in result.output
    assert "line 3: QID1: 'eleven' is not a whole number." in result.output
    lines = cli_env / "responses.jsonl"
    lines.write_text(json.dumps({"values": GOOD_VALUES}) + "\n")
    good = cxloop("responses", "import", survey_id, str(lines))
    assert good.exit_code == 0 and "1 stored, 0 refused" in good.output

    exported = cxloop("responses", "export", survey_id)
    assert exported.exit_code == 0
    assert exported.output.startswith("StartDate,EndDate,")
    assert "R_fromTheCsvFile1" in exported.output
    target = cli_env / "out.jsonl"
    written = cxloop("responses", "export", survey_id, "--format", "jsonl", "-o", str(target))
    assert written.exit_code == 0
    assert len(target.read_text().splitlines()) == 3
    for args, reason in (
        (("responses", "import", survey_id, str(cli_env / "x.xlsx")), "name it .csv or .jsonl"),
        (("responses", "import", "SV_nope", str(lines)), "No survey"),
        (("responses", "export", survey_id, "--format", "xml"), "Unknown export format"),
    ):
        failed = cxloop(*args)
        assert failed.exit_code == 1 and reason in failed.output, failed.output
