"""The doctor finds each problem the emulator can be set up to have, and none on a good setup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cxloop.bootstrap import Container
from cxloop.cli.main import app as cli
from cxloop.domain.salesforce_task import SalesforceTaskSpec
from cxloop.services import doctor
from cxloop.services.access import Actor
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import link, org

GOOD_TASK = {
    "name": "Upsert survey response",
    "object": "Survey_Response__c",
    "action": "upsert",
    "key_field": "Response_ID__c",
    "mappings": [
        {"field": "NPS_Score__c", "value": "${q://QID1/ChoiceGroup/SelectedChoices}",
         "source_type": "number"},
        {"field": "Comment__c", "value": "${q://QID2/ChoiceTextEntryValue}"},
        {"field": "Case__c", "value": "${e://Field/CaseId}"},
    ],
}  # fmt: skip


@pytest.fixture
def integration(web: TestClient, emulator: EmulatorServer, owner: Person) -> dict:
    """A connection as the limited integration user of the production-like org."""
    emulator.control.patch("/settings", json={"auto_login": "integration@example.com"})
    return link(web, owner, "Acme", org(emulator, "acme")["login_url"])


def run(linked: Container, owner: Person, connection: dict, *tasks: dict) -> doctor.DoctorReport:
    actor = Actor(id=owner.id, email=owner.email, is_admin=False)
    specs = [SalesforceTaskSpec.model_validate(task) for task in tasks]
    return doctor.run(linked, actor, connection["id"], tasks=specs)


def errors(report: doctor.DoctorReport) -> dict[str, str]:
    return {f.check: f"{f.message} | {f.fix}" for f in report.findings if f.level == "error"}


def test_a_correct_setup_has_no_findings(
    linked: Container, owner: Person, integration: dict
) -> None:
    report = run(linked, owner, integration, GOOD_TASK)
    assert report.ok, errors(report)
    assert {f.check for f in report.findings} >= {"refresh", "api_access", "api_requests", "task"}


def test_api_access_off_is_found(
    linked: Container, owner: Person, integration: dict, emulator: EmulatorServer
) -> None:
    emulator.control.patch("/users/integration@example.com", json={"api_enabled": False})
    found = errors(run(linked, owner, integration, GOOD_TASK))
    assert "API_CURRENTLY_DISABLED" in found["api_access"]
    # An emulator connection: the fix is the emulator's control API call, not Setup.
    assert (
        f"`curl -X PATCH {emulator.base_url}/__emulator__/users/integration@example.com "
        """-d '{"api_enabled": true}'`""" in found["api_access"]
    )


def test_a_read_only_field_is_found(linked: Container, owner: Person, integration: dict) -> None:
    task = {"object": "Case", "action": "update", "key_field": "Id",
            "mappings": [{"field": "Priority", "value": "High", "constant": True}]}  # fmt: skip
    found = errors(run(linked, owner, integration, task))
    assert set(found) == {"field_not_writable"}
    assert "Case.Priority is read-only" in found["field_not_writable"]
    assert "`Priority: edit`" in found["field_not_writable"]
    assert "profiles: 'cxloop Integration' → fields → Case" in found["field_not_writable"]


def test_an_unmapped_required_field_is_found(
    linked: Container, owner: Person, integration: dict
) -> None:
    task = {"object": "Contact", "action": "insert",
            "mappings": [{"field": "Email", "value": "${e://Field/Email}"}]}  # fmt: skip
    found = errors(run(linked, owner, integration, task))
    assert set(found) == {"required_field_unmapped"}
    assert "LastName" in found["required_field_unmapped"]


def test_a_record_type_not_available_to_the_user_is_found(
    linked: Container, owner: Person, integration: dict
) -> None:
    task = {"object": "Case", "action": "update", "record_type": "Internal",
            "mappings": [{"field": "Subject", "value": "x"}]}  # fmt: skip
    found = errors(run(linked, owner, integration, task))
    assert set(found) == {"record_type_not_available"}
    assert "Internal" in found["record_type_not_available"]


def test_a_bad_picklist_value_is_found(linked: Container, owner: Person, integration: dict) -> None:
    task = GOOD_TASK | {
        "mappings": [{"field": "Sentiment__c", "value": "Ecstatic", "constant": True}]
    }
    found = errors(run(linked, owner, integration, task))
    assert set(found) == {"bad_picklist_value"}
    assert "Positive, Neutral, Negative" in found["bad_picklist_value"]
    assert "refuse" in found["bad_picklist_value"]


def test_a_value_outside_an_unrestricted_picklist_is_a_warning(
    linked: Container, owner: Person, integration: dict
) -> None:
    task = {"object": "Case", "action": "update",
            "mappings": [{"field": "Status", "value": "Bogus", "constant": True}]}  # fmt: skip
    report = run(linked, owner, integration, task)
    assert report.ok
    assert [f.check for f in report.findings if f.level == "warning"] == ["bad_picklist_value"]


def test_a_misspelled_field_hint_names_the_near_field_once_suffixed(
    linked: Container, owner: Person, integration: dict
) -> None:
    task = {"object": "Case", "action": "update",
            "mappings": [{"field": "Descripton__c", "value": "x"}]}  # fmt: skip
    [finding] = [f for f in run(linked, owner, integration, task).findings if f.level == "error"]
    assert finding.check == "field_missing" and finding.field == "Descripton__c"
    assert "__c__c" not in finding.fix
    assert finding.fix.startswith(
        "Did you mean Description? Check the spelling of the API name; if Case.Descripton__c "
        "exists, remove `Descripton__c: hidden` under profiles: 'cxloop Integration' → fields "
        "→ Case in the emulator's org file;"
    )


def test_other_task_problems_are_found(linked: Container, owner: Person, integration: dict) -> None:
    tasks = [
        {"object": "Nope__c", "action": "insert"},
        {"object": "Opportunity", "action": "insert", "mappings": []},
        {"object": "Contact", "action": "upsert", "key_field": "Email",
         "mappings": [{"field": "LastName", "value": "x"}]},
        {"object": "Contact", "action": "update",
         "mappings": [{"field": "Birthdate", "value": "2020-01-01", "constant": True}]},
        {"object": "Survey_Response__c", "action": "insert",
         "mappings": [{"field": "NPS_Score__c", "value": "ten", "constant": True}]},
    ]  # fmt: skip
    found = {f.check for f in run(linked, owner, integration, *tasks).findings}
    assert {
        "object_missing", "object_permission", "key_not_external_id", "field_missing",
        "bad_constant",
    } <= found  # fmt: skip


def test_the_api_endpoint_reports_findings(
    web: TestClient, owner: Person, integration: dict, emulator: EmulatorServer
) -> None:
    url = f"/api/v1/connections/{integration['id']}/doctor"
    reply = web.get(url, headers=owner.headers)
    assert reply.status_code == 200
    fine = reply.json()
    assert fine["ok"] is True and fine["connection_id"] == integration["id"]
    assert [(f["level"], f["check"]) for f in fine["findings"]] == [
        ("ok", "refresh"), ("ok", "api_access"), ("ok", "api_requests"),
    ]  # fmt: skip
    assert all(f["message"] for f in fine["findings"])
    emulator.control.patch("/users/integration@example.com", json={"api_enabled": False})
    broken = web.get(url, headers=owner.headers).json()
    assert broken["ok"] is False
    (error,) = [f for f in broken["findings"] if f["level"] == "error"]
    assert error["check"] == "api_access" and "API_CURRENTLY_DISABLED" in error["message"]
    # An emulator connection: the fix is the emulator's control API call, not Setup.
    assert (
        """/__emulator__/users/integration@example.com -d '{"api_enabled": true}'"""
        in (error["fix"])
    )


def test_cli_doctor_exits_1_on_errors_and_0_when_fine(
    linked: Container, owner: Person, integration: dict, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    settings = linked.settings
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("CXLOOP_SALESFORCE_CLIENT_ID", settings.salesforce_client_id)
    monkeypatch.setenv(
        "CXLOOP_SALESFORCE_CLIENT_SECRET", settings.salesforce_client_secret.get_secret_value()
    )
    monkeypatch.setenv("CXLOOP_SALESFORCE_EXTRA_HOSTS", json.dumps(settings.salesforce_extra_hosts))
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(GOOD_TASK))
    bad.write_text(yaml.safe_dump({"object": "Contact", "action": "insert"}))
    runner = CliRunner()
    fine = runner.invoke(cli, ["connections", "doctor", "Acme", "--task", str(good)])
    assert fine.exit_code == 0, fine.output
    broken = runner.invoke(cli, ["connections", "doctor", "Acme", "--task", str(bad)])
    assert broken.exit_code == 1 and "LastName" in broken.output and "fix:" in broken.output
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("object: [unclosed")
    refused = runner.invoke(cli, ["connections", "doctor", "Acme", "--task", str(garbage)])
    assert refused.exit_code == 1 and "not valid YAML" in refused.output


def test_with_a_survey_the_doctor_checks_its_workflow_tasks(
    linked: Container, owner: Person, integration: dict, web: TestClient
) -> None:
    from cxloop.services import survey_content, surveys, workflows

    actor = Actor(id=owner.id, email=owner.email, is_admin=False)
    survey = surveys.create_survey(linked.db, actor, "NPS")
    survey_content.put_content(
        linked.db, actor, survey.id,
        {"format_version": 1, "embedded_data": [{"name": "Email"}],
         "questions": [{"qid": "QID1", "type": "nps", "text": "Score?"}]},
    )  # fmt: skip
    document = {
        "name": "New contact",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [
            {"id": "contact", "type": "salesforce", "connection": "Acme", "object": "Contact",
             "action": "insert", "mappings": [{"field": "Email", "value": "${e://Field/Email}"}]},
        ],
    }  # fmt: skip
    workflows.create_workflow(linked.db, actor, survey.id, document)
    report = doctor.run(linked, actor, integration["id"], survey_id=survey.id)
    found = errors(report)
    assert set(found) == {"required_field_unmapped"}
    assert "New contact" in found["required_field_unmapped"]
    assert "LastName" in found["required_field_unmapped"]
    reply = web.get(
        f"/api/v1/connections/{integration['id']}/doctor",
        params={"survey_id": survey.id},
        headers=owner.headers,
    )
    assert reply.status_code == 200 and reply.json()["ok"] is False
