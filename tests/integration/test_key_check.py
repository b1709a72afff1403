"""The key check every process makes at start (services.keys.check_keys), on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cxloop.bootstrap import Container, build_container
from cxloop.security import SecretBox
from cxloop.services import keys, salesforce_apps
from tests.conftest import make_settings

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def built_with(tmp_path: Path, database_url: str, encryption_keys: str) -> Container:
    settings = make_settings(
        tmp_path, database_url, f"sqlite:///{tmp_path / 'queue.db'}",
        encryption_keys=encryption_keys,
    )  # fmt: skip
    return build_container(settings)


def test_the_first_process_writes_the_check_and_others_must_match_it(
    container: Container,
) -> None:
    keys.check_keys(container.db, SecretBox([KEY_A]))  # a fresh database: writes the check
    keys.check_keys(container.db, SecretBox([KEY_A]))
    keys.check_keys(container.db, SecretBox([KEY_B, KEY_A]))  # a rotation under way
    with pytest.raises(keys.KeysDoNotMatch) as refused:
        keys.check_keys(container.db, SecretBox([KEY_B]))
    assert "CXLOOP_ENCRYPTION_KEYS" in refused.value.message


def test_an_older_database_is_checked_on_its_stored_secrets(
    tmp_path: Path, database_url: str
) -> None:
    built = built_with(tmp_path, database_url, KEY_A)
    salesforce_apps.set_app(built.db, None, "3MVG9x", "s3cret", None)
    with pytest.raises(keys.KeysDoNotMatch) as refused:
        keys.check_keys(built.db, SecretBox([KEY_B]))
    assert "salesforce_apps.client_secret" in refused.value.message
    keys.check_keys(built.db, SecretBox([KEY_A]))
    built.close()


def test_rotation_re_encrypts_the_check_so_the_new_key_alone_passes(
    tmp_path: Path, database_url: str
) -> None:
    first = built_with(tmp_path, database_url, KEY_A)
    keys.check_keys(first.db, SecretBox([KEY_A]))
    first.close()
    rotating = built_with(tmp_path, database_url, f"{KEY_B},{KEY_A}")
    assert keys.reencrypt_all(rotating.db) >= 1
    keys.check_keys(rotating.db, SecretBox([KEY_B]))  # the old key may go now
    with pytest.raises(keys.KeysDoNotMatch):
        keys.check_keys(rotating.db, SecretBox([KEY_A]))
    rotating.close()
