"""The CLI as an operator meets it (issue #18): read-only commands write nothing, list settings
take commas, and a setting in the wrong form stops every command with one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool
from typer.testing import CliRunner

from cxloop.bootstrap import build_container
from cxloop.cli.main import app
from cxloop.db.engine import create_database_engine
from cxloop.db.uow import Database
from cxloop.services import users
from cxloop.settings import SETTINGS_AREAS, Settings, settings_by_area
from tests.conftest import make_settings

runner = CliRunner()

READ_ONLY_COMMANDS = [
    ["--help"],
    ["version"],
    ["config", "show"],
    ["config", "show", "--json"],
    ["db", "current"],
    ["users", "list"],
    ["tokens", "list"],
    ["surveys", "list"],
    ["runs", "list"],
    ["connections", "list"],
    ["salesforce", "app", "show"],
    ["keys", "generate"],
    ["worker", "--help"],
]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"CXLOOP_DATA_DIR": str(tmp_path / "data"), "CXLOOP_DATABASE_URL": database_url}


def cxloop(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env=env)


def one_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    )
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_read_only_commands_write_nothing(
    env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    if not database_url.startswith("sqlite"):  # a server's database, for the listings
        db = Database(create_database_engine(database_url))
        users.create_user(db, "ann@example.com", None, is_admin=True)
        db.dispose()
    for present in (False, True):  # no data directory at all, then an empty one
        if present:
            data_dir.mkdir()
        for command in READ_ONLY_COMMANDS:
            result = cxloop(env, *command)
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                command, result.output,
            )  # fmt: skip
            if present:
                assert list(data_dir.iterdir()) == [], (command, result.output)
            else:
                assert not data_dir.exists(), (command, result.output)
            if not database_url.startswith("sqlite"):  # a database to list: they succeed
                assert result.exit_code == 0, (command, result.output)


def test_config_show_reads_the_keys_it_finds_without_making_any(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "encryption_keys").write_text("k\n")
    shown = json.loads(cxloop(env, "config", "show", "--json").output)
    assert shown["encryption_keys"] == "**********" and shown["secret_key"] is None
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["encryption_keys"]


def test_list_settings_take_commas_or_json(env: dict[str, str]) -> None:
    given = env | {
        "CXLOOP_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16",
        "CXLOOP_SALESFORCE_EXTRA_HOSTS": '["127.0.0.1:8701"]',
        "CXLOOP_SURVEY_IMAGE_HOSTS": "images.example.org,cdn.example.org",
    }
    shown = cxloop(given, "config", "show", "--json")
    assert shown.exit_code == 0, shown.output
    values = json.loads(shown.output)
    assert values["trusted_proxies"] == ["10.0.0.1", "10.1.0.0/16"]
    assert values["salesforce_extra_hosts"] == ["127.0.0.1:8701"]
    assert values["survey_image_hosts"] == ["images.example.org", "cdn.example.org"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CXLOOP_TRUSTED_PROXIES", "proxy.local", "is not an IP address or network"),
        ("CXLOOP_TRUSTED_PROXIES", "10.0.0.1,300.1.1.1", "'300.1.1.1' is not an IP address"),
        ("CXLOOP_SALESFORCE_APPS", "login.example.com", "expected JSON such as"),
        ("CXLOOP_SURVEY_IMAGE_HOSTS", "[oops", "comma-separated"),
        ("CXLOOP_DATABASE_POOL_SIZE", "0", "greater than or equal to 1"),
    ],
)
def test_a_setting_in_the_wrong_form_is_one_line_naming_it(
    env: dict[str, str], name: str, value: str, says: str
) -> None:
    for command in (["config", "show"], ["users", "list"]):
        line = one_line(cxloop(env | {name: value}, *command))
        assert line.startswith(f"error: the configuration is not valid: {name}: "), line
        assert says in line, line


def test_settings_are_grouped_by_area_with_flat_names() -> None:
    names = [name for _, group in settings_by_area() for name in group]
    # every setting in exactly one area, and Settings is nothing but the areas together
    assert sorted(names) == sorted(Settings.model_fields) and len(set(names)) == len(names)
    assert all(issubclass(Settings, area) for area in SETTINGS_AREAS)
    assert [title for title, _ in settings_by_area()][:2] == [
        "Database and files",
        "Queue, workers and scheduler",
    ]
    assert Settings(lease_s=30).lease_s == 30  # flat access, as before


def test_the_postgresql_pool_is_sized_by_settings(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url, f"sqlite:///{tmp_path / 'queue.db'}",
        database_pool_size=3, database_max_overflow=4,
    )  # fmt: skip
    built = build_container(settings)
    pool = built.db.engine.pool
    built.close()
    if database_url.startswith("sqlite"):
        return  # SQLite's pool is its own (one writer at a time)
    assert isinstance(pool, QueuePool)
    assert pool.size() == 3 and pool._max_overflow == 4


@pytest.mark.parametrize(("setting", "expected"), [(None, "1.1"), (2.5, "2.5"), (0, None)])
def test_postgresql_sessions_plan_with_the_random_page_cost_of_the_settings(
    tmp_path: Path, postgres_session_url: str, setting: float | None, expected: str | None
) -> None:
    """cxloop's own sessions look a batch's rows up by id (1.1 unless set; 0: the server's own
    value, None here), and options the database URL gives (`?options=`) still apply beside it."""
    url = f"{postgres_session_url}?options=-c%20work_mem%3D8MB"
    extra = {} if setting is None else {"database_random_page_cost": setting}
    settings = make_settings(tmp_path, url, f"sqlite:///{tmp_path / 'queue.db'}", **extra)
    built = build_container(settings)
    try:
        with built.db.engine.connect() as connection:
            cost = connection.execute(text("SHOW random_page_cost")).scalar()
            work_mem = connection.execute(text("SHOW work_mem")).scalar()
            # "client": set by the connection's options; else the server's configuration
            source = connection.execute(
                text("SELECT source FROM pg_settings WHERE name = 'random_page_cost'")
            ).scalar()
    finally:
        built.close()
    assert work_mem == "8MB"
    if expected is None:
        assert source != "client"
    else:
        assert (cost, source) == (expected, "client")
