"""Column types with behaviour: EncryptedText keeps secrets encrypted at rest, always."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from cxloop.security import SecretBox

# The attribute of an engine's dialect that holds the keys of that engine's EncryptedText columns.
_BOX_ATTRIBUTE = "cxloop_secret_box"


def attach_secret_box(engine: Engine, box: SecretBox) -> None:
    """Give the EncryptedText columns read and written through `engine` these keys.

    The keys belong to the engine (each container builds its own), never to the process: two
    containers in one process each encrypt with their own keys, and none can replace another's.
    """
    current = getattr(engine.dialect, _BOX_ATTRIBUTE, None)
    if current is not None and current is not box:
        raise RuntimeError("this engine has encryption keys already: build a new engine")
    setattr(engine.dialect, _BOX_ATTRIBUTE, box)


def secret_box_of(dialect: Dialect) -> SecretBox:
    """The keys of the engine this dialect belongs to."""
    box = getattr(dialect, _BOX_ATTRIBUTE, None)
    if box is None:
        raise RuntimeError(
            "no encryption keys for this database engine: build it through the container "
            "(bootstrap.build_container), which attaches them"
        )
    return box


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with MultiFernet on the way in and decrypted on the way out.

    There is no code path that writes such a column in clear: binding a value encrypts it. The
    keys come with the dialect of the engine the value travels through (`attach_secret_box`).
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else secret_box_of(dialect).encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else secret_box_of(dialect).decrypt(value)
