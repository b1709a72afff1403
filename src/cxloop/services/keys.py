"""Key rotation: re-encrypt every secret at rest with the newest encryption key."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from cxloop.db.base import Base
from cxloop.db.types import EncryptedText
from cxloop.db.uow import Database
from cxloop.settings import ENCRYPTION_KEYS_FILE, Settings


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
