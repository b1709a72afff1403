"""Column types with behaviour: EncryptedText keeps secrets encrypted at rest, always."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from cxloop.security import SecretBox

_secret_box: SecretBox | None = None


def use_secret_box(box: SecretBox) -> None:
    """Set the keys EncryptedText columns use in this process (done once, by bootstrap)."""
    global _secret_box
    _secret_box = box


def current_secret_box() -> SecretBox:
    if _secret_box is None:
        raise RuntimeError("no encryption keys configured: build the container first")
    return _secret_box


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with MultiFernet on the way in and decrypted on the way out.

    There is no code path that writes such a column in clear: binding a value encrypts it.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else current_secret_box().encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else current_secret_box().decrypt(value)
