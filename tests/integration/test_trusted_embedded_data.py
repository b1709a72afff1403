"""Trusted embedded data through the real respondent pages and API: each field's source decides
which link may set it, signed links cannot be changed, the anonymous link can be turned off,
and every response records its channel."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.services.personal_links import create_personal_link
from tests.conftest import Person
from tests.integration.survey_helpers import make_survey, quick_person, share
from tests.integration.test_respond_pages import Respondent, stored, text_of

CONTENT: dict[str, Any] = {
    "format_version": 1,
    "embedded_data": [
        {"name": "CaseId"},  # personal_link, the default
        {"name": "Campaign", "source": "query"},
        {"name": "Tier", "source": "server", "default": "standard"},
    ],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "Case ${e://Field/CaseId}?", "required": True},
    ],
}
CASE = "5003000000D8cuI"
OTHER_CASE = "5003000000Zz999"


@pytest.fixture
def alice(container: Container) -> Person:
    return quick_person(container, "alice@example.com")


@pytest.fixture
def survey_id(client: TestClient, alice: Person) -> str:
    return make_survey(client, alice, CONTENT)


def answer(client: TestClient, survey_id: str, query: str) -> Any:
    """Open the link and answer the one page; the last page the respondent saw."""
    you = Respondent(client, survey_id)
    opened = you.open(query)
    if opened.status_code != 200:
        return opened
    return you.submit({"QID1": "3"})


def signed_link(client: TestClient, person: Person, survey_id: str, **body: Any) -> Any:
    body.setdefault("expires_in_s", 3600)
    return client.post(
        f"/api/v1/surveys/{survey_id}/signed-links", json=body, headers=person.headers
    )


def query_of(url: str) -> str:
    return "?" + urlsplit(url).query


# -- the anonymous link -----------------------------------------------------------------------


def test_anonymous_link_sets_only_query_fields_and_records_its_channel(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    query = f"?CaseId={OTHER_CASE}&Campaign=spring&Tier=gold&Unknown=x"
    finished = answer(client, survey_id, query)
    assert finished.status_code == 200 and "Thank you" in finished.text
    [response] = stored(client, alice, survey_id)
    assert response["embedded_data"] == {"Campaign": "spring", "Tier": "standard"}
    assert response["channel"] == "anonymous_link" and response["source"] == "web"


def test_anonymous_case_id_is_not_piped_into_the_page(client: TestClient, survey_id: str) -> None:
    page = client.get(f"/s/{survey_id}?CaseId={OTHER_CASE}")
    assert page.status_code == 200
    assert OTHER_CASE not in page.text and "Case ?" in text_of(page.text)


# -- personal links ---------------------------------------------------------------------------


def test_personal_link_applies_its_own_data_and_query_fields_only(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    token, _ = create_personal_link(container.db, survey_id, {"CaseId": CASE})
    finished = answer(client, survey_id, f"?t={token}&CaseId={OTHER_CASE}&Campaign=mail&Tier=x")
    assert "Thank you" in finished.text
    [response] = stored(client, alice, survey_id)
    assert response["embedded_data"] == {"CaseId": CASE, "Campaign": "mail", "Tier": "standard"}
    assert response["channel"] == "personal_link"


# -- signed links -----------------------------------------------------------------------------


def test_signed_link_sets_personal_link_fields_and_works_more_than_once(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    made = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE, "Campaign": "crm"})
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    assert url.startswith("http://") and f"/s/{survey_id}?" in url
    assert "_sig=" in url and "_exp=" in url
    for _ in range(2):
        assert "Thank you" in answer(client, survey_id, query_of(url)).text
    responses = stored(client, alice, survey_id)
    assert [r["embedded_data"] for r in responses] == [
        {"CaseId": CASE, "Campaign": "crm", "Tier": "standard"}
    ] * 2
    assert {r["channel"] for r in responses} == {"signed_link"}


def test_signed_link_in_another_parameter_order_still_works(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    url = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE}).json()["url"]
    reordered = "?" + urlencode(list(reversed(parse_qsl(urlsplit(url).query))))
    assert client.get(f"/s/{survey_id}{reordered}").status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda items: [(k, OTHER_CASE if k == "CaseId" else v) for k, v in items],
        lambda items: [*items, ("Campaign", "added")],
        lambda items: [(k, v) for k, v in items if k != "CaseId"],
        lambda items: [(k, str(int(v) + 86400) if k == "_exp" else v) for k, v in items],
        lambda items: [(k, v[:-2] + "AA" if k == "_sig" else v) for k, v in items],
        lambda items: [*items, ("_sig", "second")],
        lambda items: [(k, "x" * 500 if k == "_sig" else v) for k, v in items],
    ],
    ids=["changed", "added", "removed", "expiry-pushed", "bad-signature", "two-signatures", "long"],
)
def test_a_changed_signed_link_is_refused_and_stores_nothing(
    client: TestClient, alice: Person, survey_id: str, tamper: Any
) -> None:
    url = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE}).json()["url"]
    items = tamper(parse_qsl(urlsplit(url).query))
    refused = client.get(f"/s/{survey_id}?{urlencode(items)}")
    assert refused.status_code == 403
    assert "This survey link is not valid" in text_of(refused.text)
    assert "<form" not in refused.text
    assert stored(client, alice, survey_id) == []


def test_a_signed_link_for_another_survey_is_refused(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    other = make_survey(client, alice, CONTENT, name="Other")
    url = signed_link(client, alice, other, embedded_data={"CaseId": CASE}).json()["url"]
    assert client.get(f"/s/{survey_id}{query_of(url)}").status_code == 403


def test_an_expired_signed_link_says_so_and_stores_nothing(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    url = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE}, expires_in_s=1)
    time.sleep(1.2)
    expired = client.get(f"/s/{survey_id}{query_of(url.json()['url'])}")
    assert expired.status_code == 410 and "This survey link has expired." in expired.text
    assert stored(client, alice, survey_id) == []


def test_rotating_the_key_withdraws_older_signed_links_only(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    old = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE}).json()["url"]
    rotated = client.post(
        f"/api/v1/surveys/{survey_id}/signed-links/rotate-key", headers=alice.headers
    )
    assert rotated.status_code == 204
    assert client.get(f"/s/{survey_id}{query_of(old)}").status_code == 403
    new = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE}).json()["url"]
    assert client.get(f"/s/{survey_id}{query_of(new)}").status_code == 200


def test_the_signing_key_is_encrypted_at_rest(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    from sqlalchemy import text

    signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE})
    with container.db.engine.connect() as connection:
        raw = connection.execute(
            text("SELECT link_signing_key FROM surveys WHERE id = :id"), {"id": survey_id}
        ).scalar_one()
    assert raw and raw.startswith("gAAAA")  # a Fernet token, not the key


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"embedded_data": {"Nope": "1"}}, 422, "not an embedded data field"),
        ({"embedded_data": {"Tier": "gold"}}, 422, "source server"),
        ({"embedded_data": {"CaseId": 5}}, 422, "must be text"),
        ({"embedded_data": {"CaseId": "x" * 20_001}}, 422, "too long"),
        ({"embedded_data": ["CaseId"]}, 422, ""),
        ({"embedded_data": {}, "expires_in_s": None}, 422, "expires_at or expires_in_s"),
        ({"embedded_data": {}, "expires_at": "2999-01-01T00:00:00Z"}, 422, "one of them"),
        ({"expires_in_s": 0}, 422, "at least 1"),
        ({"expires_in_s": 400 * 86400}, 422, "at most 366 days"),
        ({"expires_in_s": "7d"}, 422, ""),
        ({"extra": 1}, 422, ""),
    ],
)
def test_bad_signed_link_requests_are_refused_with_reasons(
    client: TestClient, alice: Person, survey_id: str, body: dict, status: int, words: str
) -> None:
    reply = signed_link(client, alice, survey_id, **body)
    assert reply.status_code == status, reply.text
    assert words in reply.text
    assert "error" in reply.json()


@pytest.mark.parametrize(
    ("expires_at", "words"),
    [
        ("2020-01-01T00:00:00Z", "in the past"),
        ("2030-01-01T00:00:00", "timezone"),
        ("not a date", ""),
    ],
)
def test_bad_expiry_dates_are_refused(
    client: TestClient, alice: Person, survey_id: str, expires_at: str, words: str
) -> None:
    reply = client.post(
        f"/api/v1/surveys/{survey_id}/signed-links",
        json={"embedded_data": {}, "expires_at": expires_at},
        headers=alice.headers,
    )
    assert reply.status_code == 422 and words in reply.text


def test_expires_at_sets_the_expiry(client: TestClient, alice: Person, survey_id: str) -> None:
    until = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    reply = client.post(
        f"/api/v1/surveys/{survey_id}/signed-links",
        json={"embedded_data": {"CaseId": CASE}, "expires_at": until.isoformat()},
        headers=alice.headers,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["expires_at"].startswith(until.strftime("%Y-%m-%dT%H:%M:%S"))
    assert f"_exp={int(until.timestamp())}" in reply.json()["url"]


def test_only_editors_and_up_make_signed_links_or_rotate_the_key(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    viewer = quick_person(container, "vic@example.com")
    editor = quick_person(container, "ed@example.com")
    stranger = quick_person(container, "sam@example.com")
    share(client, alice, survey_id, viewer, "viewer")
    share(client, alice, survey_id, editor, "editor")
    rotate = f"/api/v1/surveys/{survey_id}/signed-links/rotate-key"
    assert signed_link(client, editor, survey_id).status_code == 201
    assert client.post(rotate, headers=editor.headers).status_code == 204
    assert signed_link(client, viewer, survey_id).status_code == 403
    assert client.post(rotate, headers=viewer.headers).status_code == 403
    assert signed_link(client, stranger, survey_id).status_code == 404
    assert client.post(rotate, headers=stranger.headers).status_code == 404
    assert client.post(f"/api/v1/surveys/{survey_id}/signed-links", json={}).status_code == 401
    assert client.post(rotate).status_code == 401
    assert signed_link(client, alice, "SV_nosuchsurvey00").status_code == 404


# -- the anonymous link switch ----------------------------------------------------------------


def test_anonymous_link_off_refuses_the_open_link_but_not_personal_or_signed_ones(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    you = Respondent(client, survey_id)
    assert you.open().status_code == 200  # a page opened before the switch
    patched = client.patch(
        f"/api/v1/surveys/{survey_id}", json={"anonymous_link": False}, headers=alice.headers
    )
    assert patched.status_code == 200 and patched.json()["anonymous_link"] is False
    refused = client.get(f"/s/{survey_id}")
    assert refused.status_code == 403 and "personal link" in text_of(refused.text)
    assert "<form" not in refused.text
    assert you.submit({"QID1": "3"}).status_code == 403  # the page opened before
    assert stored(client, alice, survey_id) == []

    token, _ = create_personal_link(container.db, survey_id, {"CaseId": CASE})
    assert "Thank you" in answer(client, survey_id, f"?t={token}").text
    url = signed_link(client, alice, survey_id, embedded_data={"CaseId": CASE}).json()["url"]
    assert "Thank you" in answer(client, survey_id, query_of(url)).text
    assert sorted(r["channel"] for r in stored(client, alice, survey_id)) == [
        "personal_link", "signed_link",
    ]  # fmt: skip

    on = client.patch(
        f"/api/v1/surveys/{survey_id}", json={"anonymous_link": True}, headers=alice.headers
    )
    assert on.json()["anonymous_link"] is True
    assert client.get(f"/s/{survey_id}").status_code == 200


@pytest.mark.parametrize("value", [None, "no", 0])
def test_anonymous_link_takes_only_true_or_false(
    client: TestClient, alice: Person, survey_id: str, value: Any
) -> None:
    reply = client.patch(
        f"/api/v1/surveys/{survey_id}", json={"anonymous_link": value}, headers=alice.headers
    )
    assert reply.status_code == 422, reply.text


# -- the API and imports ----------------------------------------------------------------------


def test_api_may_set_server_fields_and_is_its_own_channel(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    reply = client.post(
        f"/api/v1/surveys/{survey_id}/responses",
        json={"values": {"QID1": 5}, "embedded_data": {"CaseId": CASE, "Tier": "gold"}},
        headers=alice.headers,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["channel"] == "api"
    assert reply.json()["embedded_data"] == {"CaseId": CASE, "Tier": "gold"}
    bulk = client.post(
        f"/api/v1/surveys/{survey_id}/responses",
        json=[{"values": {"QID1": 1}}],
        headers=alice.headers,
    )
    assert bulk.status_code == 201, bulk.text
    channels = {r["source"]: r["channel"] for r in stored(client, alice, survey_id)}
    assert channels == {"api": "api", "import": "import"}


def test_content_sources_round_trip_and_a_bad_source_is_refused(
    client: TestClient, alice: Person, survey_id: str
) -> None:
    yaml_doc = client.get(
        f"/api/v1/surveys/{survey_id}/content", params={"format": "yaml"}, headers=alice.headers
    ).text
    assert "source: query" in yaml_doc and "source: server" in yaml_doc
    again = client.put(
        f"/api/v1/surveys/{survey_id}/content",
        content=yaml_doc,
        headers={**alice.headers, "Content-Type": "application/yaml"},
    )
    assert again.status_code == 200, again.text
    bad = {**CONTENT, "embedded_data": [{"name": "CaseId", "source": "url"}]}
    refused = client.put(f"/api/v1/surveys/{survey_id}/content", json=bad, headers=alice.headers)
    assert refused.status_code == 422
    assert "embedded_data[0].source" in refused.text and "not a source" in refused.text


# -- channel conditions -----------------------------------------------------------------------


def test_a_workflow_condition_on_the_channel_is_checked_and_evaluated(
    client: TestClient, container: Container, alice: Person, survey_id: str
) -> None:
    workflows = f"/api/v1/surveys/{survey_id}/workflows"
    document = {
        "name": "Personal links only",
        "event": {"type": "survey_response"},
        "conditions": {
            "join": "and",
            "conditions": [
                {"field": "m://Channel", "operator": "equals", "value": "personal_link"}
            ],
        },
        "tasks": [
            {"id": "mail", "type": "email", "to": "am@example.com", "subject": "s", "body": "b"}
        ],
    }
    typo = {
        **document,
        "conditions": {
            "join": "and",
            "conditions": [{"field": "m://Channel", "operator": "equals", "value": "personal"}],
        },
    }
    refused = client.post(workflows, json=typo, headers=alice.headers)
    assert refused.status_code == 422 and "not a channel" in refused.text
    created = client.post(workflows, json=document, headers=alice.headers)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]

    answer(client, survey_id, "")
    token, _ = create_personal_link(container.db, survey_id, {"CaseId": CASE})
    answer(client, survey_id, f"?t={token}")
    runs = client.get(
        "/api/v1/runs", params={"workflow_id": workflow_id}, headers=alice.headers
    ).json()["items"]
    by_channel = {r["channel"]: r["id"] for r in stored(client, alice, survey_id)}
    assert [run["response_id"] for run in runs] == [by_channel["personal_link"]]

    dry = client.post(
        f"{workflows}/{workflow_id}/test",
        json={"response_id": by_channel["anonymous_link"]},
        headers=alice.headers,
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["channel"] == "anonymous_link" and dry.json()["would_run"] is False
