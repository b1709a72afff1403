"""Signed links: survey links whose query parameters cannot be changed, with an expiry.

A signed link is the survey's address with embedded data in the query string, an expiry
(``_exp``, seconds since the epoch) and a signature (``_sig``): HMAC-SHA256, keyed with the
survey's own signing key, over the survey id and **every** other query parameter::

    /s/SV_xxx?CaseId=500xx000001&_exp=1767225600&_sig=Jq0...

Anything added, removed or changed breaks the signature; so does replacing the survey's key
(which is how all links made before are revoked). The message signed is canonical (parameters
sorted, percent-encoded, joined with ``&``), so the order a mail client or browser gives the
parameters in does not matter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import quote

EXPIRES_PARAM = "_exp"
SIGNATURE_PARAM = "_sig"
KEY_BYTES = 32
MAX_SIGNATURE_CHARS = 100
MAX_EXPIRES_DIGITS = 12


class SignedLinkError(ValueError):
    """A signed link that cannot be used; ``reason`` is ``invalid`` or ``expired``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_signing_key() -> str:
    """A fresh random signing key, as text (URL-safe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def signed_query(
    key: str, survey_id: str, values: Mapping[str, str], expires_at: int
) -> list[tuple[str, str]]:
    """The query parameters of a signed link: ``values``, the expiry and the signature."""
    if EXPIRES_PARAM in values or SIGNATURE_PARAM in values:
        raise ValueError(f"{EXPIRES_PARAM} and {SIGNATURE_PARAM} are the link's own parameters")
    items = [(name, str(value)) for name, value in values.items()]
    items.append((EXPIRES_PARAM, str(int(expires_at))))
    return [*items, (SIGNATURE_PARAM, signature(key, survey_id, items))]


def signature(key: str, survey_id: str, items: Iterable[tuple[str, str]]) -> str:
    """The signature of a survey id and query parameters (without ``_sig``)."""
    digest = hmac.new(key.encode(), _message(survey_id, items), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_signed(items: Iterable[tuple[str, str]]) -> bool:
    """Whether a query string carries a signature (and so must be checked as a signed link)."""
    return any(name == SIGNATURE_PARAM for name, _ in items)


def verify(
    key: str, survey_id: str, items: Iterable[tuple[str, str]], now: float
) -> dict[str, str]:
    """The embedded data values of a signed link, once its signature and expiry check out.

    ``items`` are the query parameters as received (repeated names included). Raises
    ``SignedLinkError`` (``invalid``: changed, malformed or made with another key; ``expired``).
    The signature is checked first, so an expiry pushed into the future is "invalid".
    """
    items = list(items)
    signatures = [value for name, value in items if name == SIGNATURE_PARAM]
    rest = [(name, value) for name, value in items if name != SIGNATURE_PARAM]
    names = [name for name, _ in rest]
    if (
        len(signatures) != 1
        or not signatures[0]
        or len(signatures[0]) > MAX_SIGNATURE_CHARS
        or len(set(names)) != len(names)
    ):
        raise SignedLinkError("invalid", "the link's parameters are not those it was signed with")
    expected = signature(key, survey_id, rest)
    if not hmac.compare_digest(expected.encode(), signatures[0].encode("utf-8", "replace")):
        raise SignedLinkError("invalid", "the link's parameters are not those it was signed with")
    expires = dict(rest).get(EXPIRES_PARAM, "")
    if not expires.isdecimal() or len(expires) > MAX_EXPIRES_DIGITS:
        raise SignedLinkError("invalid", "the link has no expiry")
    if int(expires) <= now:
        raise SignedLinkError("expired", "the link has expired")
    return {name: value for name, value in rest if name != EXPIRES_PARAM}


def _message(survey_id: str, items: Iterable[tuple[str, str]]) -> bytes:
    # Percent-encoding every byte but unreserved ones makes "&" and "=" inside names and values
    # unambiguous; sorting makes the parameters' order irrelevant.
    encoded = sorted(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in items)
    return (quote(survey_id, safe="") + "?" + "&".join(encoded)).encode()
