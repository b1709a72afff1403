"""The first hour with the CLI, outside the demo: one data directory wherever a command runs,
opening and closing surveys, and output that survives a pipe (issue 13)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from cxloop.services import responses, survey_content, surveys, users, workflows
from cxloop.services.access import Actor
from cxloop.settings import Settings
from tests.conftest import Person
from tests.integration.cli_helpers import cxloop
from tests.integration.test_auth_api import assert_error
from tests.integration.test_workflows_api import CONTENT, EMAIL_WORKFLOW

QSF = Path(__file__).resolve().parents[1] / "fixtures" / "qsf"
LONG_NAME = " and ".join(["Customer satisfaction after a support case was closed"] * 3)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new user's shell: no CXLOOP_* settings, no cxloop.toml, a per-user data directory
    of its own, and a current directory with nothing in it."""
    for name in ("CXLOOP_DATA_DIR", "CXLOOP_DATABASE_URL", "CXLOOP_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    cwd = tmp_path / "somewhere" / "else"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return tmp_path


# --- one data directory


def test_default_data_dir_is_per_user_not_the_current_directory(elsewhere: Path) -> None:
    assert Settings().data_dir == elsewhere / "xdg" / "cxloop"


def test_command_without_a_database_refuses_and_creates_nothing(elsewhere: Path) -> None:
    created = cxloop("users", "create", "ann@example.com", "--password-stdin",
                     stdin="a long enough passphrase\n")  # fmt: skip
    assert created.exit_code == 1
    assert "No cxloop database in" in created.output and "--init" in created.output
    assert str(elsewhere / "xdg" / "cxloop") in created.output.replace("\n", "")
    assert not (elsewhere / "xdg").exists()
    assert list(Path.cwd().iterdir()) == []  # no ./cxloop-data


def test_init_creates_the_database_in_the_data_directory(elsewhere: Path) -> None:
    created = cxloop("--init", "users", "create", "ann@example.com", "--password-stdin",
                     stdin="a long enough passphrase\n")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert (elsewhere / "xdg" / "cxloop" / "cxloop.db").is_file()
    assert list(Path.cwd().iterdir()) == []


def test_commands_from_different_directories_share_the_servers_database(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cxloop("db", "upgrade").exit_code == 0  # what `cxloop serve` does first
    other = elsewhere / "another" / "directory"
    other.mkdir(parents=True)
    monkeypatch.chdir(other)
    created = cxloop("users", "create", "ann@example.com", "--password-stdin",
                     stdin="a long enough passphrase\n")  # fmt: skip
    assert created.exit_code == 0, created.output
    monkeypatch.chdir(elsewhere)
    assert "ann@example.com" in cxloop("users", "list").output


def test_data_dir_option_points_at_another_directory(elsewhere: Path) -> None:
    target = elsewhere / "server-data"
    refused = cxloop("--data-dir", target, "users", "list")
    assert refused.exit_code == 1 and str(target) in refused.output.replace("\n", "")
    assert not target.exists()
    assert cxloop("--data-dir", target, "--init", "users", "list").exit_code == 0
    assert (target / "cxloop.db").is_file()


def test_cxloop_toml_is_found_upwards_and_its_data_dir_is_relative_to_it(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CXLOOP_CONFIG")
    (elsewhere / "somewhere" / "cxloop.toml").write_text('data_dir = "data"\n')
    assert Settings().data_dir == elsewhere / "somewhere" / "data"
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(elsewhere / "env"))
    assert Settings().data_dir == elsewhere / "env"  # the environment still wins


def test_db_current_without_a_database_creates_nothing(elsewhere: Path) -> None:
    result = cxloop("db", "current")
    assert result.exit_code == 0 and result.output.startswith("empty")
    assert not (elsewhere / "xdg").exists()


def test_config_show_creates_nothing(elsewhere: Path) -> None:
    shown = cxloop("config", "show", "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.output)["data_dir"] == str(elsewhere / "xdg" / "cxloop")
    assert not (elsewhere / "xdg").exists()


# --- the CLI on a database of the test's own


@pytest.fixture
def cli_env(cli_env: Path, container: Container) -> Actor:
    """The CLI on `container`'s database (tests/integration/conftest.py); an admin, alice, is
    its only user."""
    return Actor.of(users.create_user(container.db, "alice@example.com", None, is_admin=True))


def imported_survey(container: Container, actor: Actor, name: str = "NPS") -> str:
    survey = surveys.create_survey(container.db, actor, name)
    survey_content.put_content(container.db, actor, survey.id, CONTENT)
    return survey.id


def test_surveys_open_and_close(cli_env: Actor, container: Container) -> None:
    imported = cxloop("surveys", "import", QSF / "nps.qsf")
    assert imported.exit_code == 0 and "draft" in imported.output
    survey_id = imported.output.split("Created survey ", 1)[1].split(" ", 1)[0]
    opened = cxloop("surveys", "open", survey_id)
    assert opened.exit_code == 0, opened.output
    assert f"Survey {survey_id}" in opened.output and "open" in opened.output
    assert surveys.get_survey(container.db, cli_env, survey_id).status == "active"
    assert cxloop("surveys", "open", survey_id).exit_code == 0  # already open: fine
    closed = cxloop("surveys", "close", survey_id)
    assert closed.exit_code == 0 and "closed" in closed.output
    assert surveys.get_survey(container.db, cli_env, survey_id).status == "closed"


def test_a_malformed_survey_yaml_is_refused_with_line_and_column(
    cli_env: Actor, tmp_path: Path
) -> None:
    source = tmp_path / "survey.yaml"
    source.write_text("format_version: 1\nquestions:\n  - qid: QID1\n    text: [oops\n")
    result = cxloop("surveys", "import", source)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "not valid YAML" in message and "(line 5, column 1)" in message
    assert "<byte string>" not in message and "<unicode string>" not in message


def test_surveys_open_of_an_unknown_survey_is_one_line(cli_env: Actor) -> None:
    result = cxloop("surveys", "open", "SV_nothere")
    assert result.exit_code == 1 and result.output.startswith("error:")
    assert "Traceback" not in result.output


def test_surveys_open_and_close_in_the_api(client: TestClient, alice: Person, bob: Person) -> None:
    created = client.post("/api/v1/surveys", json={"name": "NPS"}, headers=alice.headers).json()
    path = f"/api/v1/surveys/{created['id']}"
    opened = client.post(f"{path}/open", headers=alice.headers)
    assert opened.status_code == 200 and opened.json()["status"] == "active"
    again = client.post(f"{path}/open", headers=alice.headers)
    assert again.status_code == 200 and again.json()["status"] == "active"
    closed = client.post(f"{path}/close", headers=alice.headers)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert_error(client.post(f"{path}/open", headers=bob.headers), 404)
    assert_error(client.post("/api/v1/surveys/SV_nothere/close", headers=alice.headers), 404)
    documented = client.get("/openapi.json").json()["paths"]
    assert "post" in documented["/api/v1/surveys/{survey_id}/open"]
    assert "post" in documented["/api/v1/surveys/{survey_id}/close"]


# --- output for pipes


def test_piped_list_is_whole_tab_separated_values(cli_env: Actor, container: Container) -> None:
    survey_id = imported_survey(container, cli_env, LONG_NAME)
    listed = cxloop("surveys", "list")  # CliRunner's stdout is not a terminal
    assert listed.exit_code == 0
    header, row = listed.output.splitlines()
    assert header.split("\t") == ["id", "name", "status", "owner", "created"]
    assert row.split("\t")[:4] == [survey_id, LONG_NAME, "draft", "alice@example.com"]
    assert "…" not in listed.output and "━" not in listed.output


def test_runs_list_piped_shows_whole_run_ids(cli_env: Actor, container: Container) -> None:
    survey_id = imported_survey(container, cli_env)
    surveys.open_survey(container.db, cli_env, survey_id)
    workflows.apply_workflow(container.db, cli_env, survey_id, EMAIL_WORKFLOW)
    response = responses.submit_response(container.db, cli_env, survey_id, {"values": {"QID1": 2}})
    listed = cxloop("runs", "list")
    assert listed.exit_code == 0, listed.output
    row = listed.output.splitlines()[1].split("\t")
    assert row[0].startswith("RN_") and len(row[0]) > 10 and "…" not in listed.output
    assert row[2] == "Detractor alert"
    assert row[5] == response.id
    as_json = json.loads(cxloop("runs", "list", "--json").output)
    assert [run["run"] for run in as_json] == [row[0]]
    shown = json.loads(cxloop("runs", "show", row[0], "--json").output)
    assert shown["id"] == row[0] and shown["response_id"] == response.id
    assert shown["task_runs"][0]["task_id"] == "alert"


@pytest.mark.parametrize(
    "command",
    [
        ["users", "list"],
        ["tokens", "list"],
        ["surveys", "list"],
        ["connections", "list"],
        ["runs", "list"],
        ["config", "show"],
    ],
)
def test_every_list_takes_json(cli_env: Actor, container: Container, command: list[str]) -> None:
    imported_survey(container, cli_env)
    result = cxloop(*command, "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list | dict)


def test_workflow_list_revisions_and_show_take_json(cli_env: Actor, container: Container) -> None:
    survey_id = imported_survey(container, cli_env)
    view = workflows.apply_workflow(container.db, cli_env, survey_id, EMAIL_WORKFLOW)
    workflow_id = view.workflow.id
    listed = json.loads(cxloop("workflows", "list", survey_id, "--json").output)
    assert listed[0]["id"] == workflow_id and listed[0]["enabled"] is True
    revisions = json.loads(cxloop("workflows", "revisions", workflow_id, "--json").output)
    assert revisions[0]["revision"] == 1 and revisions[0]["author"] == "alice@example.com"
    shown = json.loads(cxloop("workflows", "show", workflow_id, "--json").output)
    assert shown["id"] == workflow_id and shown["document"] == EMAIL_WORKFLOW


def test_contacts_show_takes_json(cli_env: Actor, tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text("email,first_name,last_name\nann@example.com,Ann,Lee\n")
    assert cxloop("contacts", "import", source).exit_code == 0
    shown = json.loads(cxloop("contacts", "show", "ann@example.com", "--json").output)
    assert shown["email"] == "ann@example.com" and shown["first_name"] == "Ann"
    assert shown["invitations"] == [] and shown["responses"] == []
    listed = json.loads(cxloop("contacts", "list", "--json").output)
    assert [contact["email"] for contact in listed] == ["ann@example.com"]


def test_output_piped_to_another_program_is_not_cut_to_80_columns(
    cli_env: Actor, container: Container
) -> None:
    survey_id = imported_survey(container, cli_env, LONG_NAME)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run(
        f"{sys.executable} -m cxloop surveys list | cat",
        shell=True, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    row = piped.stdout.splitlines()[1]
    assert row.startswith(f"{survey_id}\t{LONG_NAME}\tdraft\t")
    exported = yaml.safe_load(
        subprocess.run([sys.executable, "-m", "cxloop", "surveys", "list", "--json"], env=env,
                       capture_output=True, text=True, timeout=120, check=True).stdout
    )  # fmt: skip
    assert exported[0]["name"] == LONG_NAME


def test_serve_says_where_its_data_is_and_how_to_reach_it_from_another_terminal(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "server-data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {"CXLOOP_DATA_DIR": str(data_dir), "CXLOOP_LOG_JSON": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "cxloop", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("cxloop on" in line for line in lines):
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = "".join(lines)
    assert f"cxloop --data-dir {data_dir} users create you@example.com --admin" in output, output
    assert f"data directory: {data_dir}" in output
    assert (data_dir / "cxloop.db").is_file()
