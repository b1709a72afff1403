"""An update of a survey or a directory leaves one audit entry with each changed field's value
before and after (both go through `audit.record_update`), on both databases."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from tests.conftest import Person
from tests.integration.survey_helpers import quick_person

API = "/api/v1"


def _updates(client: TestClient, admin: Person, action: str) -> list[dict[str, Any]]:
    entries = client.get(f"{API}/audit", headers=admin.headers).json()["items"]
    return [entry for entry in entries if entry["action"] == action]


def test_survey_and_directory_updates_are_audited_with_before_and_after(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    admin = quick_person(container, "admin@example.com", admin=True)

    survey = client.post(f"{API}/surveys", json={"name": "NPS"}, headers=alice.headers).json()
    reply = client.patch(
        f"{API}/surveys/{survey['id']}", json={"name": "NPS 2027"}, headers=alice.headers
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == "NPS 2027"
    [entry] = _updates(client, admin, "survey.update")
    assert (entry["object_id"], entry["actor_id"]) == (survey["id"], alice.id)
    assert entry["details"] == {"before": {"name": "NPS"}, "after": {"name": "NPS 2027"}}

    directory = client.post(
        f"{API}/directories", json={"name": "Customers"}, headers=alice.headers
    ).json()
    reply = client.patch(
        f"{API}/directories/{directory['id']}",
        json={"frequency_limit": 2, "frequency_days": 30},
        headers=alice.headers,
    )
    assert reply.status_code == 200, reply.text
    assert (reply.json()["frequency_limit"], reply.json()["frequency_days"]) == (2, 30)
    [entry] = _updates(client, admin, "directory.update")
    assert entry["object_id"] == directory["id"]
    assert entry["details"] == {
        "before": {"name": "Customers", "frequency_limit": None, "frequency_days": None},
        "after": {"name": "Customers", "frequency_limit": 2, "frequency_days": 30},
    }
