import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from cxloop.settings import REDACTED, Settings, redact_url


def test_defaults_put_everything_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'cxloop.db'}"
    assert settings.effective_queue_url == f"sqlite:///{tmp_path / 'queue.db'}"
    assert settings.max_connections_per_user == 5


def test_environment_variables_override_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXLOOP_QUEUE_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("CXLOOP_SMTP_PORT", "2525")
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_queue_url == "redis://127.0.0.1:6379/3"
    assert settings.smtp_port == 2525


def test_toml_file_is_read_and_env_wins_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cxloop.toml"
    config.write_text('base_url = "https://cx.example.com"\nsmtp_host = "mail.internal"\n')
    monkeypatch.setenv("CXLOOP_CONFIG", str(config))
    monkeypatch.setenv("CXLOOP_SMTP_HOST", "from-env")
    settings = Settings(data_dir=tmp_path)
    assert settings.base_url == "https://cx.example.com"
    assert settings.smtp_host == "from-env"


def test_unknown_setting_in_toml_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cxloop.toml"
    config.write_text('databse_url = "typo"\n')
    monkeypatch.setenv("CXLOOP_CONFIG", str(config))
    with pytest.raises(ValidationError, match="databse_url"):
        Settings(data_dir=tmp_path)


def test_secrets_are_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).with_secrets()
    second = Settings(data_dir=tmp_path).with_secrets()
    assert first.secret_key is not None and second.secret_key is not None
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    assert first.fernet_keys() == second.fernet_keys()
    for name in ("secret_key", "encryption_keys"):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


def test_given_secrets_are_not_written_to_disk(tmp_path: Path) -> None:
    Settings(data_dir=tmp_path, secret_key="s" * 40, encryption_keys="k1,k2").with_secrets()
    assert not (tmp_path / "secret_key").exists()
    assert not (tmp_path / "encryption_keys").exists()


def test_redacted_settings_hide_every_secret(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://cx:hunter2hunter2@db.internal/cx",
        smtp_password="mailpass123",
    ).with_secrets()
    shown = settings.redacted()
    text = repr(shown)
    assert "hunter2hunter2" not in text and "mailpass123" not in text
    assert settings.secret_key.get_secret_value() not in text
    assert shown["secret_key"] == REDACTED
    assert shown["database_url"] == f"postgresql://cx:{REDACTED}@db.internal/cx"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h:6379/0", f"redis://:{REDACTED}@h:6379/0"),
        ("postgresql://user@h/db", "postgresql://user@h/db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, smtp_port=70000)
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, log_level="LOUD")
