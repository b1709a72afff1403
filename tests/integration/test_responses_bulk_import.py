"""Bulk import's storing shortcuts, on both databases: rows converted for the driver are stored
as SQLAlchemy stores them, the ledger is told of each batch once, and only ResponseIds that came
with the rows are looked up for clashes."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cxloop.bootstrap import Container
from cxloop.db import response_rows
from cxloop.db.models import Response
from cxloop.db.uow import core_connection
from cxloop.services import responses as response_service
from cxloop.services.access import Actor
from tests.integration.conftest import LedgerWatch
from tests.integration.survey_helpers import GOOD_VALUES, make_survey, quick_person


def setup(client: TestClient, container: Container) -> tuple[Actor, str]:
    alice = quick_person(container, "alice@example.com")
    return Actor(id=alice.id, email=alice.email, is_admin=False), make_survey(client, alice)


def stored_as_is(container: Container, response_id: str) -> dict[str, Any]:
    """A response's columns as the database keeps them (no type conversion on the way out)."""
    with container.db.reader() as uow:
        row = uow.session.execute(
            text("SELECT * FROM responses WHERE id = :id"), {"id": response_id}
        ).one()
    return {k: v for k, v in row._mapping.items() if k != "id"}


def held_or_not(together: bool, uow: Any) -> AbstractContextManager[None]:
    """`insert_rows` as it is, or its rows held back to the block's end (`inserts_together`:
    on PostgreSQL a multi-row INSERT in psycopg's pipeline instead of a COPY)."""
    if not together:
        return nullcontext()
    return response_rows.inserts_together(core_connection(uow.session))


@pytest.mark.parametrize("together", [False, True], ids=["alone", "together"])
def test_rows_converted_for_the_driver_are_stored_as_sqlalchemy_stores_them(
    client: TestClient, container: Container, together: bool
) -> None:
    _, survey_id = setup(client, container)
    now = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    row: dict[str, Any] = {
        "survey_id": survey_id,
        # What a driver may have to escape: tabs, newlines, backslashes, COPY's \N and \.
        "values": {"QID1": 9, "QID8": 'Ünïcödé «q»\n\t\\N \\. \r"x"', "QID4": ["1", "2"]},
        "embedded_data": {"CaseId": "500A", "Channel": None, "n": 1.5, "b": True},
        "started_at": now.astimezone(UTC) - timedelta(minutes=3),
        "ended_at": now,
        "duration_s": 180,
        "finished": True,
        "source": "import",
        "channel": "import",
        "language": "de",
        "distribution_id": None,
        "contact_id": "C\t1\\N\\.\n",
        "created_at": now,
        "updated_at": now,
    }
    with container.db.uow() as uow:
        uow.session.execute(response_rows.RESPONSE_INSERT, [row | {"id": "R_sqlalchemy00001"}])
        with held_or_not(together, uow):
            response_rows.insert_response_rows(
                uow.session,
                [
                    row | {"id": "R_driver000000001"},
                    row | {"id": "R_driver000000002", "ended_at": None},
                ],
            )
        uow.commit()
    assert stored_as_is(container, "R_driver000000001") == stored_as_is(
        container, "R_sqlalchemy00001"
    )
    assert stored_as_is(container, "R_driver000000002")["ended_at"] is None
    with container.db.reader() as uow:
        read = uow.session.get(Response, "R_driver000000001")
        assert read is not None
        assert {k: getattr(read, k) for k in row} == row
    # A clash is SQLAlchemy's IntegrityError, as with the INSERT (the import words it so).
    with container.db.uow() as uow, pytest.raises(IntegrityError), held_or_not(together, uow):
        response_rows.insert_response_rows(
            uow.session, [row | {"id": "R_driver000000003"}, row | {"id": "R_driver000000001"}]
        )
    # Held rows are written at the block's end, and not at all when the block raises; a block
    # that held nothing writes nothing; a block inside another holds its rows for the outer one.
    with container.db.uow() as uow, response_rows.inserts_together(core_connection(uow.session)):
        response_rows.insert_response_rows(uow.session, [])
    with container.db.uow() as uow:
        with response_rows.inserts_together(core_connection(uow.session)):
            with response_rows.inserts_together(core_connection(uow.session)):
                response_rows.insert_response_rows(uow.session, [row | {"id": "R_driver000000005"}])
            assert uow.session.get(Response, "R_driver000000005") is None  # still held
        uow.commit()
    with container.db.reader() as uow:
        assert uow.session.get(Response, "R_driver000000005") is not None
    with container.db.uow() as uow:
        with suppress(RuntimeError), response_rows.inserts_together(core_connection(uow.session)):
            response_rows.insert_response_rows(uow.session, [row | {"id": "R_driver000000004"}])
            raise RuntimeError("the group's check failed")
        uow.commit()
    with container.db.reader() as uow:
        assert uow.session.get(Response, "R_driver000000004") is None


