"""/api/v1/directories, /contacts, /mailing-lists: the directory through the real app, on both
databases. Each test walks one area end to end (good and bad input) to keep the suite fast."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.directory_models import Distribution, Invitation
from cxloop.services import directory as directory_service
from cxloop.services.access import Actor
from cxloop.services.directory import imports as directory_imports
from tests.conftest import Person
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person
from tests.integration.test_auth_api import assert_error

API = "/api/v1"


def made(reply: Any, status: int = 201) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    return reply.json()


def new_directory(client: TestClient, person: Person, name: str = "Customers") -> str:
    return made(client.post(f"{API}/directories", json={"name": name}, headers=person.headers))[
        "id"
    ]


def new_contact(client: TestClient, person: Person, directory_id: str, **fields: Any) -> dict:
    return made(
        client.post(
            f"{API}/directories/{directory_id}/contacts", json=fields, headers=person.headers
        )
    )


def test_directories_crud_frequency_rule_and_who_may_see_them(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    bob = quick_person(container, "bob@example.com")
    admin = quick_person(container, "admin@example.com", admin=True)
    h = alice.headers

    created = made(client.post(f"{API}/directories", json={"name": " Customers "}, headers=h))
    assert created["name"] == "Customers" and created["owner_id"] == alice.id
    assert created["frequency_limit"] is None and created["frequency_days"] is None
    directory_id = created["id"]
    assert_error(
        client.post(f"{API}/directories", json={"name": "Customers"}, headers=h), 409, "name_taken"
    )
    # the same name is fine for another owner
    bobs = new_directory(client, bob, "Customers")
    assert_error(client.post(f"{API}/directories", json={"name": "x", "color": 1}, headers=h), 422)
    assert_error(client.post(f"{API}/directories", json={"name": "a\nb"}, headers=h), 422)

    assert [d["id"] for d in made(client.get(f"{API}/directories", headers=h), 200)] == [
        directory_id
    ]
    everyone = made(client.get(f"{API}/directories", headers=admin.headers), 200)
    assert {d["id"] for d in everyone} == {directory_id, bobs}

    path = f"{API}/directories/{directory_id}"
    rule = made(
        client.patch(path, json={"frequency_limit": 2, "frequency_days": 30}, headers=h), 200
    )
    assert (rule["frequency_limit"], rule["frequency_days"], rule["name"]) == (2, 30, "Customers")
    renamed = made(client.patch(path, json={"name": "Clients"}, headers=h), 200)
    assert renamed["name"] == "Clients" and renamed["frequency_limit"] == 2
    for bad in (
        {"frequency_limit": 0},
        {"frequency_days": -1},
        {"frequency_limit": None},  # days alone is no rule
        {"frequency_limit": "3"},
    ):
        assert_error(client.patch(path, json=bad, headers=h), 422)
    cleared = made(
        client.patch(path, json={"frequency_limit": None, "frequency_days": None}, headers=h), 200
    )
    assert cleared["frequency_limit"] is None and cleared["frequency_days"] is None
    new_directory(client, alice, "Partners")
    assert_error(client.patch(path, json={"name": "Partners"}, headers=h), 409, "name_taken")

    # another user's directory does not exist for bob; an admin may manage it
    for method, url in (
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("GET", f"{path}/contacts"),
        ("POST", f"{path}/contacts"),
        ("GET", f"{path}/mailing-lists"),
    ):
        body = {"name": "Mine"} if method == "PATCH" else None
        if url.endswith("/contacts") and method == "POST":
            body = {"email": "x@example.com"}
        assert_error(client.request(method, url, json=body, headers=bob.headers), 404)
    assert made(client.get(path, headers=admin.headers), 200)["id"] == directory_id
    assert_error(client.get(f"{API}/directories/DR_nope", headers=h), 404)
    assert_error(client.get(f"{API}/directories"), 401)

    new_contact(client, alice, directory_id, email="gone@example.com")
    assert client.delete(path, headers=h).status_code == 204
    assert_error(client.get(path, headers=h), 404)


def test_contacts_lists_history_and_opt_out(client: TestClient, container: Container) -> None:
    alice = quick_person(container, "alice@example.com")
    bob = quick_person(container, "bob@example.com")
    h = alice.headers
    directory_id = new_directory(client, alice)
    contacts = f"{API}/directories/{directory_id}/contacts"

    ann = new_contact(
        client, alice, directory_id, email=" Ann@Example.COM ", first_name="Ann\r\nBcc: evil@x.io",
        last_name="Lee", external_ref="003A", embedded_data={"Plan": "gold", "Seats": 3},
    )  # fmt: skip
    assert ann["email"] == "ann@example.com"
    assert ann["first_name"] == "Ann Bcc: evil@x.io"  # one line: no header injection
    assert ann["embedded_data"] == {"Plan": "gold", "Seats": 3} and ann["opted_out"] is False
    for bad, code in (
        ({"email": "not-an-email"}, "invalid_email"),
        ({"email": "a@example.com\r\nBcc: x@example.com"}, "invalid_email"),
        ({"email": "a@example.com", "embedded_data": {"x": {"nested": 1}}}, None),
        ({"email": "a@example.com", "first_name": "x" * 101}, None),
        ({"email": "a@example.com", "shoe_size": 44}, None),
    ):
        assert_error(client.post(contacts, json=bad, headers=h), 422, code)
    assert_error(
        client.post(contacts, json={"email": "ANN@example.com"}, headers=h), 409, "email_taken"
    )
    bo = new_contact(client, alice, directory_id, email="bo@example.com", first_name="Bo")
    cy = new_contact(client, alice, directory_id, email="cy@other.org")

    # partial update: text replaced, embedded data merged (null removes), email kept unique
    path = f"{API}/contacts/{ann['id']}"
    changed = made(
        client.patch(
            path, json={"last_name": None, "embedded_data": {"Plan": None, "Tier": "A"}}, headers=h
        ),
        200,
    )
    assert changed["last_name"] == "" and changed["first_name"] == ann["first_name"]
    assert changed["embedded_data"] == {"Seats": 3, "Tier": "A"}
    assert_error(client.patch(path, json={"email": "bo@example.com"}, headers=h), 409)
    assert_error(client.patch(path, json={"email": "nope"}, headers=h), 422, "invalid_email")
    assert_error(client.patch(path, json={"opted_out": True}, headers=h), 422)

    # mailing lists
    lists = f"{API}/directories/{directory_id}/mailing-lists"
    vip = made(client.post(lists, json={"name": "VIP"}, headers=h))
    assert_error(client.post(lists, json={"name": "VIP"}, headers=h), 409, "name_taken")
    members = f"{API}/mailing-lists/{vip['id']}/members"
    added = made(
        client.post(members, json={"contact_ids": [ann["id"], bo["id"], ann["id"]]}, headers=h),
        200,
    )
    assert added == {"added": 2}
    assert made(client.post(members, json={"contact_ids": [bo["id"]]}, headers=h), 200) == {
        "added": 0
    }
    assert_error(client.post(members, json={"contact_ids": ["CT_nope"]}, headers=h), 404)
    assert_error(client.post(members, json={"contact_ids": []}, headers=h), 422)
    assert_error(client.post(members, json={"contact_ids": [ann["id"]]}, headers=bob.headers), 404)
    listed = made(client.get(lists, headers=h), 200)
    assert [(m["name"], m["member_count"]) for m in listed] == [("VIP", 2)]
    removed = client.request("DELETE", members, json={"contact_ids": [bo["id"]]}, headers=h)
    assert made(removed, 200) == {"removed": 1}

    # listing: pages, filters
    first = made(client.get(contacts, params={"limit": 2}, headers=h), 200)
    assert [c["email"] for c in first["items"]] == ["ann@example.com", "bo@example.com"]
    rest = made(client.get(contacts, params={"cursor": first["next_cursor"]}, headers=h), 200)
    assert [c["email"] for c in rest["items"]] == ["cy@other.org"] and rest["next_cursor"] is None
    found = made(client.get(contacts, params={"email_contains": "EXAMPLE"}, headers=h), 200)
    assert {c["id"] for c in found["items"]} == {ann["id"], bo["id"]}
    like = made(client.get(contacts, params={"email_contains": "%"}, headers=h), 200)
    assert like["items"] == []  # % is a character, not a wildcard
    on_list = made(client.get(contacts, params={"mailing_list_id": vip["id"]}, headers=h), 200)
    assert [c["id"] for c in on_list["items"]] == [ann["id"]]
    assert_error(client.get(contacts, params={"mailing_list_id": "ML_x"}, headers=h), 404)
    assert_error(client.get(contacts, params={"cursor": "garbage"}, headers=h), 422, "bad_cursor")

    # opt-out and back in: idempotent
    opt_out = f"{API}/contacts/{cy['id']}/opt-out"
    assert made(client.post(opt_out, headers=h), 200)["opted_out"] is True
    again = made(client.post(opt_out, headers=h), 200)
    assert again["opted_out"] is True and again["opted_out_at"]
    out = made(client.get(contacts, params={"opted_out": "true"}, headers=h), 200)
    assert [c["id"] for c in out["items"]] == [cy["id"]]
    back = made(client.delete(opt_out, headers=h), 200)
    assert back["opted_out"] is False and back["opted_out_at"] is None
    assert_error(client.post(opt_out, headers=bob.headers), 404)

    # history: invitations (with their distribution's survey) and responses, newest first
    survey_id = make_survey(client, alice)
    answered = client.post(
        f"{API}/surveys/{survey_id}/responses",
        json={"values": GOOD_VALUES, "contact_id": ann["id"]},
        headers=h,
    )
    assert answered.status_code == 201, answered.text
    with container.db.uow() as uow:
        distribution = Distribution(
            survey_id=survey_id, directory_id=directory_id, subject="How did we do?", body="..."
        )
        uow.session.add(distribution)
        uow.session.flush()
        uow.session.add(
            Invitation(
                distribution_id=distribution.id,
                contact_id=ann["id"],
                status="sent",
                sent_at=utcnow(),
            )
        )
        uow.commit()
    detail = made(client.get(path, headers=h), 200)
    assert detail["mailing_lists"] == [{"id": vip["id"], "name": "VIP"}]
    [invitation] = detail["history"]["invitations"]
    assert invitation["survey_id"] == survey_id and invitation["subject"] == "How did we do?"
    assert invitation["status"] == "sent" and invitation["sent_at"]
    [response] = detail["history"]["responses"]
    assert response["id"] == answered.json()["id"] and response["survey_id"] == survey_id
    assert_error(client.get(path, headers=bob.headers), 404)

    # deleting: the contact goes, a list goes (its contacts stay)
    assert client.delete(f"{API}/mailing-lists/{vip['id']}", headers=bob.headers).status_code == 404
    assert client.delete(f"{API}/mailing-lists/{vip['id']}", headers=h).status_code == 204
    assert made(client.get(lists, headers=h), 200) == []
    assert client.delete(path, headers=bob.headers).status_code == 404
    assert client.delete(path, headers=h).status_code == 204
    assert_error(client.get(path, headers=h), 404)


CSV = (
    b"Email,First Name,LastName,ExternalDataReference,CaseId,Region\r\n"
    b"ann@example.com,Ann,Lee,003A,500X,North\r\n"
    b"not-an-email,Bad,Row,,,\r\n"
    b"bo@example.com,Bo,Stone,003B,,South,extra\r\n"
    b"\r\n"
    b'"cy@example.com","Cy\nMulti",Line,003C,,\r\n'
    b"ANN@example.com,,Lee-Smith,,,\r\n"
) + b"dee@example.com,D\xe9e,,,,\r\n"


def test_import_csv_and_jsonl_report_bad_rows_by_line(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    bob = quick_person(container, "bob@example.com")
    h = alice.headers
    directory_id = new_directory(client, alice)
    url = f"{API}/directories/{directory_id}/contacts/import"

    result = made(
        client.post(
            url,
            content=CSV,
            params={"mailing_list": "Imported"},
            headers=h | {"Content-Type": "text/csv; charset=utf-8"},
        ),
        200,
    )
    assert (result["total"], result["created"], result["updated"], result["failed"]) == (
        6, 2, 1, 3,
    )  # fmt: skip
    assert [(p["line"], p["code"]) for p in result["problems"]] == [
        (3, "invalid_email"),
        (4, "too_many_cells"),
        (9, "not_utf8"),
    ]
    assert result["mailing_list_id"]
    listed = made(client.get(f"{API}/directories/{directory_id}/contacts", headers=h), 200)
    by_email = {c["email"]: c for c in listed["items"]}
    assert set(by_email) == {"ann@example.com", "cy@example.com"}
    ann = by_email["ann@example.com"]
    # the second row for Ann updated her: an empty cell keeps what was stored
    assert (ann["first_name"], ann["last_name"], ann["external_ref"]) == (
        "Ann",
        "Lee-Smith",
        "003A",
    )
    assert ann["embedded_data"] == {"CaseId": "500X", "Region": "North"}
    assert by_email["cy@example.com"]["first_name"] == "Cy Multi"
    on_list = made(
        client.get(
            f"{API}/directories/{directory_id}/contacts",
            params={"mailing_list_id": result["mailing_list_id"]},
            headers=h,
        ),
        200,
    )
    assert len(on_list["items"]) == 2

    # JSON lines by ?format=, matching on the external reference (which may change the email)
    lines = b"\n".join(
        [
            b'{"email": "ann.lee@example.com", "ExternalDataReference": "003A", "Plan": "gold"}',
            b'{"email": "cy@example.com", "external_ref": "003A"}',  # 003A's new email is taken
            b"[1, 2]",
            b'{"email": "eve@example.com", "first_name": "Eve\\r\\nBcc: x@evil.io"}',
        ]
    )
    result = made(
        client.post(
            url, content=lines, params={"format": "jsonl", "match_on": "external_ref"}, headers=h
        ),
        200,
    )
    assert (result["created"], result["updated"], result["failed"]) == (1, 1, 2)
    assert [(p["line"], p["code"]) for p in result["problems"]] == [
        (2, "email_taken"),
        (3, "not_an_object"),
    ]
    emails = {
        c["email"]: c
        for c in made(client.get(f"{API}/directories/{directory_id}/contacts", headers=h), 200)[
            "items"
        ]
    }
    assert "ann.lee@example.com" in emails and "ann@example.com" not in emails
    assert emails["ann.lee@example.com"]["embedded_data"]["Plan"] == "gold"
    assert emails["eve@example.com"]["first_name"] == "Eve Bcc: x@evil.io"

    # whole-file problems: nothing stored, one clear reason
    csv_headers = h | {"Content-Type": "text/csv"}
    assert_error(client.post(url, content=b"", headers=csv_headers), 422, "empty")
    assert_error(
        client.post(url, content=b"name,phone\nAnn,1\n", headers=csv_headers),
        422,
        "no_email_column",
    )
    assert_error(
        client.post(
            url, content=b"email\nx@example.com\n", headers=h | {"Content-Type": "image/png"}
        ),
        415,
    )
    assert_error(client.post(url, content=b"email\n", params={"format": "xml"}, headers=h), 422)
    assert_error(
        client.post(url, content=b"email\n", params={"match_on": "phone"}, headers=csv_headers), 422
    )
    assert_error(
        client.post(
            url, content=b"email\n", params={"mailing_list": "x" * 101}, headers=csv_headers
        ),
        422,
    )
    assert_error(client.post(url, content=b"email\nx@example.com\n", headers=bob.headers | {
        "Content-Type": "text/csv"}), 404)  # fmt: skip
    huge = b"email,note\n" + b"z@example.com," + b"y" * 200_000 + b"\nok@example.com,fine\n"
    result = made(client.post(url, content=huge, headers=csv_headers), 200)
    assert result["created"] == 1 and result["problems"][0]["code"] == "line_too_long"


def test_a_chunk_that_fails_whole_is_retried_row_by_row_and_list_names_match(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = quick_person(container, "alice@example.com")
    actor = Actor(id=alice.id, email=alice.email, is_admin=False)
    directory = directory_service.create_directory(container.db, actor, "Customers")
    real_upsert = directory_service.upsert_contact

    def clashing_upsert(session: Any, target: Any, fields: Any, **options: Any) -> Any:
        if fields.email == "boom@example.com":  # as if someone added it meanwhile
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return real_upsert(session, target, fields, **options)

    # The import upserts through its own module's name: the clash is injected there.
    monkeypatch.setattr(directory_imports, "upsert_contact", clashing_upsert)
    seen: list[int] = []
    good = [f"a{i}@example.com\n" for i in range(5)]
    lines = ["email\n", *good[:2], "boom@example.com\n", *good[2:]]
    result = directory_service.import_contacts(
        container.db, actor, directory.id, lines,
        "csv", chunk_size=2, mailing_list="All", on_progress=lambda r: seen.append(r.total),
    )  # fmt: skip
    assert (result.total, result.created, result.failed) == (6, 5, 1)
    assert [(p.line, p.code) for p in result.problems] == [(4, "not_stored")]
    assert seen[-1] == 6 and len(seen) >= 3
    page = directory_service.list_contacts(
        container.db, actor, directory.id, mailing_list_id=result.mailing_list_id
    )
    assert len(page.items) == 5

    # the session-level helper finds a list by the name it is stored under
    with container.db.uow() as uow:
        target = directory_service.directory_of_owner(uow.session, alice.id, "Default")
        fields = directory_service.ContactFields(email="ann@example.com")
        contact, _ = directory_service.upsert_contact(uow.session, target, fields)
        first = directory_service.add_to_mailing_list(uow.session, target, " VIP ", contact)
        again = directory_service.add_to_mailing_list(uow.session, target, "VIP", contact)
        assert first.id == again.id and first.name == "VIP"
        uow.commit()
    [listed] = directory_service.list_mailing_lists(container.db, actor, target.id)
    assert (listed.name, listed.member_count) == ("VIP", 1)


NAIVE_CURSOR = "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIlJfeCJd"  # ["2026-01-01T00:00:00", "R_x"]


def test_every_list_answers_a_cursor_without_a_time_zone_or_of_another_kind_with_bad_cursor(
    client: TestClient, alice: Person
) -> None:
    """One keyset for every list: a cursor naming a time without a zone is refused as the
    responses list always did (the others answered 500), and so is another kind of list's."""
    from cxloop.services.pagination import encode_cursor

    h = alice.headers
    survey = made(client.post("/api/v1/surveys", json={"name": "Paged"}, headers=h), 201)
    directory = made(client.post(f"{API}/directories", json={"name": "Paged"}, headers=h), 201)
    assert survey["id"] and directory["id"]
    lists = [
        "/api/v1/surveys",
        "/api/v1/runs",
        f"/api/v1/runs?survey_id={survey['id']}",
        f"/api/v1/surveys/{survey['id']}/distributions",
        f"/api/v1/surveys/{survey['id']}/responses",
        f"{API}/directories/{directory['id']}/contacts",
    ]
    int_id = encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), 7)
    for path in lists:
        for cursor in (NAIVE_CURSOR, int_id):
            reply = client.get(path, params={"cursor": cursor}, headers=h)
            assert_error(reply, 422, "bad_cursor")
        assert made(client.get(path, headers=h), 200)["next_cursor"] is None, path
