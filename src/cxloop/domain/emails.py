"""Email addresses: the one canonical form every part of cxloop stores and compares.

Trimmed, checked (syntax only: nothing is looked up on the network), the domain in its
normalised form, then lower-cased, so that `Ann@Example.COM ` and `ann@example.com` are one
person, as a user and as a contact.
"""

from __future__ import annotations

from typing import Literal

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LENGTH = 320

Flaw = Literal["empty", "control_character", "too_long", "invalid"]


class NotAnEmail(ValueError):
    """The text is not an email address: `flaw` says which way, `reason` in words."""

    def __init__(self, text: str, flaw: Flaw, reason: str) -> None:
        super().__init__(f"{text[:60]!r} is not an email address: {reason}")
        self.text = text
        self.flaw = flaw
        self.reason = reason


def normalize_email(raw: str | None) -> str:
    """The canonical form of an email address; NotAnEmail saying what is wrong otherwise."""
    text = (raw or "").strip()
    if not text:
        raise NotAnEmail(text, "empty", "An email address must have an @-sign.")
    if any(char in text for char in "\r\n\x00"):
        raise NotAnEmail(text, "control_character", "It holds a line break or a NUL character.")
    if len(text) > MAX_EMAIL_LENGTH:
        raise NotAnEmail(text, "too_long", f"It is longer than {MAX_EMAIL_LENGTH} characters.")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise NotAnEmail(text, "invalid", str(exc)) from None
    return checked.normalized.lower()


def comparable_email(raw: str) -> str:
    """`normalize_email`, or for text that is no address the text trimmed and lower-cased:
    a key for counting attempts, which must never fail."""
    try:
        return normalize_email(raw)
    except NotAnEmail:
        return raw.strip().lower()
