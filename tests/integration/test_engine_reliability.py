"""Nothing lost, nothing duplicated: 2,000 responses through an unreliable Salesforce."""

from __future__ import annotations

import os
from typing import Any

from cxloop.bootstrap import Container
from cxloop.db.run_models import TaskRun
from sfemu.testing import EmulatorServer
from tests.integration.test_engine import add_workflow, drain, submit, upsert_workflow

# The full 2,000 (5-10 s a database since the engine got cheaper); a smaller run for a quick
# check: CXLOOP_TEST_RELIABILITY_RESPONSES=300.
RESPONSES = int(os.environ.get("CXLOOP_TEST_RELIABILITY_RESPONSES", "2000"))


def contact_insert_workflow() -> dict[str, Any]:
    return {
        "name": "Contact per response",
        "event": {"type": "survey_response", "when": ["created"]},
        "tasks": [
            {
                "id": "contact",
                "type": "salesforce",
                "connection": "Acme",
                "object": "Contact",
                "action": "insert",
                "dedupe_field": "External_Key__c",
                "mappings": [
                    {"field": "LastName", "value": "Respondent"},
                    {"field": "External_Key__c", "value": "${e://Field/ResponseID}"},
                ],
            }
        ],
    }


def count(emulator: EmulatorServer, soql: str) -> int:
    reply = emulator.client().get("/services/data/v62.0/query/", params={"q": soql})
    return reply.json()["totalSize"]


def distinct_keys(emulator: EmulatorServer, sobject: str, field: str) -> tuple[int, int]:
    client = emulator.client()
    values: list[str] = []
    url = "/services/data/v62.0/query/"
    params: dict[str, str] | None = {"q": f"SELECT {field} FROM {sobject} WHERE {field} != null"}
    while url:
        page = client.get(url, params=params).json()
        values += [r[field] for r in page["records"]]
        url, params = page.get("nextRecordsUrl"), None
    return len(values), len(set(values))


def test_every_response_lands_exactly_once_despite_faults(
    linked: Container, setup: dict[str, Any], emulator: EmulatorServer
) -> None:
    linked.settings.lease_s = 5
    add_workflow(linked, setup, upsert_workflow("Acme"))
    add_workflow(linked, setup, contact_insert_workflow())
    before = count(emulator, "SELECT COUNT() FROM Contact WHERE External_Key__c != null")
    faults = [
        {"error": "UNABLE_TO_LOCK_ROW", "fraction": 0.2},  # transient, on every kind of call
        {"mode": "commit_then_drop", "fraction": 0.1, "method": "POST"},  # ambiguous inserts
        {"mode": "commit_then_drop", "fraction": 0.1, "method": "PATCH"},  # ambiguous upserts
        {"error": "SERVER_UNAVAILABLE", "count": 6},  # down for a while
    ]
    for fault in faults:
        emulator.control.post("/faults", json=fault).raise_for_status()
    emulator.control.patch("/orgs/acme", json={"session_timeout_s": 2}).raise_for_status()
    response_ids = [submit(linked, setup, n % 11) for n in range(RESPONSES)]
    drain(linked, timeout=300)
    emulator.control.delete("/faults").raise_for_status()

    total, distinct = distinct_keys(emulator, "Survey_Response__c", "Response_ID__c")
    assert (total, distinct) == (RESPONSES, RESPONSES)
    total, distinct = distinct_keys(emulator, "Contact", "External_Key__c")
    assert (total - before, distinct - before) == (RESPONSES, RESPONSES)
    with linked.db.reader() as uow:
        by_status: dict[str, int] = {}
        for row in uow.session.query(TaskRun):
            by_status[row.status] = by_status.get(row.status, 0) + 1
    assert by_status == {"succeeded": 2 * RESPONSES}
    assert len(set(response_ids)) == RESPONSES
