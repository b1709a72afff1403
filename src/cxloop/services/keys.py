"""Encryption keys: the check every process makes at start (do its keys decrypt the database's
secrets?), and rotation (re-encrypt every secret at rest with the newest key)."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Text, insert, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified

from cxloop.db.base import Base, utcnow
from cxloop.db.operations_models import KeyCheck
from cxloop.db.types import EncryptedText
from cxloop.db.uow import Database
from cxloop.errors import Misconfigured
from cxloop.security import SecretBox
from cxloop.settings import ENCRYPTION_KEYS_FILE, Settings

# The text the key check row holds, encrypted with the deployment's first key.
KEY_CHECK_TEXT = "cxloop encryption keys check"
KEY_CHECK_ID = 1


class KeysDoNotMatch(Misconfigured):
    """This process's encryption keys cannot decrypt the secrets stored in the database."""

    code = "keys_do_not_match"


def check_keys(db: Database, secret_box: SecretBox) -> None:
    """Refuse (KeysDoNotMatch) unless `secret_box` decrypts the database's secrets.

    The database keeps one known text encrypted with the keys of the process that first ran
    this check (`key_checks`); a database from before that check is tested on one stored
    secret of each kind instead, and then gets its check row. Rotation (`reencrypt_all`)
    re-encrypts the row with the rest, so a rotated deployment passes with its new keys.
    """
    with db.reader() as uow:
        sealed = uow.session.scalar(
            select(type_coerce(KeyCheck.sealed, Text)).where(KeyCheck.id == KEY_CHECK_ID)
        )
        samples = [] if sealed is not None else _stored_secrets(uow.session)
    for what, ciphertext in [("the key check", sealed)] if sealed is not None else samples:
        try:
            secret_box.decrypt(ciphertext)
        except ValueError:
            raise KeysDoNotMatch(
                f"the encryption keys of this process cannot decrypt {what} stored in the "
                "database: give every process the same CXLOOP_ENCRYPTION_KEYS (newest first, "
                "keeping the older keys after it)"
            ) from None
    if sealed is None and not _write_key_check(db, secret_box):
        # Another process wrote the check at the same moment, maybe with other keys: check
        # against what it wrote.
        check_keys(db, secret_box)


def _stored_secrets(session: Any) -> list[tuple[str, str]]:
    """One stored ciphertext of each encrypted column that holds any (as stored: raw)."""
    found = []
    for model, names in encrypted_columns():
        if model is KeyCheck:
            continue
        for name in names:
            column = getattr(model, name)
            raw = session.scalar(
                select(type_coerce(column, Text)).where(column.is_not(None)).limit(1)
            )
            if raw is not None:
                found.append((f"a secret of {model.__tablename__}.{name}", raw))
    return found


def _write_key_check(db: Database, secret_box: SecretBox) -> bool:
    """Write the key check with these keys; False when another process's came first."""
    try:
        with db.uow() as uow:
            # Encrypted here with this process's keys, stored as is (not through the column
            # type, whose keys are the container's).
            sealed = type_coerce(secret_box.encrypt(KEY_CHECK_TEXT), Text)
            uow.session.execute(
                insert(KeyCheck).values(id=KEY_CHECK_ID, sealed=sealed, created_at=utcnow())
            )
            uow.commit()
    except IntegrityError:
        return False
    return True


def encrypted_columns() -> list[tuple[type, list[str]]]:
    """Every model with EncryptedText columns, and those columns' attribute names."""
    found = []
    for mapper in Base.registry.mappers:
        names = [c.key for c in mapper.columns if isinstance(c.type, EncryptedText)]
        if names:
            found.append((mapper.class_, names))
    return found


def reencrypt_all(db: Database) -> int:
    """Rewrite every encrypted value with the first key; returns how many rows were rewritten."""
    rewritten = 0
    for model, names in encrypted_columns():
        with db.uow() as uow:
            for row in uow.session.scalars(select(model)):
                for name in names:
                    if getattr(row, name) is not None:
                        flag_modified(row, name)
                rewritten += 1
            uow.commit()
    return rewritten


def keys_file_managed(settings: Settings) -> bool:
    """Whether the keys live in the data directory's file (not in CXLOOP_ENCRYPTION_KEYS)."""
    path = settings.data_dir / ENCRYPTION_KEYS_FILE
    if not path.exists() or settings.encryption_keys is None:
        return False
    return path.read_text().strip() == settings.encryption_keys.get_secret_value()


def prepend_new_key(settings: Settings, *, drop_old: bool = False) -> list[str]:
    """Put a new key first in the data directory's key file; returns the new key list."""
    keys = [Fernet.generate_key().decode(), *settings.fernet_keys()]
    write_keys(settings, keys[:1] if drop_old else keys)
    return keys


def write_keys(settings: Settings, keys: list[str]) -> None:
    path = settings.data_dir / ENCRYPTION_KEYS_FILE
    temporary = path.with_suffix(".new")
    temporary.write_text(",".join(keys) + "\n")
    temporary.chmod(0o600)
    temporary.replace(path)
