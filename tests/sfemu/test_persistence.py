"""SQLite persistence: records, tokens, usage and runtime settings survive a restart."""

from __future__ import annotations

import sqlite3

from sfemu.testing import in_process, temporary_database

from .conftest import Api


def test_a_file_database_keeps_state_across_restarts() -> None:
    with temporary_database() as path:
        with in_process(database=path) as first, first.client() as client:
            api = Api(client, first.token())
            record_id = api.create(
                "Survey_Response__c", {"Response_ID__c": "P-1", "NPS_Score__c": 10}
            )
            token = api.token
            client.patch(
                "/__emulator__/orgs/acme", json={"session_timeout_s": 999, "daily_api_limit": 500}
            )
            client.patch("/__emulator__/users/integration@example.com", json={"api_enabled": False})
            api.patch(f"/sobjects/Survey_Response__c/{record_id}", json={"Comment__c": "kept"})
        rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM records").fetchone()[0]
        assert rows > 0
        with in_process(database=path) as second, second.client() as client:
            api = Api(client, token)  # the same access token still works
            record = api.get(f"/sobjects/Survey_Response__c/{record_id}").json()
            assert record["Comment__c"] == "kept" and record["Name"] == "SR-000001"
            info = client.get("/__emulator__/orgs/acme").json()
            assert info["session_timeout_s"] == 999 and info["daily_api_limit"] == 500
            users = {u["username"]: u for u in info["users"]}
            assert users["integration@example.com"]["api_enabled"] is False
            # Ids and auto-numbers continue where they were.
            second_id = api.create("Survey_Response__c", {"Response_ID__c": "P-2"})
            assert second_id != record_id
            assert (
                api.get(f"/sobjects/Survey_Response__c/{second_id}").json()["Name"] == "SR-000002"
            )
            assert client.get("/__emulator__/api_usage").json()["acme"]["used"] >= 3
            # The seed was not applied a second time.
            assert (
                api.query("SELECT COUNT() FROM Account WHERE Name = 'Acme Corp'").json()[
                    "totalSize"
                ]
                == 1
            )


def test_memory_database_starts_empty_each_time() -> None:
    with in_process() as first, first.client() as client:
        Api(client, first.token()).create("Account", {"Name": "Gone"})
    with in_process() as second, second.client() as client:
        assert (
            Api(client, second.token())
            .query("SELECT COUNT() FROM Account WHERE Name = 'Gone'")
            .json()["totalSize"]
            == 0
        )
