"""`cxloop surveys signed-link`, `rotate-link-key` and `anonymous-link` on a real database,
their links opened through the real respondent pages."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from tests.conftest import Person
from tests.integration.cli_helpers import cxloop
from tests.integration.survey_helpers import make_survey, quick_person
from tests.integration.test_trusted_embedded_data import CASE, CONTENT


@pytest.fixture
def admin(container: Container) -> Person:
    return quick_person(container, "admin@example.com", admin=True)


@pytest.fixture
def survey_id(client: TestClient, admin: Person) -> str:
    return make_survey(client, admin, CONTENT)


def test_a_signed_link_from_the_command_line_opens_until_the_key_is_rotated(
    cli_env: Path,
    client: TestClient,
    survey_id: str,
) -> None:
    made = cxloop(
        "surveys", "signed-link", survey_id, "--field", f"CaseId={CASE}",
        "--field", "Campaign=a=b", "--expires-in", "7d",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    url = made.output.splitlines()[0]
    assert "Works until" in made.output
    query = "?" + urlsplit(url).query
    page = client.get(f"/s/{survey_id}{query}")
    assert page.status_code == 200 and CASE in page.text
    rotated = cxloop("surveys", "rotate-link-key", survey_id)
    assert rotated.exit_code == 0 and "older signed links no longer work" in rotated.output
    assert client.get(f"/s/{survey_id}{query}").status_code == 403


def test_the_anonymous_link_is_switched_from_the_command_line(
    cli_env: Path,
    client: TestClient,
    survey_id: str,
) -> None:
    off = cxloop("surveys", "anonymous-link", survey_id, "off")
    assert off.exit_code == 0, off.output
    assert client.get(f"/s/{survey_id}").status_code == 403
    assert cxloop("surveys", "anonymous-link", survey_id, "on").exit_code == 0
    assert client.get(f"/s/{survey_id}").status_code == 200


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--field", "CaseId"], "is not NAME=VALUE"),
        (["--field", "=x"], "is not NAME=VALUE"),
        (["--field", "CaseId=1", "--field", "CaseId=2"], "given twice"),
        (["--field", "Tier=gold"], "source server"),
        (["--field", "Nope=1"], "not an embedded data field"),
        (["--expires-in", "soon"], "not a duration"),
        (["--expires-in", "0d"], "not a duration"),
        (["--expires-in", "400d"], "at most 366 days"),
    ],
)
def test_bad_signed_link_options_exit_with_a_reason(
    cli_env: Path,
    survey_id: str,
    args: list[str],
    words: str,
) -> None:
    result = cxloop("surveys", "signed-link", survey_id, *args)
    assert result.exit_code != 0
    assert words in result.output.replace("\n", " ")


def test_unknown_surveys_and_states_exit_with_a_reason(
    cli_env: Path,
    admin: Person,
) -> None:
    for args in (
        ["signed-link", "SV_nosuchsurvey00"],
        ["rotate-link-key", "SV_nosuchsurvey00"],
        ["anonymous-link", "SV_nosuchsurvey00", "off"],
    ):
        result = cxloop("surveys", *args)
        assert result.exit_code != 0 and "SV_nosuchsurvey00" in result.output
    maybe = cxloop("surveys", "anonymous-link", "SV_x", "maybe")
    assert maybe.exit_code != 0 and "neither on nor off" in maybe.output
