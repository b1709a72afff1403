"""Schemathesis against `/openapi.json`: generated requests to every API operation, valid and
invalid, as an admin whose token the run cannot revoke. No answer may be a server error, and
every answer must match what the OpenAPI document says of its status.

The operations are fuzzed in groups, one test each, so that pytest-xdist spreads the ~100
operations over its workers (as one test it held one worker for up to two minutes). Each group
has an app and a database of its own; the last group takes every operation no other group
names, so a new route is always fuzzed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from cxloop.bootstrap import Container, build_container
from cxloop.services import directory, survey_content, surveys, users
from cxloop.services.access import Actor
from cxloop.web.app import create_app
from tests.conftest import make_settings
from tests.integration.survey_helpers import all_types

pytestmark = pytest.mark.slow

# Per operation, once with valid and once with invalid data. A deeper run, by hand:
# CXLOOP_FUZZ_EXAMPLES=100 pytest tests/integration/test_api_fuzz.py
EXAMPLES_PER_MODE = int(os.environ.get("CXLOOP_FUZZ_EXAMPLES", "12"))
# Revoking its own token would leave the rest of the run answering 401.
NOT_FUZZED = {("DELETE", "/api/v1/tokens/{token_id}")}
# Operations whose 503 is their documented answer, not a server error: `/readyz?strict=true`
# answers 503 while no worker runs (as in this run), for monitors that want a failure.
ANSWERS_503 = {("GET", "/readyz")}
# The groups, each an operation path pattern, tried in this order (a path goes to the first
# that matches): about as many operations, and as much time, in each.
SURVEY = r"^/api/v1/surveys/\{survey_id\}"
GROUPS: dict[str, str] = {
    "responses": SURVEY + r"/responses",
    "workflows-runs": SURVEY + r"/workflows|^/api/v1/runs",
    "survey-content": SURVEY + r"/(content|questions|import)",
    "surveys": r"^/api/v1/surveys",
    "directory": r"^/api/v1/(directories|contacts|mailing-lists)",
    "users-connections": r"^/api/v1/(users|tokens|connections|salesforce)",
}
EVERY_OTHER = "other"  # transfers, the audit log, /livez, /readyz, and new ones


def group_of(path: str) -> str:
    """The group an operation's path belongs to (EVERY_OTHER when no pattern matches)."""
    return next((name for name, pattern in GROUPS.items() if re.search(pattern, path)), EVERY_OTHER)


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[tuple[FastAPI, Container]]:
    """The app on SQLite (database and queue), with a survey, a directory and a contact."""
    built = build_container(
        make_settings(
            tmp_path, f"sqlite:///{tmp_path / 'cxloop.db'}", f"sqlite:///{tmp_path / 'queue.db'}"
        ),
        upgrade_sqlite=True,
    )
    yield create_app(built), built
    built.close()


def _seed(container: Container) -> tuple[str, dict[str, str]]:
    db = container.db
    admin = users.create_user(db, "fuzz@example.com", "a long enough passphrase", is_admin=True)
    token = users.create_token(db, admin.email, "fuzz").token
    actor = Actor(id=admin.id, email=admin.email, is_admin=True)
    survey = surveys.create_survey(db, actor, "Fuzzed", "")
    survey_content.put_content(db, actor, survey.id, all_types())
    surveys.update_survey(db, actor, survey.id, {"status": "active"})
    people = directory.create_directory(db, actor, "Fuzzed")
    contact = directory.create_contact(
        db, actor, people.id, directory.ContactFields(email="someone@example.com")
    )
    ids = {"survey_id": survey.id, "directory_id": people.id, "contact_id": contact.id}
    return token, ids


def _aim(case: Any, ids: dict[str, str]) -> None:
    """Point most requests at things that exist; a delete of the thing itself keeps its
    generated id (the rest of the run needs the survey, directory and contact)."""
    for name, value in ids.items():
        if name in (case.path_parameters or {}):
            deletes_it = case.method == "DELETE" and case.path.endswith("{" + name + "}")
            if not deletes_it:
                case.path_parameters[name] = value


# Not timed: its time is the machine's load (80-125 s for all groups in a suite run on 2 cores).
# The hang guard is pytest-timeout's, wider than the suite's 300 s.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("group", [*GROUPS, EVERY_OTHER])
def test_no_generated_request_gets_a_server_error_or_an_undocumented_reply(
    fuzzed: tuple[FastAPI, Container], group: str
) -> None:
    app, container = fuzzed
    token, ids = _seed(container)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    operations = [operation for operation in operations if group_of(operation.path) == group]
    assert operations, f"no operation's path is in the group {group!r}: see GROUPS"
    for operation in operations:
        if (operation.method.upper(), operation.path) in NOT_FUZZED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                _aim(case, ids)
                checks = [response_schema_conformance]
                if (case.method.upper(), case.path) not in ANSWERS_503:
                    checks.append(not_a_server_error)
                response = case.call_and_validate(headers=headers, checks=checks)
                assert response.status_code != 500, f"{case.method} {case.path}: 500"

            try:
                run()
            except Unsatisfiable:
                pass  # nothing of this operation can be made invalid (no body, free-text ids)
            except Exception as exc:  # every operation's first failure, all reported at once
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"
                )
    assert not failures, "\n\n".join(failures)
