"""Saving a workflow checks its Salesforce tasks against the org (the real emulator): warnings
with the doctor's fixes, strict saves refused, an unreachable org noted, describes cached."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cxloop.bootstrap import Container
from cxloop.cli.main import app as cli
from cxloop.db.models import Connection as ConnectionRow
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import link, org

YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def survey(
    linked: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> dict[str, Any]:
    """A survey with a connection "Acme" as the emulator's limited integration user."""
    emulator.control.patch("/settings", json={"auto_login": "integration@example.com"})
    connection = link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    created = web.post("/api/v1/surveys", json={"name": "Support NPS"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    survey_id = created.json()["id"]
    content = {
        "format_version": 1,
        "embedded_data": [{"name": "CaseId"}],
        "questions": [{"qid": "QID1", "type": "text_entry", "text": "Why?"}],
    }
    put = web.put(f"/api/v1/surveys/{survey_id}/content", json=content, headers=owner.headers)
    assert put.status_code == 200, put.text
    return {"id": survey_id, "connection": connection}


def case_workflow(*mappings: tuple[str, str], action: str = "update") -> str:
    """A workflow that writes a Case with these (field, value) mappings, as YAML."""
    task: dict[str, Any] = {
        "id": "case", "type": "salesforce", "connection": "Acme", "object": "Case",
        "action": action,
        "mappings": [{"field": f, "value": v} for f, v in mappings],
    }  # fmt: skip
    if action == "update":
        task |= {"key_field": "Id", "key_value": "${e://Field/CaseId}"}
    event = {"type": "survey_response", "when": ["created"]}
    return yaml.safe_dump({"name": "Case follow-up", "event": event, "tasks": [task]})


MISSPELLED_AND_READ_ONLY = case_workflow(
    ("Descripton__c", "${q://QID1/ChoiceTextEntryValue}"), ("Priority", "High")
)
FIXED = case_workflow(("Description", "${q://QID1/ChoiceTextEntryValue}"))


def apply(web: TestClient, owner: Person, survey_id: str, text: str, **params: str) -> Any:
    return web.post(
        f"/api/v1/surveys/{survey_id}/workflows/apply",
        content=text,
        params=params,
        headers=owner.headers | YAML,
    )


def by_code(warnings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {w["code"]: w for w in warnings}


def api_calls(emulator: EmulatorServer) -> int:
    return emulator.control.get("/api_usage").json()["acme"]["used"]


def test_a_misspelled_and_a_read_only_field_warn_with_fixes_until_fixed(
    web: TestClient, owner: Person, survey: dict[str, Any]
) -> None:
    saved = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY)
    assert saved.status_code == 201, saved.text
    found = by_code(saved.json()["warnings"])
    assert set(found) == {"field_missing", "field_not_writable"}
    missing, read_only = found["field_missing"], found["field_not_writable"]
    assert missing["task"] == "case" and missing["field"] == "Descripton__c"
    assert missing["path"] == "tasks[0].mappings[0].field"
    assert missing["fix"].startswith("Did you mean Description? Check the spelling")
    assert "__c__c" not in missing["fix"]
    assert read_only["field"] == "Priority" and read_only["path"] == "tasks[0].mappings[1].field"
    assert "Case.Priority is read-only" in read_only["message"]
    # The emulator has no Setup: the fix names its org file, the user's profile and the key.
    assert "emulator's org file" in read_only["fix"]
    assert "`Priority: edit`" in read_only["fix"]
    assert "profiles: 'cxloop Integration' → fields → Case" in read_only["fix"]
    assert "Setup" not in read_only["fix"]
    # Saved and enabled all the same: a workflow can be prepared before Salesforce is.
    workflow = web.get(
        f"/api/v1/surveys/{survey['id']}/workflows/{saved.json()['id']}", headers=owner.headers
    ).json()
    assert workflow["enabled"] is True

    fixed = apply(web, owner, survey["id"], FIXED)
    assert fixed.status_code == 200 and fixed.json()["outcome"] == "updated", fixed.text
    assert fixed.json()["warnings"] == []


def test_an_object_the_user_may_not_create_warns_with_the_emulator_fix(
    web: TestClient, owner: Person, survey: dict[str, Any]
) -> None:
    text = case_workflow(("Subject", "From the survey"), action="insert")
    saved = web.post(
        f"/api/v1/surveys/{survey['id']}/workflows", content=text, headers=owner.headers | YAML
    )
    assert saved.status_code == 201, saved.text
    [warning] = saved.json()["warnings"]
    assert warning["code"] == "object_permission" and warning["path"] == "tasks[0].action"
    assert "may not insert Case records (no Create permission on Case)" in warning["message"]
    assert warning["fix"].startswith(
        "In the emulator's org file, add create under profiles: 'cxloop Integration' → objects "
        "→ Case (`Case: [read, create, edit]`)"
    )


def test_a_missing_required_field_and_a_bad_picklist_value_warn(
    web: TestClient, owner: Person, survey: dict[str, Any]
) -> None:
    document = {
        "name": "Contact and response",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [
            {"id": "contact", "type": "salesforce", "connection": "Acme", "object": "Contact",
             "action": "insert", "mappings": [{"field": "Email", "value": "a@example.com"}]},
            {"id": "response", "type": "salesforce", "connection": "Acme",
             "object": "Survey_Response__c", "action": "upsert", "key_field": "Response_ID__c",
             "mappings": [
                 {"field": "Response_ID__c", "value": "${e://Field/ResponseID}"},
                 {"field": "Sentiment__c", "value": "Ecstatic", "constant": True},
             ]},
        ],
    }  # fmt: skip
    saved = apply(web, owner, survey["id"], yaml.safe_dump(document))
    assert saved.status_code == 201, saved.text
    found = by_code(saved.json()["warnings"])
    assert set(found) == {"required_field_unmapped", "bad_picklist_value"}
    required, picklist = found["required_field_unmapped"], found["bad_picklist_value"]
    assert (required["task"], required["field"], required["path"]) == (
        "contact", "LastName", "tasks[0].mappings",
    )  # fmt: skip
    assert (picklist["task"], picklist["field"], picklist["path"]) == (
        "response", "Sentiment__c", "tasks[1].mappings[1].field",
    )  # fmt: skip
    assert "Positive, Neutral, Negative" in picklist["message"]
    assert (
        "add 'Ecstatic' to objects → Survey_Response__c → fields → Sentiment__c → values"
        in (picklist["fix"])
    )


def test_an_editor_is_told_what_to_fix_but_not_whose_login_it_is(
    linked: Container, web: TestClient, owner: Person, survey: dict[str, Any],
    make_person_in: Callable[[Container, str], Person],
) -> None:  # fmt: skip
    editor = make_person_in(linked, "editor@example.com")
    added = web.post(
        f"/api/v1/surveys/{survey['id']}/collaborators",
        json={"email": editor.email, "role": "editor"},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text
    granted = web.put(  # editors pick only connections the owner allowed for the survey
        f"/api/v1/surveys/{survey['id']}/connection-grants/{survey['connection']['id']}",
        headers=owner.headers,
    )
    assert granted.status_code == 200, granted.text
    with linked.db.uow() as uow:  # as if it were a real org: Setup fixes name the user
        uow.session.get(ConnectionRow, survey["connection"]["id"]).type = "custom"
        uow.commit()
    as_owner = apply(web, owner, survey["id"], case_workflow(("Subject", "x"), action="insert"))
    assert "integration@example.com" in json.dumps(as_owner.json()["warnings"])
    text = case_workflow(("Descripton__c", "x"), action="insert")
    saved = apply(web, editor, survey["id"], text)
    assert saved.status_code == 200, saved.text
    assert {w["code"] for w in saved.json()["warnings"]} == {"object_permission", "field_missing"}
    assert "integration@example.com" not in json.dumps(saved.json()["warnings"])


def test_strict_refuses_with_every_problem_and_stores_nothing(
    web: TestClient, owner: Person, survey: dict[str, Any]
) -> None:
    refused = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY, strict="true")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "salesforce_checks_failed"
    assert {d["code"] for d in error["details"]} == {"field_missing", "field_not_writable"}
    assert all(d["fix"] for d in error["details"])
    listed = web.get(f"/api/v1/surveys/{survey['id']}/workflows", headers=owner.headers)
    assert listed.json() == []
    accepted = apply(web, owner, survey["id"], FIXED, strict="true")
    assert accepted.status_code == 201 and accepted.json()["warnings"] == []
    update = web.put(
        f"/api/v1/surveys/{survey['id']}/workflows/{accepted.json()['id']}",
        content=MISSPELLED_AND_READ_ONLY,
        params={"strict": "true"},
        headers=owner.headers | YAML,
    )
    assert update.status_code == 422 and update.json()["error"]["code"] == (
        "salesforce_checks_failed"
    )
    bad_flag = apply(web, owner, survey["id"], FIXED, strict="perhaps")
    assert bad_flag.status_code == 422 and "strict" in bad_flag.text


def test_a_connection_that_needs_a_new_login_is_not_checked_and_strict_refuses_it(
    linked: Container, web: TestClient, owner: Person, survey: dict[str, Any],
    emulator: EmulatorServer,
) -> None:  # fmt: skip
    with linked.db.uow() as uow:
        row = uow.session.get(ConnectionRow, survey["connection"]["id"])
        row.status, row.status_reason = "needs_reauth", "the refresh token was revoked"
        uow.commit()
    before = api_calls(emulator)
    saved = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY)
    assert saved.status_code == 201, saved.text
    [warning] = saved.json()["warnings"]
    assert warning["path"] == "tasks[0].connection" and "needs a new login" in warning["message"]
    assert api_calls(emulator) == before
    refused = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY, strict="true")
    assert refused.status_code == 422
    [detail] = refused.json()["error"]["details"]
    assert detail["path"] == "tasks[0].connection"


