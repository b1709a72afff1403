"""SOQL over REST: fields, parent relationships, filters, ordering, paging, counts, errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfemu import soql
from sfemu.errors import SalesforceError
from sfemu.testing import InProcessEmulator, in_process

from .conftest import Api, error_of


@pytest.fixture
def people(admin: Api) -> dict[str, str]:
    for seeded in admin.query("SELECT Id FROM Contact").json()["records"]:
        admin.delete(f"/sobjects/Contact/{seeded['Id']}")
    acme = admin.create("Account", {"Name": "Zeta Corp", "Industry": "Banking"})
    beta = admin.create("Account", {"Name": "beta ltd"})
    ids = {"zeta": acme, "beta": beta}
    rows = [
        ("Ann", "Archer", 30, acme, "2020-01-15", "ann@zeta.example"),
        ("Bob", "Baker", 55, acme, "1970-06-01", None),
        ("Cid", "Carter", 41, beta, None, "cid@beta.example"),
        ("Dee", "O'Neil", 23, None, "2001-12-31", "dee@example.com"),
    ]
    for first, last, _age, account, birthdate, email in rows:
        ids[first] = admin.create(
            "Contact",
            {
                "FirstName": first,
                "LastName": last,
                "AccountId": account,
                "Birthdate": birthdate,
                "Email": email,
            },
        )
    return ids


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["FirstName"] for r in response.json()["records"]]


def test_query_shape(admin: Api, people: dict[str, str]) -> None:
    body = admin.query(f"SELECT Id, Name FROM Contact WHERE Id = '{people['Ann']}'").json()
    assert body == {
        "totalSize": 1,
        "done": True,
        "records": [
            {
                "attributes": {
                    "type": "Contact",
                    "url": f"/services/data/v62.0/sobjects/Contact/{people['Ann']}",
                },
                "Id": people["Ann"],
                "Name": "Ann Archer",
            }
        ],
    }


def test_field_names_come_back_in_schema_case(admin: Api, people: dict[str, str]) -> None:
    record = admin.query("select id, firstname from contact where firstname = 'ann'").json()[
        "records"
    ][0]
    assert list(record) == ["attributes", "Id", "FirstName"]


def test_parent_relationship_fields_nest_and_are_null_without_parent(
    admin: Api, people: dict[str, str]
) -> None:
    records = admin.query(
        "SELECT FirstName, Account.Name, Account.Industry FROM Contact ORDER BY FirstName"
    ).json()["records"]
    assert records[0]["Account"] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v62.0/sobjects/Account/{people['zeta']}",
        },
        "Name": "Zeta Corp",
        "Industry": "Banking",
    }
    assert records[3]["FirstName"] == "Dee" and records[3]["Account"] is None


def test_custom_relationship_and_owner(admin: Api, people: dict[str, str]) -> None:
    admin.create(
        "Survey_Response__c",
        {"Response_ID__c": "Q1", "Contact__c": people["Cid"], "NPS_Score__c": 7},
    )
    record = admin.query(
        "SELECT Contact__r.Email, Owner.Name, Name FROM Survey_Response__c"
    ).json()["records"][0]
    assert record["Contact__r"]["Email"] == "cid@beta.example"
    assert record["Owner"]["Name"] == "Ada Admin"
    filtered = admin.query("SELECT Id FROM Survey_Response__c WHERE Contact__r.LastName = 'carter'")
    assert filtered.json()["totalSize"] == 1


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("FirstName = 'ann'", ["Ann"]),
        ("FirstName != 'Ann'", ["Bob", "Cid", "Dee"]),
        ("FirstName <> 'Ann'", ["Bob", "Cid", "Dee"]),
        ("LastName LIKE 'b%'", ["Bob"]),
        ("LastName LIKE '%er'", ["Ann", "Bob", "Cid"]),
        ("LastName LIKE '_aker'", ["Bob"]),
        ("LastName = 'O\\'Neil'", ["Dee"]),
        ("FirstName IN ('Ann', 'cid')", ["Ann", "Cid"]),
        ("FirstName NOT IN ('Ann', 'Cid')", ["Bob", "Dee"]),
        ("Birthdate > 2000-01-01", ["Ann", "Dee"]),
        ("Birthdate <= 1970-06-01", ["Bob"]),
        ("Birthdate = null", ["Cid"]),
        ("Email != null", ["Ann", "Cid", "Dee"]),
        ("FirstName = 'Ann' OR FirstName = 'Bob'", ["Ann", "Bob"]),
        ("(FirstName = 'Ann' OR FirstName = 'Bob') AND Email != null", ["Ann"]),
        ("NOT FirstName = 'Ann'", ["Bob", "Cid", "Dee"]),
        ("NOT (FirstName = 'Ann' OR Email = null)", ["Cid", "Dee"]),
        ("Account.Name = 'Zeta Corp'", ["Ann", "Bob"]),
        ("HasOptedOutOfEmail = false", ["Ann", "Bob", "Cid", "Dee"]),
        ("CreatedDate = TODAY", ["Ann", "Bob", "Cid", "Dee"]),
        ("CreatedDate < LAST_N_DAYS:3", []),
        ("CreatedDate > 2000-01-01T00:00:00Z", ["Ann", "Bob", "Cid", "Dee"]),
    ],
)
def test_where_operators(
    admin: Api, people: dict[str, str], where: str, expected: list[str]
) -> None:
    assert (
        names(admin.query(f"SELECT FirstName FROM Contact WHERE {where} ORDER BY FirstName"))
        == expected
    )


def test_id_filters_accept_15_and_18_characters(admin: Api, people: dict[str, str]) -> None:
    ann = people["Ann"]
    assert names(admin.query(f"SELECT FirstName FROM Contact WHERE Id = '{ann[:15]}'")) == ["Ann"]
    assert names(
        admin.query(f"SELECT FirstName FROM Contact WHERE AccountId = '{people['beta']}'")
    ) == ["Cid"]


def test_order_by_limit_offset(admin: Api, people: dict[str, str]) -> None:
    assert names(admin.query("SELECT FirstName FROM Contact ORDER BY LastName DESC")) == [
        "Dee",
        "Cid",
        "Bob",
        "Ann",
    ]
    assert names(
        admin.query("SELECT FirstName FROM Contact ORDER BY Birthdate NULLS LAST LIMIT 2")
    ) == ["Bob", "Dee"]
    assert names(admin.query("SELECT FirstName FROM Contact ORDER BY Birthdate")) == [
        "Cid",
        "Bob",
        "Dee",
        "Ann",
    ]
    assert names(
        admin.query("SELECT FirstName FROM Contact ORDER BY FirstName LIMIT 2 OFFSET 1")
    ) == ["Bob", "Cid"]
    accounts = admin.query("SELECT Name FROM Account ORDER BY Name").json()["records"]
    assert [a["Name"] for a in accounts] == [
        "Acme Corp",
        "beta ltd",
        "Zeta Corp",
    ]  # case-insensitive


def test_count(admin: Api, people: dict[str, str]) -> None:
    assert admin.query("SELECT COUNT() FROM Contact WHERE Email != null").json() == {
        "totalSize": 3,
        "done": True,
        "records": [],
    }
    aggregate = admin.query("SELECT COUNT(Id) total FROM Contact").json()
    assert aggregate["records"] == [{"attributes": {"type": "AggregateResult"}, "total": 4}]


def test_query_all_includes_deleted_records(admin: Api, people: dict[str, str]) -> None:
    admin.delete(f"/sobjects/Contact/{people['Dee']}")
    assert names(admin.query("SELECT FirstName FROM Contact WHERE FirstName = 'Dee'")) == []
    everything = admin.get(
        "/queryAll",
        params={"q": "SELECT FirstName, IsDeleted FROM Contact WHERE FirstName = 'Dee'"},
    )
    assert everything.json()["records"][0]["IsDeleted"] is True


def test_paging_with_next_records_url() -> None:
    with in_process(query_batch_size=200) as emu, emu.client() as client:
        api = Api(client, emu.token())
        response = api.post(
            "/composite/sobjects",
            json={
                "records": [
                    {"attributes": {"type": "Lead"}, "LastName": f"L{i:03d}", "Company": "C"}
                    for i in range(200)
                ]
            },
        )
        assert response.status_code == 200
        api.post(
            "/composite/sobjects",
            json={
                "records": [
                    {"attributes": {"type": "Lead"}, "LastName": f"M{i:03d}", "Company": "C"}
                    for i in range(50)
                ]
            },
        )
        first = api.query("SELECT LastName FROM Lead ORDER BY LastName").json()
        assert first["totalSize"] == 250 and first["done"] is False and len(first["records"]) == 200
        assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
        assert first["nextRecordsUrl"].endswith("-200")
        second = client.get(
            first["nextRecordsUrl"], headers={"Authorization": f"Bearer {api.token}"}
        ).json()
        assert (
            second["done"] is True
            and "nextRecordsUrl" not in second
            and len(second["records"]) == 50
        )
        assert second["records"][-1]["LastName"] == "M049"
        gone = client.get(
            first["nextRecordsUrl"] + "0", headers={"Authorization": f"Bearer {api.token}"}
        )
        assert error_of(gone)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_options_header_sets_batch_size(admin: Api) -> None:
    admin.post(
        "/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "C"}
                for i in range(200)
            ]
        },
    )
    admin.create("Lead", {"LastName": "One more", "Company": "C"})
    body = admin.get(
        "/query",
        params={"q": "SELECT Id FROM Lead"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    assert len(body["records"]) == 200 and body["done"] is False


@pytest.mark.parametrize(
    ("query", "code", "needle"),
    [
        (
            "SELECT Id, FullName FROM Account",
            "INVALID_FIELD",
            "No such column 'FullName' on entity 'Account'",
        ),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE", "sObject type 'Nope__c' is not supported"),
        ("SELECT Id FORM Account", "MALFORMED_QUERY", "unexpected token: 'FORM'"),
        ("SELECT FROM Account", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Account WHERE Name = 'x' AND Name = 'y' OR Name = 'z'",
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY", ""),
        (
            "SELECT Id FROM Account WHERE Name = 5",
            "INVALID_FIELD",
            "must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE NumberOfEmployees = '5'",
            "INVALID_FIELD",
            "must be of type int",
        ),
        (
            "SELECT Id FROM Account WHERE Id = 'abc'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: abc",
        ),
        (
            "SELECT Id FROM Account WHERE Bogus.Name = 'x'",
            "INVALID_FIELD",
            "Didn't understand relationship 'Bogus'",
        ),
        (
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "MALFORMED_QUERY",
            "not supported by sfemu",
        ),
        (
            "SELECT Id FROM Account GROUP BY Name",
            "MALFORMED_QUERY",
            "GROUP BY is not supported by sfemu",
        ),
        ("SELECT Id, Id FROM Account", "MALFORMED_QUERY", "duplicate field selected: Id"),
        (
            "SELECT Id FROM Account OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ),
        ("SELECT COUNT(), Name FROM Account", "MALFORMED_QUERY", "COUNT()"),
        ("", "MALFORMED_QUERY", ""),
    ],
)
def test_query_errors(admin: Api, query: str, code: str, needle: str) -> None:
    response = admin.query(query)
    assert response.status_code == 400
    error = error_of(response)
    assert error["errorCode"] == code
    assert needle in error["message"]


def test_error_message_points_at_the_culprit(admin: Api) -> None:
    message = error_of(admin.query("SELECT Id, FullName FROM Account"))["message"]
    assert message.startswith(
        "\nSELECT Id, FullName FROM Account\n           ^\nERROR at Row:1:Column:12\n"
    )


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_the_parser_never_fails_other_than_malformed_query(text: str) -> None:
    try:
        soql.parse(text)
    except SalesforceError as exc:
        assert exc.code == "MALFORMED_QUERY"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=" ()'=<>!%_,.ANDORNOTINLIKESELECTFROMWHEREId0123456789ab", max_size=50))
def test_any_where_clause_gives_a_result_or_a_salesforce_error(clause: str) -> None:
    emu = _shared_emulator()
    from sfemu.dml import Caller

    org = emu.emulator.org("acme")
    caller = Caller(org, org.user("admin@example.com"))
    try:
        emu.emulator.queries.run(caller, f"SELECT Id FROM Contact WHERE {clause}")
    except SalesforceError as exc:
        assert exc.status == 400


_SHARED: list[InProcessEmulator] = []


def _shared_emulator() -> InProcessEmulator:
    if not _SHARED:
        _SHARED.append(InProcessEmulator())
    return _SHARED[0]
