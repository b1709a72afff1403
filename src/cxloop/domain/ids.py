"""Public ids in the reference product's style: `SV_` + 15 letters and digits.

One generator for every id: surveys, responses, runs, task runs. Random bytes are translated onto
the 62 letters and digits in C; bytes 248-255 are dropped so every character is equally likely.
"""

from __future__ import annotations

import secrets
import string

ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 15
# Bytes 0-247 map onto the 62 characters evenly (4 times each); 248-255 are dropped.
_ID_TABLE = bytes(ord(ID_ALPHABET[b % 62]) for b in range(248)) + bytes(8)
_ID_DROP = bytes(range(248, 256))


def new_ids(prefix: str, count: int, length: int = ID_LENGTH) -> list[str]:
    """`count` ids of `prefix` + `length` random letters and digits, uniform over the alphabet."""
    needed = count * length
    chars = b""
    while len(chars) < needed:
        chars += secrets.token_bytes(needed - len(chars) + 16).translate(_ID_TABLE, _ID_DROP)
    text = chars[:needed].decode("ascii")
    return [prefix + text[i : i + length] for i in range(0, needed, length)]


def new_id(prefix: str, length: int = ID_LENGTH) -> str:
    """One id: `prefix` + `length` random letters and digits (`SV_` + 15 for a survey)."""
    return new_ids(prefix, 1, length)[0]