def test_document_problems_come_first_and_salesforce_is_not_asked(
    web: TestClient, owner: Person, survey: dict[str, Any], emulator: EmulatorServer
) -> None:
    document = yaml.safe_load(MISSPELLED_AND_READ_ONLY)
    document["tasks"][0]["mappings"][0]["value"] = "${q://QID9/ChoiceTextEntryValue}"
    document["event"]["when"] = ["sometimes"]
    before = api_calls(emulator)
    refused = apply(web, owner, survey["id"], yaml.safe_dump(document), strict="true")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_input"
    assert all(d.get("code") is None for d in error["details"])
    assert api_calls(emulator) == before


def test_an_unreachable_org_saves_with_a_could_not_check_warning(
    web: TestClient, owner: Person, survey: dict[str, Any], emulator: EmulatorServer
) -> None:
    emulator.control.post("/faults", json={"org": "acme", "mode": "drop"}).raise_for_status()
    saved = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY)
    assert saved.status_code == 201, saved.text
    [warning] = saved.json()["warnings"]
    assert warning["code"] == "not_checked" and warning["task"] == "case"
    assert warning["message"].startswith("could not check against Salesforce: ")
    refused = apply(web, owner, survey["id"], FIXED, strict="true")
    assert refused.status_code == 422
    assert [d["code"] for d in refused.json()["error"]["details"]] == ["not_checked"]
    emulator.control.delete("/faults").raise_for_status()
    checked = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY)
    assert {w["code"] for w in checked.json()["warnings"]} == {
        "field_missing", "field_not_writable",
    }  # fmt: skip


