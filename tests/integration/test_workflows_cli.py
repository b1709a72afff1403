"""`cxloop workflows`: apply, list, show, export, revisions and diff against a real database."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cxloop.bootstrap import Container
from cxloop.cli.main import app as cli
from cxloop.services import survey_content, surveys, users
from cxloop.services.access import Actor
from tests.integration.test_workflows_api import CONTENT, EMAIL_WORKFLOW

runner = CliRunner()


@pytest.fixture
def survey_id(container: Container, monkeypatch: pytest.MonkeyPatch) -> str:
    """A survey with content, owned by alice and shared with bob as viewer; the CLI's settings
    point at the same database."""
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(container.settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", container.settings.effective_database_url)
    alice = Actor.of(users.create_user(container.db, "alice@example.com", None))
    users.create_user(container.db, "bob@example.com", None)
    survey = surveys.create_survey(container.db, alice, "Support NPS")
    survey_content.put_content(container.db, alice, survey.id, CONTENT)
    surveys.add_collaborator(container.db, alice, survey.id, "bob@example.com", "viewer")
    return survey.id


def cxloop(*args: str | Path, user: str = "alice@example.com"):
    # wide enough that tables do not wrap what the assertions look for
    return runner.invoke(
        cli, ["workflows", *map(str, args), "--user", user], env={"COLUMNS": "200"}
    )


def write(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_apply_export_round_trip_with_revisions_and_diff(survey_id: str, tmp_path: Path) -> None:
    source = write(tmp_path / "alert.yaml", EMAIL_WORKFLOW)
    created = cxloop("apply", survey_id, source)
    assert created.exit_code == 0, created.output
    assert created.output.startswith("created: WF_") and "revision 1." in created.output
    workflow_id = created.output.split()[1]
    assert cxloop("apply", survey_id, source).output.startswith("unchanged: ")
    assert workflow_id in cxloop("list", survey_id).output

    exported = tmp_path / "exported.yaml"
    assert cxloop("export", workflow_id, "--output", exported).exit_code == 0
    assert yaml.safe_load(exported.read_text()) == EMAIL_WORKFLOW
    assert cxloop("apply", survey_id, exported).output.startswith("unchanged: ")
    assert cxloop("export", workflow_id).stdout.encode() == exported.read_bytes()

    changed = copy.deepcopy(EMAIL_WORKFLOW)
    changed["tasks"][0]["subject"] = "Detractor!"
    updated = cxloop("apply", survey_id, write(tmp_path / "alert.yaml", changed))
    assert updated.output.startswith(f"updated: {workflow_id}") and "revision 2." in updated.output

    revisions = cxloop("revisions", workflow_id).output
    assert "created" in revisions and "changed task alert" in revisions
    assert revisions.count("alice@example.com") == 2
    diff = cxloop("diff", workflow_id, "1", "2").stdout
    assert "-  subject: Detractor on case ${e://Field/CaseId}\n+  subject: Detractor!\n" in diff
    shown = cxloop("show", workflow_id, user="bob@example.com")
    assert shown.exit_code == 0 and shown.stdout.startswith(f"# {workflow_id} 'Detractor alert'")
    assert "subject: Detractor!" in shown.stdout
    old = cxloop("show", workflow_id, "--revision", "1").stdout
    assert old.startswith(f"# {workflow_id} revision 1 by alice@example.com")
    assert old.split("\n", 1)[1].encode() == exported.read_bytes()


def test_errors_are_one_line_and_exit_1(survey_id: str, tmp_path: Path) -> None:
    bad_reference = copy.deepcopy(EMAIL_WORKFLOW)
    bad_reference["tasks"][0]["subject"] = "${q://QID9/QuestionText}"
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    failures = {
        "cannot read": cxloop("apply", survey_id, tmp_path / "missing.yaml"),
        "not valid YAML or JSON": cxloop("apply", survey_id, tmp_path / "broken.yaml"),
        "tasks[0].subject: task 'alert', subject, character 1: ${q://QID9/QuestionText}: "
        "QID9 does not exist": cxloop("apply", survey_id, write(tmp_path / "q.yml", bad_reference)),
        "You may only view survey": cxloop(
            "apply", survey_id, write(tmp_path / "ok.yaml", EMAIL_WORKFLOW), user="bob@example.com"
        ),
        "No workflow 'WF_nope'": cxloop("show", "WF_nope"),
        "No survey 'SV_nope'": cxloop("list", "SV_nope"),
    }
    for message, result in failures.items():
        assert result.exit_code == 1, (message, result.output)
        assert message in result.output, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    workflow_id = cxloop("apply", survey_id, tmp_path / "ok.yaml").output.split()[1]
    no_revision = cxloop("diff", workflow_id, "1", "5")
    assert no_revision.exit_code == 1 and "has no revision 5" in no_revision.output
    several = runner.invoke(cli, ["workflows", "list", survey_id])
    assert several.exit_code == 1 and "several users" in several.output
