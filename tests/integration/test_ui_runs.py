"""The Runs pages over HTTP: the list with its filters and paging, a run's timeline with the
error explained, Retry and Replay, and who may see and do what (owner, editor, viewer, stranger,
admin). Runs come from real flows: responses submitted against workflows, worked off against
the Salesforce emulator (one workflow succeeds, one fails on a required field)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cxloop.bootstrap import Container
from cxloop.db.run_models import Run, TaskRun
from cxloop.domain import run_errors
from cxloop.services import surveys, users
from cxloop.web.ui.i18n import UiLanguages
from tests.conftest import Person
from tests.integration.conftest import PASSWORD, sign_in
from tests.integration.test_engine import add_workflow, drain, submit, upsert_workflow


def contact_without_last_name(connection: str) -> dict[str, Any]:
    """A workflow Salesforce refuses: a Contact needs a LastName, and none is mapped."""
    return {
        "name": "Contact from response",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [
            {
                "id": "contact",
                "type": "salesforce",
                "connection": connection,
                "object": "Contact",
                "action": "insert",
                "mappings": [{"field": "Description", "value": "${e://Field/ResponseID}"}],
            }
        ],
    }


@pytest.fixture
def world(
    linked: Container,
    web: TestClient,
    setup: dict[str, Any],
    owner: Person,
    make_person_in: Callable[[Container, str], Person],
) -> dict[str, Any]:
    """A survey with a workflow that succeeds and one that fails, one response worked off,
    and a client signed in for every role."""
    good = add_workflow(linked, setup, upsert_workflow("Acme"))
    bad = add_workflow(linked, setup, contact_without_last_name("Acme"))
    response_id = submit(linked, setup, 9, "Quick and friendly")
    drain(linked)
    survey_id = setup["survey_id"]
    for role in ("editor", "viewer"):
        make_person_in(linked, f"{role}@example.com")
        surveys.add_collaborator(linked.db, setup["actor"], survey_id, f"{role}@example.com", role)
    make_person_in(linked, "stranger@example.com")
    users.create_user(linked.db, "admin@example.com", PASSWORD, is_admin=True)
    clients = {"owner": web}
    sign_in(web, owner.email)
    for role in ("editor", "viewer", "stranger", "admin"):
        client = TestClient(web.app, raise_server_exceptions=False)
        sign_in(client, f"{role}@example.com")
        clients[role] = client
    with linked.db.reader() as uow:
        by_workflow = {r.workflow_id: r.id for r in uow.session.scalars(select(Run))}
    return {
        "survey_id": survey_id,
        "response_id": response_id,
        "good": by_workflow[good],
        "bad": by_workflow[bad],
        "bad_workflow": bad,
        "clients": clients,
    }


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def _run_ids(html: str) -> list[str]:
    return re.findall(r'href="/runs/(RN_\w+)"', html)


def test_the_runs_list_shows_every_run_with_its_outcome(world: dict[str, Any]) -> None:
    page = world["clients"]["owner"].get("/runs")
    assert page.status_code == 200
    assert set(_run_ids(page.text)) == {world["good"], world["bad"]}
    assert "Support NPS" in page.text and world["response_id"] in page.text
    # The failed run's error in short, in the plain words of its page.
    assert "Salesforce needs a value for LastName, and the task sent none." in page.text


def test_the_runs_list_filters_by_status_workflow_survey_and_text(
    world: dict[str, Any], linked: Container
) -> None:
    client = world["clients"]["owner"]
    assert _run_ids(client.get("/runs?status=failed").text) == [world["bad"]]
    assert _run_ids(client.get("/runs?status=succeeded").text) == [world["good"]]
    survey = world["survey_id"]
    by_workflow = client.get(f"/runs?survey={survey}&workflow={world['bad_workflow']}")
    assert _run_ids(by_workflow.text) == [world["bad"]]
    assert "Contact from response" in by_workflow.text  # the workflow filter lists them
    assert _run_ids(client.get(f"/runs?q={world['good']}").text) == [world["good"]]
    assert len(_run_ids(client.get(f"/runs?q={world['response_id']}").text)) == 2
    assert _run_ids(client.get("/runs?q=required_field").text) == [world["bad"]]
    with linked.db.reader() as uow:
        record_id = uow.session.scalar(
            select(TaskRun.record_id).where(TaskRun.run_id == world["good"])
        )
    assert _run_ids(client.get(f"/runs?q={record_id}").text) == [world["good"]]
    assert _run_ids(client.get("/runs?since=2000-01-01&until=2000-01-02").text) == []


def test_the_filter_form_as_a_browser_sends_it_with_empty_fields(world: dict[str, Any]) -> None:
    reply = world["clients"]["owner"].get("/runs?survey=&workflow=&status=failed&since=&until=&q=")
    assert reply.status_code == 200 and _run_ids(reply.text) == [world["bad"]]


def test_a_filter_that_finds_nothing_says_so_and_offers_to_clear(world: dict[str, Any]) -> None:
    page = world["clients"]["owner"].get("/runs?q=no-such-thing")
    assert page.status_code == 200 and "No runs match these filters." in page.text
    assert 'href="/runs">Clear filters' in page.text


def test_no_runs_yet_is_an_empty_state(web: TestClient, owner: Person) -> None:
    sign_in(web, owner.email)
    page = web.get("/runs")
    assert page.status_code == 200 and "No runs yet." in page.text


def test_the_runs_list_pages_with_a_cursor(world: dict[str, Any], monkeypatch) -> None:
    from cxloop.web.ui import runs as ui_runs

    monkeypatch.setattr(ui_runs, "PAGE_SIZE", 1)
    client = world["clients"]["owner"]
    first = client.get("/runs")
    (first_id,) = _run_ids(first.text)
    next_url = re.search(r'href="(/runs\?cursor=[^"]+)" rel="next"', first.text)
    assert next_url, first.text
    second = client.get(next_url.group(1).replace("&amp;", "&"))
    (second_id,) = _run_ids(second.text)
    assert {first_id, second_id} == {world["good"], world["bad"]}
    assert 'rel="next"' not in second.text and "Newest runs" in second.text


@pytest.mark.parametrize("merged", [50, 1])  # each survey's newest merged; or one IN (...)
def test_runs_of_several_surveys_are_merged_newest_first_across_pages(
    world: dict[str, Any], linked: Container, setup: dict[str, Any], monkeypatch, merged: int
) -> None:
    from cxloop.services import run_history, survey_content
    from cxloop.web.ui import runs as ui_runs
    from tests.integration.conftest import CONTENT

    actor = setup["actor"]
    other = surveys.create_survey(linked.db, actor, "Onboarding CSAT")
    survey_content.put_content(linked.db, actor, other.id, CONTENT)
    surveys.update_survey(linked.db, actor, other.id, {"status": "active"})
    second = {"actor": actor, "survey_id": other.id}
    add_workflow(linked, second, upsert_workflow("Acme"))
    submit(linked, second, 7)
    submit(linked, setup, 10)  # the first survey again: its two runs are the newest
    drain(linked)
    with linked.db.reader() as uow:
        newest_first = [
            r.id
            for r in uow.session.scalars(select(Run).order_by(Run.created_at.desc(), Run.id.desc()))
        ]
    monkeypatch.setattr(ui_runs, "PAGE_SIZE", 2)
    monkeypatch.setattr(run_history, "MERGED_SURVEYS", merged)
    for role in ("owner", "admin"):  # merged per survey; the admin's index walk
        client, seen, url = world["clients"][role], [], "/runs"
        while url:
            page = client.get(url)
            seen += _run_ids(page.text)
            found = re.search(r'href="(/runs\?cursor=[^"]+)" rel="next"', page.text)
            url = html.unescape(found.group(1)) if found else None
        assert seen == newest_first, role


def test_the_api_filters_runs_by_the_same_text_search(world: dict[str, Any], owner: Person) -> None:
    client = world["clients"]["owner"]
    reply = client.get("/api/v1/runs", params={"q": "LastName"}, headers=owner.headers)
    assert reply.status_code == 200
    assert [r["id"] for r in reply.json()["items"]] == [world["bad"]]


@pytest.mark.parametrize(
    "query",
    ["status=exploded", "since=yesterday", "cursor=not-a-cursor", "q=" + "x" * 201],
)
def test_bad_filters_are_a_400_page_not_a_500(world: dict[str, Any], query: str) -> None:
    reply = world["clients"]["owner"].get(f"/runs?{query}")
    assert reply.status_code in (400, 422), reply.text
    assert reply.headers["content-type"].startswith("text/html")


def test_a_failed_run_explains_the_error_and_what_to_do(world: dict[str, Any]) -> None:
    page = world["clients"]["owner"].get(f"/runs/{world['bad']}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Salesforce needs a value for LastName, and the task sent none." in text
    assert "Open the workflow and map LastName" in text
    assert f'href="/surveys/{world["survey_id"]}/workflows/{world["bad_workflow"]}"' in text
    assert "Payload sent" in text and "Salesforce's reply" in text
    assert f'href="/runs?q={world["response_id"]}"' in text  # the event, linked
    assert ">Retry</button>" in text and ">Replay</button>" in text


def test_a_run_page_in_german_explains_in_german(world: dict[str, Any]) -> None:
    page = world["clients"]["owner"].get(f"/runs/{world['bad']}", headers={"Accept-Language": "de"})
    assert "Salesforce braucht einen Wert für LastName" in page.text
    assert "Erneut versuchen" in page.text


def test_a_succeeded_run_shows_the_record_and_offers_no_retry(world: dict[str, Any]) -> None:
    page = world["clients"]["owner"].get(f"/runs/{world['good']}")
    assert page.status_code == 200 and "Salesforce record" in page.text
    assert ">Retry</button>" not in page.text and ">Replay</button>" in page.text


def test_retry_asks_first_then_queues_the_failed_task_again(
    world: dict[str, Any], linked: Container
) -> None:
    client = world["clients"]["editor"]
    page = client.get(f"/runs/{world['bad']}")
    asked = client.post(f"/runs/{world['bad']}/retry", data={"csrf": _csrf(page.text)})
    assert asked.status_code == 200 and "Retry this run?" in asked.text
    with linked.db.reader() as uow:
        assert uow.session.get(Run, world["bad"]).status == "failed"  # nothing done yet
    done = client.post(
        f"/runs/{world['bad']}/retry",
        data={"csrf": _csrf(asked.text), "confirm": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/runs/{world['bad']}"
    shown = client.get(done.headers["location"])
    assert "Retried: 1 task runs queued again." in shown.text
    with linked.db.reader() as uow:
        assert uow.session.get(Run, world["bad"]).status == "pending"


def test_replay_queues_every_failed_run_of_the_workflow(
    world: dict[str, Any], linked: Container
) -> None:
    client = world["clients"]["owner"]
    csrf = _csrf(client.get(f"/runs/{world['bad']}").text)
    asked = client.post(f"/runs/{world['bad']}/replay", data={"csrf": csrf})
    assert "Replay the workflow's failed runs?" in html.unescape(asked.text)
    done = client.post(f"/runs/{world['bad']}/replay", data={"csrf": csrf, "confirm": "yes"})
    assert "Replayed: 1 task runs" in done.text
    with linked.db.reader() as uow:
        assert uow.session.get(Run, world["bad"]).status == "pending"


def test_retry_without_the_form_token_is_refused(world: dict[str, Any], linked: Container) -> None:
    reply = world["clients"]["owner"].post(
        f"/runs/{world['bad']}/retry", data={"csrf": "forged", "confirm": "yes"}
    )
    assert reply.status_code == 403
    with linked.db.reader() as uow:
        assert uow.session.get(Run, world["bad"]).status == "failed"


@pytest.mark.parametrize("role", ["owner", "editor", "viewer", "admin"])
def test_who_can_see_the_runs(world: dict[str, Any], role: str) -> None:
    client = world["clients"][role]
    assert set(_run_ids(client.get("/runs").text)) == {world["good"], world["bad"]}
    page = client.get(f"/runs/{world['bad']}")
    assert page.status_code == 200
    assert (">Retry</button>" in page.text) == (role != "viewer")
    assert (">Replay</button>" in page.text) == (role != "viewer")


def test_a_stranger_sees_no_runs_and_gets_404s(world: dict[str, Any]) -> None:
    client = world["clients"]["stranger"]
    assert _run_ids(client.get("/runs").text) == []
    assert client.get(f"/runs/{world['bad']}").status_code == 404
    assert client.get(f"/runs?survey={world['survey_id']}").status_code == 404
    csrf = _csrf(client.get("/runs").text)
    for action in ("retry", "replay"):
        reply = client.post(f"/runs/{world['bad']}/{action}", data={"csrf": csrf, "confirm": "yes"})
        assert reply.status_code == 404


def test_a_viewer_cannot_retry_or_replay(world: dict[str, Any], linked: Container) -> None:
    client = world["clients"]["viewer"]
    csrf = _csrf(client.get(f"/runs/{world['bad']}").text)
    for action in ("retry", "replay"):
        for data in ({"csrf": csrf}, {"csrf": csrf, "confirm": "yes"}):
            assert client.post(f"/runs/{world['bad']}/{action}", data=data).status_code == 403
    with linked.db.reader() as uow:
        assert uow.session.get(Run, world["bad"]).status == "failed"


def test_an_unknown_run_is_a_404_page(world: dict[str, Any]) -> None:
    client = world["clients"]["owner"]
    assert client.get("/runs/RN_nope").status_code == 404
    assert client.get("/runs/" + "x" * 300).status_code == 404


def test_signed_out_the_runs_pages_send_to_login(web: TestClient) -> None:
    reply = web.get("/runs", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/login?next=/runs")


def test_a_paused_run_says_why_and_links_to_the_fix(
    world: dict[str, Any], linked: Container
) -> None:
    reason = (
        "The workflow's connection 'Old' is not one of the survey owner's connections; pick one "
        "of theirs in the workflow, then retry the run."
    )
    with linked.db.uow() as uow:
        uow.session.get(Run, world["bad"]).status = "paused"
        task_run = uow.session.scalar(select(TaskRun).where(TaskRun.run_id == world["bad"]))
        task_run.status, task_run.status_reason, task_run.error = "paused", reason, None
        uow.commit()
    page = html.unescape(world["clients"]["owner"].get(f"/runs/{world['bad']}").text)
    assert "This run is paused." in page and "Open the workflow to pick an account" in page
    assert "not one of the survey owner's accounts" in page


def test_secret_looking_values_in_a_payload_are_not_shown(
    world: dict[str, Any], linked: Container
) -> None:
    with linked.db.uow() as uow:
        task_run = uow.session.scalar(select(TaskRun).where(TaskRun.run_id == world["good"]))
        task_run.payload = {**task_run.payload, "Access_Token__c": "00Dxx!secret-value"}
        uow.commit()
    page = world["clients"]["owner"].get(f"/runs/{world['good']}").text
    assert "secret-value" not in page and "Access_Token__c" in page


def test_every_error_explanation_has_a_german_translation() -> None:
    languages = UiLanguages()
    missing = [text for text in run_errors.all_texts() if languages.gettext("de", text) == text]
    assert not missing, missing


@pytest.mark.parametrize(
    ("status", "error", "reason", "code", "action"),
    [
        (
            "failed",
            {"error_code": "DUPLICATE_VALUE", "message": "dup"},
            "",
            "DUPLICATE_VALUE",
            "workflow",
        ),
        ("paused", {"kind": "reauth", "message": "expired"}, "", "needs_reauth", "accounts"),
        (
            "paused",
            None,
            "The connection needs to be reconnected: revoked",
            "needs_reauth",
            "accounts",
        ),
        (
            "waiting_retry",
            {"kind": "limit", "error_code": "REQUEST_LIMIT_EXCEEDED"},
            "",
            "REQUEST_LIMIT_EXCEEDED",
            "",
        ),
        (
            "failed",
            {"kind": "permanent", "error_code": "SOMETHING_NEW", "message": "m"},
            "",
            "SOMETHING_NEW",
            "workflow",
        ),
        ("succeeded", None, "", None, None),
    ],
)
def test_errors_are_explained_from_one_table(
    status: str, error: dict | None, reason: str, code: str | None, action: str | None
) -> None:
    explanation = run_errors.explain(status, error, reason)
    if code is None:
        assert explanation is None
    else:
        assert explanation is not None and (explanation.code, explanation.action) == (code, action)
        assert "%(" not in explanation.summary % dict(explanation.values)
