"""Composite: subrequests with references, allOrNone, limits and bad input."""

from __future__ import annotations

from typing import Any

from .conftest import Api, error_of

V = "/services/data/v62.0"


def sub(method: str, url: str, ref: str, body: Any = None) -> dict[str, Any]:
    item = {"method": method, "url": V + url, "referenceId": ref}
    if body is not None:
        item["body"] = body
    return item


def test_references_chain_results(admin: Api) -> None:
    response = admin.post(
        "/composite",
        json={
            "compositeRequest": [
                sub("POST", "/sobjects/Account", "refAccount", {"Name": "Sample Account"}),
                sub(
                    "POST",
                    "/sobjects/Contact",
                    "refContact",
                    {"LastName": "Sample Contact", "AccountId": "@{refAccount.id}"},
                ),
                sub("GET", "/sobjects/Contact/@{refContact.id}?fields=AccountId", "getContact"),
                sub(
                    "GET",
                    "/query?q=SELECT+Id+FROM+Account+WHERE+Name+%3D+%27Sample+Account%27",
                    "q",
                ),
                sub("PATCH", "/sobjects/Account/@{q.records[0].Id}", "rename", {"Name": "Renamed"}),
            ]
        },
    )
    assert response.status_code == 200
    results = response.json()["compositeResponse"]
    account_id = results[0]["body"]["id"]
    assert results[0] == {
        "body": {"id": account_id, "success": True, "errors": []},
        "httpHeaders": {"Location": f"{V}/sobjects/Account/{account_id}"},
        "httpStatusCode": 201,
        "referenceId": "refAccount",
    }
    assert results[2]["body"]["AccountId"] == account_id
    assert results[4] == {
        "body": None,
        "httpHeaders": {},
        "httpStatusCode": 204,
        "referenceId": "rename",
    }
    assert admin.get(f"/sobjects/Account/{account_id}").json()["Name"] == "Renamed"


def test_a_failed_subrequest_halts_those_that_refer_to_it(admin: Api) -> None:
    results = admin.post(
        "/composite",
        json={
            "compositeRequest": [
                sub("POST", "/sobjects/Contact", "bad", {"FirstName": "No last name"}),
                sub("POST", "/sobjects/Task", "task", {"Subject": "x", "WhoId": "@{bad.id}"}),
                sub("POST", "/sobjects/Account", "fine", {"Name": "Independent"}),
            ]
        },
    ).json()["compositeResponse"]
    assert results[0]["httpStatusCode"] == 400
    assert results[0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert (
        results[1]["httpStatusCode"] == 400
        and results[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    )
    assert results[2]["httpStatusCode"] == 201


def test_all_or_none_rolls_back_and_halts(admin: Api) -> None:
    results = admin.post(
        "/composite",
        json={
            "allOrNone": True,
            "compositeRequest": [
                sub("POST", "/sobjects/Account", "first", {"Name": "Rolled back"}),
                sub("POST", "/sobjects/Contact", "bad", {"Email": "x@example.com"}),
                sub("POST", "/sobjects/Account", "never", {"Name": "Never"}),
            ],
        },
    ).json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [400, 400, 400]
    assert results[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert results[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert (
        admin.query("SELECT COUNT() FROM Account WHERE Name IN ('Rolled back', 'Never')").json()[
            "totalSize"
        ]
        == 0
    )


def test_collections_inside_composite(admin: Api) -> None:
    results = admin.post(
        "/composite",
        json={
            "compositeRequest": [
                sub(
                    "POST",
                    "/composite/sobjects",
                    "many",
                    {
                        "records": [
                            {"attributes": {"type": "Contact"}, "LastName": "One"},
                            {"attributes": {"type": "Contact"}, "LastName": "Two"},
                        ]
                    },
                ),
                sub("GET", "/sobjects/Contact/@{many[1].id}", "second"),
            ]
        },
    ).json()["compositeResponse"]
    assert results[1]["body"]["LastName"] == "Two"


def test_whole_call_counts_once(admin: Api) -> None:
    admin.post(
        "/composite",
        json={
            "compositeRequest": [
                sub("POST", "/sobjects/Account", f"a{i}", {"Name": f"A{i}"}) for i in range(5)
            ]
        },
    )
    assert admin.get("/limits").headers["sforce-limit-info"] == "api-usage=2/100000"


def test_more_than_25_subrequests_is_refused(admin: Api) -> None:
    response = admin.post(
        "/composite", json={"compositeRequest": [sub("GET", "/limits", f"r{i}") for i in range(26)]}
    )
    assert response.status_code == 400
    assert "at most 25" in error_of(response)["message"]


def test_bad_composite_requests(admin: Api) -> None:
    for body in (
        {},
        {"compositeRequest": []},
        {"compositeRequest": [{"method": "GET"}]},
        {"compositeRequest": [sub("GET", "/limits", "same"), sub("GET", "/limits", "same")]},
    ):
        response = admin.post("/composite", json=body)
        assert response.status_code == 400, body
    nested = admin.post(
        "/composite", json={"compositeRequest": [sub("POST", "/composite", "inner", {})]}
    ).json()
    assert nested["compositeResponse"][0]["httpStatusCode"] == 400
    unknown = admin.post(
        "/composite",
        json={
            "compositeRequest": [
                {"method": "GET", "url": "/services/data/v99.0/limits", "referenceId": "x"}
            ]
        },
    ).json()
    assert unknown["compositeResponse"][0]["httpStatusCode"] == 404