def test_a_slow_org_is_given_up_on_quickly(
    linked: Container, web: TestClient, owner: Person, survey: dict[str, Any],
    emulator: EmulatorServer,
) -> None:  # fmt: skip
    linked.settings.salesforce_timeout_s = 0.2
    emulator.control.post("/faults", json={"org": "acme", "latency_ms": 700}).raise_for_status()
    saved = apply(web, owner, survey["id"], FIXED)
    emulator.control.delete("/faults").raise_for_status()
    time.sleep(0.8)  # the emulator finishes the abandoned call before the next test resets it
    assert saved.status_code == 201, saved.text
    [warning] = saved.json()["warnings"]
    assert warning["code"] == "not_checked" and "in time" in warning["message"]


def test_describes_are_cached_and_fetched_again_only_to_confirm_a_problem(
    web: TestClient, owner: Person, survey: dict[str, Any], emulator: EmulatorServer
) -> None:
    before = api_calls(emulator)
    assert apply(web, owner, survey["id"], FIXED).json()["warnings"] == []
    assert api_calls(emulator) == before + 1  # the describe of Case
    again = apply(web, owner, survey["id"], FIXED)
    assert again.json()["outcome"] == "unchanged" and again.json()["warnings"] == []
    assert api_calls(emulator) == before + 1  # from the cache
    # A problem in the cached describe is confirmed with a fresh one (the org may have been
    # fixed meanwhile); the user's profile, for the fix, is looked up once.
    warned = apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY)
    assert len(warned.json()["warnings"]) == 2
    assert api_calls(emulator) == before + 3
    apply(web, owner, survey["id"], MISSPELLED_AND_READ_ONLY)
    assert api_calls(emulator) == before + 4


def test_cli_apply_prints_warnings_with_fixes_and_strict_exits_1(
    linked: Container, survey: dict[str, Any], owner: Person, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    settings = linked.settings
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("CXLOOP_SALESFORCE_EXTRA_HOSTS", json.dumps(settings.salesforce_extra_hosts))
    broken, fixed = tmp_path / "broken.yaml", tmp_path / "fixed.yaml"
    broken.write_text(MISSPELLED_AND_READ_ONLY)
    fixed.write_text(FIXED)
    runner = CliRunner()
    base = ["workflows", "apply", survey["id"]]
    refused = runner.invoke(cli, [*base, str(broken), "--strict", "--user", owner.email])
    assert refused.exit_code == 1, refused.output
    assert "error: tasks[0].mappings[0].field" in refused.output
    assert "fix: Did you mean Description?" in refused.output
    assert "not saved: 2 problem(s)" in refused.output
    warned = runner.invoke(cli, [*base, str(broken), "--user", owner.email])
    assert warned.exit_code == 0, warned.output
    assert warned.output.count("warning:") == 2 and warned.output.count("fix:") == 2
    assert "created:" in warned.output
    clean = runner.invoke(cli, [*base, str(fixed), "--strict", "--user", owner.email])
    assert clean.exit_code == 0, clean.output
    assert "warning" not in clean.output and "updated:" in clean.output
