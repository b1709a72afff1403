"""The CLI: users, tokens, config, db. Errors are one line and a non-zero exit."""

from pathlib import Path

import pytest

from tests.integration.cli_helpers import cxloop


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CXLOOP_DATABASE_URL", database_url)
    return tmp_path


def test_create_user_list_and_token(cli_env: Path) -> None:
    created = cxloop("users", "create", "Ann@Example.com", "--admin", "--password-stdin",
                     stdin="correct horse battery\n")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "Created admin ann@example.com" in created.output
    listed = cxloop("users", "list")
    assert "ann@example.com" in listed.output
    token = cxloop("tokens", "create", "--user", "ann@example.com", "--name", "laptop")
    assert token.exit_code == 0
    value = token.output.strip().splitlines()[-1]
    assert value.startswith("cxl_")
    tokens = cxloop("tokens", "list")
    assert "laptop" in tokens.output and value not in tokens.output
    revoked = cxloop("tokens", "revoke", "1")
    assert revoked.exit_code == 0 and "revoked" in revoked.output


@pytest.mark.parametrize(
    ("args", "stdin", "reason"),
    [
        (("users", "create", "bad-email", "--password-stdin"), "correct horse battery\n",
         "not a valid email"),
        (("users", "create", "a@example.com", "--password-stdin"), "short\n", "too short"),
        (("users", "create", "a@example.com", "--password-stdin"), "\n", "no password"),
        (("tokens", "create", "--user", "ghost@example.com"), None, "No user with email"),
        (("tokens", "revoke", "42"), None, "No API token 42"),
    ],
)  # fmt: skip
def test_mistakes_give_one_line_and_exit_1(
    cli_env: Path, args: tuple[str, ...], stdin: str | None, reason: str
) -> None:
    result = cxloop(*args, stdin=stdin)
    assert result.exit_code == 1
    assert reason in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_duplicate_user_is_refused(cli_env: Path) -> None:
    for expected in (0, 1):
        result = cxloop("users", "create", "a@example.com", "--password-stdin",
                        stdin="correct horse battery\n")  # fmt: skip
        assert result.exit_code == expected
    assert "already exists" in result.output


def test_config_show_redacts_secrets(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLOOP_SMTP_PASSWORD", "smtp-secret-value")
    monkeypatch.setenv("CXLOOP_SECRET_KEY", "secret-key-value")
    result = cxloop("config", "show", "--json")
    assert result.exit_code == 0
    assert "smtp-secret-value" not in result.output and "secret-key-value" not in result.output
    assert '"smtp_password": "**********"' in result.output


def test_bad_configuration_is_one_line(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLOOP_SMTP_PORT", "not-a-port")
    result = cxloop("config", "show")
    assert result.exit_code == 1 and "CXLOOP_SMTP_PORT" in result.output


def test_db_upgrade_and_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(tmp_path))
    assert "empty" in cxloop("db", "current").output
    assert "Upgraded the database from empty" in cxloop("db", "upgrade").output
    assert "already at" in cxloop("db", "upgrade").output
    assert "(newest)" in cxloop("db", "current").output


def test_unusable_queue_url_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CXLOOP_QUEUE_URL", "amqp://localhost")
    result = cxloop("--init", "users", "list")
    assert result.exit_code == 1 and "unsupported queue URL" in result.output
