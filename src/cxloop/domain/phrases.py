"""English sentences that can be said again in another language. Pure.

The doctor's findings, their fixes and the outbound-message setup steps are English (the API,
the CLI and logs show them as they are). A `Phrase` is that English text, a plain `str`, which
also keeps the template it was made from and the values put into it, so that the admin UI can
say it in the page's language: it translates the template through its catalogue and puts the
values back (a value that is itself a Phrase is translated the same way). Each template is
an English gettext message id with `%(name)s` placeholders; `all_templates` lists them for
the test that every one has a German entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any


class Phrase(str):
    """`template % values`, keeping both (see the module's docstring)."""

    template: str
    values: Mapping[str, Any]

    def __new__(cls, template: str, **values: Any) -> Phrase:
        text = super().__new__(cls, template % values if values else template)
        text.template = template
        text.values = MappingProxyType(values)
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by value, as a str would be
        return (_phrase, (self.template, dict(self.values)))


def _phrase(template: str, values: dict[str, Any]) -> Phrase:
    return Phrase(template, **values)


def say(gettext: Callable[[str], str], text: Any, number: Callable[[int], str] = str) -> str:
    """`text` in the language of `gettext` (which translates a message id): a Phrase by its
    template, with its values said the same way (whole numbers by `number`, which writes them
    as the language does); any other text as it is."""
    if not isinstance(text, Phrase):
        if isinstance(text, int) and not isinstance(text, bool):
            return number(text)
        return "" if text is None else str(text)
    values = {name: say(gettext, value, number) for name, value in text.values.items()}
    translated = gettext(text.template)
    try:
        return translated % values if values else translated
    except (KeyError, ValueError, TypeError):  # a translation with a broken placeholder
        return str(text)


def and_list(words: list[str]) -> str:
    """`A and B and C`, as a Phrase (one word: the word itself)."""
    if len(words) <= 1:
        return words[0] if words else ""
    return Phrase("%(first)s and %(rest)s", first=words[0], rest=and_list(words[1:]))
