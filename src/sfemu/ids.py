"""Salesforce record Ids: key prefixes, the 15 -> 18 character checksum, generation.

A Salesforce Id is 15 case-sensitive characters (3-character key prefix naming the object,
then instance and counter characters) plus, in the 18-character form, a 3-character suffix
that encodes the case of the first 15 so that case-insensitive systems can compare them.
"""

from __future__ import annotations

import hashlib
import re

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID15 = re.compile(r"^[0-9A-Za-z]{15}$")
_ID18 = re.compile(r"^[0-9A-Za-z]{18}$")
_CASE_BITS = str.maketrans({char: ("1" if char.isupper() else "0") for char in _BASE62})

# Key prefixes of the standard objects and the non-record entities the emulator names.
ORGANIZATION = "00D"
USER = "005"
PROFILE = "00e"
RECORD_TYPE = "012"
QUERY_LOCATOR = "01g"
OUTBOUND_ACTION = "04k"
OUTBOUND_NOTIFICATION = "04l"
CONNECTED_APP = "0H4"


class MalformedId(ValueError):
    """A string that cannot be a Salesforce Id."""


def checksum(id15: str) -> str:
    """Return the 3-character case checksum Salesforce appends to a 15-character Id."""
    # Each chunk of 5 characters gives 5 bits, bit i set when character i is an upper-case
    # letter; translate() makes the bit string in C, int(..., 2) reads it (reversed: bit 0 first).
    bits = id15.translate(_CASE_BITS)
    return (
        _SUFFIX_ALPHABET[int(bits[4::-1], 2)]
        + _SUFFIX_ALPHABET[int(bits[9:4:-1], 2)]
        + _SUFFIX_ALPHABET[int(bits[14:9:-1], 2)]
    )


def to18(id15: str) -> str:
    """Return the 18-character form of a 15-character Id (validating its characters)."""
    if not _ID15.match(id15):
        raise MalformedId(id15)
    return id15 + checksum(id15)


def normalize(value: str) -> str:
    """Return the canonical 18-character form of a 15- or 18-character Id.

    An 18-character Id may arrive in any letter case (that is what the suffix is for): the
    suffix tells which of the first 15 characters are upper case, so the case is restored.
    Raises MalformedId when the string cannot be an Id or its suffix contradicts it.
    """
    if _ID15.match(value):
        return value + checksum(value)
    if not _ID18.match(value):
        raise MalformedId(value)
    suffix = value[15:].upper()
    restored = []
    for chunk_index, suffix_char in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.find(suffix_char)
        if bits < 0:
            raise MalformedId(value)
        for position in range(5):
            char = value[chunk_index * 5 + position]
            upper = bool(bits & (1 << position))
            if upper and not char.isalpha():
                raise MalformedId(value)
            restored.append(char.upper() if upper else char.lower())
    id15 = "".join(restored)
    return id15 + checksum(id15)


def try_normalize(value: object) -> str | None:
    """normalize() that answers None instead of raising (for non-strings too)."""
    if not isinstance(value, str):
        return None
    try:
        return normalize(value)
    except MalformedId:
        return None


def key_prefix(record_id: str) -> str:
    """Return the 3-character key prefix of an Id."""
    return record_id[:3]


def base62(number: int, width: int) -> str:
    """Encode a non-negative integer in base 62, left-padded with zeros to `width`."""
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_BASE62[remainder])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise OverflowError(f"{number} does not fit in {width} base-62 digits")
    return text.rjust(width, "0")


def decode_base62(text: str) -> int:
    """Decode a base-62 string produced by base62()."""
    number = 0
    for char in text:
        number = number * 62 + _BASE62.index(char)
    return number


def pod_for(seed: str) -> str:
    """Two instance characters derived from a seed, so different orgs mint different Ids."""
    digest = hashlib.sha256(seed.encode()).digest()
    return _BASE62[digest[0] % 62] + _BASE62[digest[1] % 62]


def make_id(prefix: str, pod: str, counter: int) -> str:
    """Build an 18-character Id: key prefix + 2 instance characters + '0' + 9-digit counter."""
    return to18(f"{prefix}{pod}0{base62(counter, 9)}")


def counter_of(record_id: str) -> int | None:
    """The counter part of an Id minted by make_id(), or None for foreign Ids."""
    try:
        return decode_base62(record_id[6:15])
    except ValueError:
        return None


def derived_id(prefix: str, *parts: str) -> str:
    """A stable Id derived from names (org ids, record type ids): same names, same Id."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    number = int.from_bytes(digest[:8], "big") % (62**9)
    return make_id(prefix, pod_for("/".join(parts)), number)