def test_the_ledger_is_told_of_each_import_batch_once_with_the_rows_as_stored(
    client: TestClient, container: Container, ledger_watch: LedgerWatch
) -> None:
    actor, survey_id = setup(client, container)
    ledger_watch.interested = True  # as if a workflow included imported responses

    def check(uow: Any, facts: Any, event: str) -> None:
        for response in facts:
            stored = uow.session.get(Response, response.id)  # written in this transaction
            assert stored is not None and stored.values == response.values
            assert response.source == "import" and response.values["QID1"] == response.duration_s

    ledger_watch.before = check
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        response_service.SourceRow(
            n,
            {
                "values": GOOD_VALUES | {"QID1": n},
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(seconds=n)).isoformat(),
            },
        )
        for n in range(7)
    ]
    result = response_service.import_responses(container.db, actor, survey_id, rows, batch_size=3)
    assert (result.stored, result.failed) == (7, 0)
    assert [(event, len(facts)) for event, facts in ledger_watch.calls] == [
        ("created", 3), ("created", 3), ("created", 1),
    ]  # fmt: skip


def test_only_ids_that_came_with_rows_can_clash_and_they_are_refused_where_they_are(
    client: TestClient, container: Container
) -> None:
    actor, survey_id = setup(client, container)
    first = response_service.import_responses(
        container.db,
        actor,
        survey_id,
        [response_service.SourceRow(1, {"values": GOOD_VALUES, "id": "R_takenAlready001"})],
    )
    assert first.stored == 1
    documents = [
        {"values": GOOD_VALUES},
        {"values": GOOD_VALUES, "id": "R_takenAlready001"},  # stored before
        {"values": GOOD_VALUES, "id": "R_givenWithRow001"},
        {"values": GOOD_VALUES},
        {"values": GOOD_VALUES, "id": "R_givenWithRow001"},  # earlier in the same batch
        {"values": GOOD_VALUES, "id": "R_givenWithRow002"},
        {"values": {"QID1": 11}},
        {"values": GOOD_VALUES, "id": "R_givenWithRow002"},  # in an earlier batch
    ]
    stored: dict[int, str] = {}
    result = response_service.import_responses(
        container.db,
        actor,
        survey_id,
        [response_service.SourceRow(10 + n, doc) for n, doc in enumerate(documents)],
        batch_size=5,
        on_stored=stored.__setitem__,
    )
    assert (result.total, result.stored, result.failed) == (8, 4, 4)
    refused = {row.position: [p["code"] for p in row.problems] for row in result.bad_rows}
    assert refused == {
        11: ["duplicate_id"],
        14: ["duplicate_id"],
        16: ["out_of_range", "required", "required"],
        17: ["duplicate_id"],
    }
    assert sorted(stored) == [10, 12, 13, 15]
    assert stored[12] == "R_givenWithRow001" and stored[15] == "R_givenWithRow002"
    assert stored[10].startswith("R_") and stored[10] != stored[13]


def test_an_import_asks_the_ledger_whether_it_cares_once_per_batch(
    client: TestClient, container: Container, ledger_watch: LedgerWatch
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    actor = Actor(id=alice.id, email=alice.email, is_admin=False)
    rows = [response_service.SourceRow(n, {"values": GOOD_VALUES}) for n in range(5)]
    result = response_service.import_responses(container.db, actor, survey_id, rows, batch_size=2)
    assert result.stored == 5 and ledger_watch.calls == []  # no workflow takes imports
    assert ledger_watch.asked == [([survey_id], "import")] * 3  # once per batch
    ledger_watch.interested = True
    rows = [response_service.SourceRow(n, {"values": GOOD_VALUES}) for n in range(5)]
    response_service.import_responses(container.db, actor, survey_id, rows, batch_size=2)
    assert ledger_watch.sizes == [2, 2, 1]
