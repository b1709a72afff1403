"""The Workflows tab and the builder over HTTP (TestClient, the real emulator): every role on
every page and action, saving through the same service as the API, every problem beside its
input, nothing half-saved, stale forms refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services import survey_content, surveys, users, workflows
from sfemu.testing import EmulatorServer
from tests.conftest import Person
from tests.integration.conftest import CONTENT, PASSWORD, actor, link, org, sign_in
from tests.integration.survey_helpers import share


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def _person(container: Container, email: str, *, admin: bool = False) -> Person:
    user = users.create_user(container.db, email, PASSWORD, is_admin=admin)
    issued = users.create_token(container.db, email, "test")
    return Person(id=user.id, email=user.email, token=issued.token)


@pytest.fixture
def shop(
    linked: Container, web: TestClient, emulator: EmulatorServer, owner: Person
) -> dict[str, Any]:
    """A survey owned by `owner` with an account "Acme", an editor and a viewer."""
    link(web, owner, "Acme", org(emulator, "acme")["login_url"])
    survey = surveys.create_survey(linked.db, actor(owner), "Support NPS")
    survey_content.put_content(linked.db, actor(owner), survey.id, CONTENT)
    people = {"owner": owner}
    for role in ("editor", "viewer", "stranger"):
        people[role] = _person(linked, f"{role}@example.com")
    people["admin"] = _person(linked, "admin@example.com", admin=True)
    share(web, owner, survey.id, people["editor"], "editor")
    share(web, owner, survey.id, people["viewer"], "viewer")
    web.cookies.clear()
    return {"survey_id": survey.id, "people": people}


CASE_FORM = {
    "name": "Case follow-up",
    "event.type": "survey_response",
    "event.when": "created",
    "tasks[0].type": "salesforce",
    "tasks[0].id": "case",
    "tasks[0].connection": "Acme",
    "tasks[0].object": "Case",
    "tasks[0].action": "update",
    "tasks[0].key_value": "${e://Field/CaseId}",
    "tasks[0].mappings[0].field": "Description",
    "tasks[0].mappings[0].value": "${q://QID2/ChoiceTextEntryValue}",
    "op": "save",
}


def _post(web: TestClient, url: str, data: dict[str, str], page: str) -> Any:
    csrf = _csrf(web.get(page).text)
    return web.post(url, data={**data, "csrf": csrf}, follow_redirects=False)


def test_the_builder_saves_a_workflow_through_the_workflow_service(
    web: TestClient, shop: dict[str, Any], linked: Container
) -> None:
    sign_in(web, "owner@example.com")
    base = f"/surveys/{shop['survey_id']}/workflows"
    reply = _post(web, f"{base}/new", CASE_FORM, f"{base}/new?kind=event&event=survey_response")
    assert reply.status_code == 303, reply.text[:3000]
    workflow_id = reply.headers["location"].rsplit("/", 1)[1]
    view = workflows.get_workflow(linked.db, actor(shop["people"]["owner"]), workflow_id)
    assert view.workflow.document["tasks"][0]["mappings"] == [
        {"field": "Description", "value": "${q://QID2/ChoiceTextEntryValue}"}
    ]
    page = web.get(f"{base}/{workflow_id}")
    assert page.status_code == 200 and "Case follow-up" in page.text
    tab = web.get(base)
    assert tab.status_code == 200 and workflow_id in tab.text
