"""Surveys as projects: owner and editors change, viewers read, everyone else gets 404."""

from fastapi.testclient import TestClient

from tests.conftest import Person
from tests.integration.test_auth_api import assert_error


def create(client: TestClient, person: Person, name: str = "Case follow-up") -> dict:
    response = client.post("/api/v1/surveys", json={"name": name}, headers=person.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_owner_creates_reads_updates_and_deletes(client: TestClient, alice: Person) -> None:
    survey = create(client, alice)
    assert survey["id"].startswith("SV_") and survey["status"] == "draft"
    assert survey["owner"]["email"] == alice.email and survey["your_role"] == "owner"
    path = f"/api/v1/surveys/{survey['id']}"
    assert client.get(path, headers=alice.headers).json()["name"] == "Case follow-up"
    updated = client.patch(path, json={"name": "NPS", "status": "active"}, headers=alice.headers)
    assert updated.status_code == 200
    assert updated.json()["name"] == "NPS" and updated.json()["status"] == "active"
    assert client.delete(path, headers=alice.headers).status_code == 204
    assert_error(client.get(path, headers=alice.headers), 404, "not_found")


def test_outsiders_get_404_not_403(client: TestClient, alice: Person, bob: Person) -> None:
    path = f"/api/v1/surveys/{create(client, alice)['id']}"
    assert_error(client.get(path, headers=bob.headers), 404)
    assert_error(client.patch(path, json={"name": "x"}, headers=bob.headers), 404)
    assert_error(client.delete(path, headers=bob.headers), 404)
    assert client.get("/api/v1/surveys", headers=bob.headers).json()["items"] == []


def test_viewer_reads_editor_changes_only_owner_manages(
    client: TestClient, alice: Person, bob: Person, carol: Person
) -> None:
    survey = create(client, alice)
    path = f"/api/v1/surveys/{survey['id']}"
    for person, role in ((bob, "viewer"), (carol, "editor")):
        added = client.post(
            f"{path}/collaborators", json={"email": person.email, "role": role},
            headers=alice.headers,
        )  # fmt: skip
        assert added.status_code == 201 and added.json()["role"] == role
    assert client.get(path, headers=bob.headers).json()["your_role"] == "viewer"
    assert_error(client.patch(path, json={"name": "x"}, headers=bob.headers), 403, "forbidden")
    assert client.patch(path, json={"name": "Edited"}, headers=carol.headers).status_code == 200
    # editors change content but do not manage the project
    assert_error(client.delete(path, headers=carol.headers), 403)
    assert_error(
        client.post(f"{path}/collaborators", json={"email": "admin@example.com", "role": "viewer"},
                    headers=carol.headers), 403,
    )  # fmt: skip
    assert_error(
        client.post(f"{path}/transfer", json={"new_owner_email": carol.email},
                    headers=carol.headers), 403,
    )  # fmt: skip
    # the owner promotes the viewer, then removes the editor
    promoted = client.patch(
        f"{path}/collaborators/{bob.id}", json={"role": "editor"}, headers=alice.headers
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "editor"
    removed = client.delete(f"{path}/collaborators/{carol.id}", headers=alice.headers)
    assert removed.status_code == 204
    assert_error(client.get(path, headers=carol.headers), 404)


def test_collaborator_may_leave_by_themselves(
    client: TestClient, alice: Person, bob: Person
) -> None:
    path = f"/api/v1/surveys/{create(client, alice)['id']}"
    client.post(f"{path}/collaborators", json={"email": bob.email, "role": "viewer"},
                headers=alice.headers)  # fmt: skip
    assert client.delete(f"{path}/collaborators/{bob.id}", headers=bob.headers).status_code == 204
    assert_error(client.get(path, headers=bob.headers), 404)


def test_collaborator_mistakes_are_explained(
    client: TestClient, alice: Person, bob: Person
) -> None:
    path = f"/api/v1/surveys/{create(client, alice)['id']}/collaborators"
    assert_error(client.post(path, json={"email": alice.email, "role": "editor"},
                             headers=alice.headers), 409, "already_owner")  # fmt: skip
    assert_error(client.post(path, json={"email": "nobody@example.com", "role": "editor"},
                             headers=alice.headers), 404, "user_not_found")  # fmt: skip
    assert_error(client.post(path, json={"email": bob.email, "role": "owner"},
                             headers=alice.headers), 422, "invalid_input")  # fmt: skip
    client.post(path, json={"email": bob.email, "role": "viewer"}, headers=alice.headers)
    assert_error(client.post(path, json={"email": bob.email, "role": "editor"},
                             headers=alice.headers), 409, "already_collaborator")  # fmt: skip


def test_transfer_ownership_keeps_previous_owner_as_editor_when_the_receiver_agrees(
    client: TestClient, alice: Person, bob: Person
) -> None:
    survey = create(client, alice)
    path = f"/api/v1/surveys/{survey['id']}"
    client.post(f"{path}/collaborators", json={"email": bob.email, "role": "viewer"},
                headers=alice.headers)  # fmt: skip
    offered = client.post(f"{path}/transfer", json={"new_owner_email": bob.email},
                          headers=alice.headers)  # fmt: skip
    assert offered.status_code == 201 and offered.json()["status"] == "pending"
    assert client.get(path, headers=bob.headers).json()["your_role"] == "viewer"
    accepted = client.post(
        f"/api/v1/transfers/{offered.json()['id']}/accept",
        json={"keep_previous_owner_as_editor": True}, headers=bob.headers,
    )  # fmt: skip
    assert accepted.status_code == 200 and accepted.json()["kept_previous_owner"] is True
    moved = client.get(path, headers=bob.headers).json()
    assert moved["owner"]["email"] == bob.email and moved["your_role"] == "owner"
    assert [(c["user"]["email"], c["role"]) for c in moved["collaborators"]] == [
        (alice.email, "editor")
    ]
    assert client.get(path, headers=alice.headers).json()["your_role"] == "editor"


def test_admin_can_transfer_any_survey(
    client: TestClient, admin: Person, alice: Person, bob: Person
) -> None:
    path = f"/api/v1/surveys/{create(client, alice)['id']}"
    moved = client.post(
        f"{path}/transfer",
        json={"new_owner_email": bob.email, "keep_previous_owner_as_editor": False},
        headers=admin.headers,
    )
    assert moved.status_code == 200 and moved.json()["status"] == "accepted"
    assert client.get(path, headers=bob.headers).json()["collaborators"] == []
    assert_error(client.get(path, headers=alice.headers), 404)
    audit = client.get(
        "/api/v1/audit", params={"object_id": path.rsplit("/", 1)[1]}, headers=admin.headers
    ).json()["items"]
    assert [e["action"] for e in audit] == ["survey.transfer", "survey.create"]
    assert audit[0]["details"] == {"before": alice.email, "after": bob.email}


def test_list_is_paginated_with_a_cursor(client: TestClient, alice: Person, bob: Person) -> None:
    ids = [create(client, alice, f"Survey {i}")["id"] for i in range(7)]
    create(client, bob, "Not alice's")
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/surveys", params=params, headers=alice.headers).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_list_filters_by_status_and_name(client: TestClient, alice: Person) -> None:
    create(client, alice, "Onboarding 100%")
    active = create(client, alice, "Support CSAT")
    client.patch(f"/api/v1/surveys/{active['id']}", json={"status": "active"},
                 headers=alice.headers)  # fmt: skip
    by_status = client.get("/api/v1/surveys", params={"status": "active"}, headers=alice.headers)
    assert [s["name"] for s in by_status.json()["items"]] == ["Support CSAT"]
    by_name = client.get("/api/v1/surveys", params={"q": "100%"}, headers=alice.headers)
    assert [s["name"] for s in by_name.json()["items"]] == ["Onboarding 100%"]
    assert (
        client.get("/api/v1/surveys", params={"q": "%"}, headers=alice.headers).json()["items"][0][
            "name"
        ]
        == "Onboarding 100%"
    )
