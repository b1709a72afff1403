"""The gettext marker for strings defined in one place and translated where they are shown."""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translate it where it is shown."""
    return message
