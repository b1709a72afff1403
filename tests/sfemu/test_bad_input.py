"""Bad input of every kind gets a Salesforce error code, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfemu.testing import InProcessEmulator

V = "/services/data/v62.0"
# Examples per endpoint family: a few hundred, so that rarer shapes of bad input come up too
# (each example is a handful of in-process calls, about 2-5 ms each).
EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[InProcessEmulator, Any, dict[str, str]]]:
    """One emulator for the module: hypothesis runs many examples per test."""
    emulator = InProcessEmulator()
    with emulator.client() as client:
        yield emulator, client, {"Authorization": f"Bearer {emulator.token()}"}
    emulator.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "Name",
        "LastName",
        "Email",
        "AccountId",
        "Birthdate",
        "NumberOfEmployees",
        "Id",
        "Sentiment__c",
        "NPS_Score__c",
        "Contact__c",
        "Contact__r",
        "RecordTypeId",
        "attributes",
        "OwnerId",
        "IsDeleted",
        "Bogus__c",
        "Response_ID__c",
        "CreatedDate",
    ]
)
records = st.dictionaries(field_names, json_values, max_size=6)
objects = st.sampled_from(
    ["Account", "Contact", "Case", "Survey_Response__c", "User", "Nope__c", "account"]
)


def check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, list) and body and "errorCode" in body[0], body


@FUZZ
@given(objects, records)
def test_random_records_to_create_and_update(
    shared: Any, sobject: str, body: dict[str, Any]
) -> None:
    _emulator, client, headers = shared
    check(client.post(f"{V}/sobjects/{sobject}", json=body, headers=headers))
    check(client.patch(f"{V}/sobjects/{sobject}/Response_ID__c/K1", json=body, headers=headers))


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"attributes": st.fixed_dictionaries({"type": objects})},
            optional={"LastName": json_values, "Name": json_values, "Id": json_values},
        ),
        max_size=5,
    ),
    st.booleans() | json_values,
)
def test_random_collections(shared: Any, items: list[dict[str, Any]], all_or_none: Any) -> None:
    _emulator, client, headers = shared
    check(
        client.post(
            f"{V}/composite/sobjects",
            json={"allOrNone": all_or_none, "records": items},
            headers=headers,
        )
    )
    check(client.patch(f"{V}/composite/sobjects", json={"records": items}, headers=headers))


@FUZZ
@given(json_values)
def test_random_bodies_everywhere(shared: Any, body: Any) -> None:
    _emulator, client, headers = shared
    for method, path in (
        ("POST", "/composite"),
        ("POST", "/composite/sobjects"),
        ("PATCH", "/composite/sobjects"),
        ("PATCH", "/composite/sobjects/Survey_Response__c/Response_ID__c"),
        ("POST", "/composite/sobjects/Contact"),
    ):
        check(client.request(method, f"{V}{path}", json=body, headers=headers))


@FUZZ
@given(
    st.lists(st.text(alphabet="abcAZ09_-.%'@{}!", max_size=20), max_size=5),
    st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
)
def test_random_paths(shared: Any, segments: list[str], method: str) -> None:
    _emulator, client, headers = shared
    path = "/".join(["sobjects", *segments])
    check(client.request(method, f"{V}/{path}", content=b"{}", headers=headers))
    check(client.request(method, f"{V}/{'/'.join(segments)}", content=b"{}", headers=headers))


@FUZZ
@given(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_characters="\x7f"),
        max_size=80,
    )
)
def test_random_queries_and_locators(shared: Any, text: str) -> None:
    _emulator, client, headers = shared
    check(client.get(f"{V}/query", params={"q": text}, headers=headers))
    check(
        client.get(
            f"{V}/query", params={"q": f"SELECT Id FROM Contact WHERE {text}"}, headers=headers
        )
    )
    check(client.get(f"{V}/query/{text.replace('/', '')}", headers=headers))


def test_the_app_works_through_httpx_asgi_transport(shared: Any) -> None:
    emulator, _client, headers = shared

    async def run() -> None:
        async with emulator.async_client(headers=headers) as client:
            response = await client.get(f"{V}/sobjects/Account/describe")
            assert response.status_code == 200
            bad = await client.post(f"{V}/sobjects/Account", content=b"{oops")
            assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "JSON_PARSER_ERROR"

    asyncio.run(run())
