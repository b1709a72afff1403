"""The admin UI's languages: gettext catalogues (one .po file per UI area, merged per language),
the Jinja environments that use them, and dates and numbers formatted for the language.

The catalogues are the .po files under `web/locale/<lang>/LC_MESSAGES/<domain>.po`; they are
compiled in memory when the app starts, so no compiled .mo file is committed or built. Each UI area
has its own domain, so that people working on different areas never edit the same file.

`python -m cxloop.web.ui.i18n` adds the strings found in templates and UI modules that a catalogue
lacks to the right domain's .po file (with an empty German text to fill in); with
`--prune AREA` it removes the strings of AREA's catalogue that nothing uses any more.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from babel import Locale
from babel.dates import (
    format_date,
    format_datetime,
    get_date_format,
    get_datetime_format,
    get_time_format,
)
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.numbers import format_decimal
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from cxloop.domain.phrases import say
from cxloop.web.ui.markers import N_

__all__ = ["DOMAINS", "LANGUAGES", "N_", "Formats", "UiLanguages", "pick_language"]

WEB_DIR = Path(__file__).resolve().parent.parent
LOCALE_DIR = WEB_DIR / "locale"
TEMPLATES_DIR = WEB_DIR / "templates"

LANGUAGES = MappingProxyType({"en": "English", "de": "Deutsch"})
NAMED_FORMATS = ("short", "medium", "long", "full")
DEFAULT_LANGUAGE = "en"
# One catalogue per UI area; `ui` holds the shell and what pages share.
DOMAINS = ("ui", "surveys", "accounts", "workflows", "runs")
# The functions whose first argument is a translatable string, in templates and Python.
KEYWORDS = MappingProxyType(
    {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "translate": (2,)}
)
_EXTRACT_MAP = (
    ("templates/ui/**.html", "jinja2"),
    ("templates/login.html", "jinja2"),
    ("ui/**.py", "python"),
    ("pages.py", "python"),
    ("oauth.py", "python"),
)


def domain_of(path: str) -> str:
    """The catalogue a source file's strings belong to (its UI area), from its path under web/:
    `templates/ui/<area>/...`, `ui/<area>.py` or `ui/<area>/...`; anything else is `ui`."""
    parts = Path(path).parts
    for domain in DOMAINS[1:]:
        if (
            parts[:3] == ("templates", "ui", domain)
            or parts == ("ui", f"{domain}.py")
            or (parts[:2] == ("ui", domain) and len(parts) > 2)
        ):
            return domain
    return "ui"


def load_translations(lang: str, locale_dir: Path = LOCALE_DIR) -> Translations | None:
    """All of a language's catalogues merged into one (None for English, the source language)."""
    if lang == DEFAULT_LANGUAGE:
        return None
    merged: Translations | None = None
    for po_path in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po")):
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=lang, domain=po_path.stem)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        translations = Translations(fp=buffer, domain=po_path.stem)
        if merged is None:
            merged = translations
        else:
            merged.merge(translations)
    return merged


@dataclass(frozen=True)
class Formats:
    """Dates and numbers written the way a language writes them (times in UTC)."""

    lang: str
    # Parsed once: Babel parses a locale name on every call otherwise (a list of 100 rows
    # formats a few hundred dates and numbers).
    locale: Locale = field(init=False, repr=False, compare=False)

    # The patterns of the named formats (short, medium...), looked up once: Babel looks the
    # locale's data up on every call otherwise (~0.1 ms; a list of 100 rows has 100 dates).
    _patterns: dict[str, tuple[str, Any, Any]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "locale", Locale.parse(self.lang))

    def datetime(self, value: datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if fmt not in NAMED_FORMATS:
            return format_datetime(value, format=fmt, tzinfo=UTC, locale=self.locale)
        patterns = self._patterns.get(fmt)
        if patterns is None:
            patterns = self._patterns[fmt] = (
                get_datetime_format(fmt, locale=self.locale).replace("'", ""),
                get_time_format(fmt, locale=self.locale),
                get_date_format(fmt, locale=self.locale),
            )
        both, time_pattern, date_pattern = patterns
        value = value.astimezone(UTC)
        return both.replace("{0}", time_pattern.apply(value, self.locale)).replace(
            "{1}", date_pattern.apply(value, self.locale)
        )

    def date(self, value: date | datetime | None, fmt: str = "medium") -> str:
        return "" if value is None else format_date(value, format=fmt, locale=self.locale)

    def number(self, value: float | int | None) -> str:
        if value is None:
            return ""
        if type(value) is int and -1000 < value < 1000:
            return str(value)  # no separator to place: the same in every language
        return format_decimal(value, locale=self.locale)


class UiLanguages:
    """One Jinja environment per language, built once per app (kept on `app.state`)."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, locale_dir: Path = LOCALE_DIR):
        self._environments: dict[str, Environment] = {}
        self._translations: dict[str, Translations | None] = {}
        for lang in LANGUAGES:
            self._translations[lang] = load_translations(lang, locale_dir)
            self._environments[lang] = self._environment(
                lang, templates_dir, self._translations[lang]
            )

    @staticmethod
    def _environment(
        lang: str, templates_dir: Path, translations: Translations | None
    ) -> Environment:
        env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=select_autoescape(default=True),
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        if translations is None:
            env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
        else:
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        # `_()` straight to the catalogue: Jinja's own goes through the template context twice
        # per call (0.02-0.05 ms each), and a Workflows tab of 100 rows makes ~1,800 calls.
        fast = _template_gettext(translations.ugettext if translations is not None else str)
        env.globals["_"] = env.globals["gettext"] = fast
        formats = Formats(lang)
        env.filters["datetime"] = formats.datetime
        env.filters["date"] = formats.date
        env.filters["number"] = formats.number
        # A Phrase (the doctor's findings and fixes, the outbound setup steps) in this language.
        plain = translations.ugettext if translations is not None else str
        env.filters["say"] = lambda text: say(plain, text, formats.number)
        env.globals["LANGUAGES"] = LANGUAGES
        env.globals["lang"] = lang
        return env

    def environment(self, lang: str) -> Environment:
        return self._environments.get(lang, self._environments[DEFAULT_LANGUAGE])

    def say(self, lang: str, text: object) -> str:
        """`text` in `lang` if it is a Phrase (domain/phrases.py), else as it is."""
        translations = self._translations.get(lang)
        plain = translations.ugettext if translations is not None else str
        return say(plain, text, Formats(lang).number)

    def gettext(self, lang: str, message: str, **values: object) -> str:
        """`message` in `lang`, with `%(name)s` placeholders filled from `values`."""
        translations = self._translations.get(lang)
        text = translations.ugettext(message) if translations is not None else message
        return text % values if values else text


def _template_gettext(translate: Callable[[str], str]) -> Callable[..., Markup]:
    """What `_()` is in templates: Jinja's newstyle gettext (the translation is markup, its
    `%(name)s` values are escaped, `%%` is a percent sign) without its per-call context look-ups.
    Every UI template is autoescaped, so the text is always Markup."""

    def gettext(message: str, **variables: object) -> Markup:
        text = Markup(translate(message))
        return text % variables if variables or "%" in text else text

    return gettext


def pick_language(chosen: str | None, accept_language: str | None) -> str:
    """The person's choice if any, else the best of the browser's Accept-Language, else English."""
    if chosen in LANGUAGES:
        return str(chosen)
    offers: list[tuple[float, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and quality > 0:
            offers.append((-quality + index * 1e-6, primary))
    return min(offers)[1] if offers else DEFAULT_LANGUAGE


def extract_messages(web_dir: Path = WEB_DIR) -> dict[str, dict[str, list[str]]]:
    """Every translatable string in the templates and UI modules: domain -> message -> places."""
    found: dict[str, dict[str, list[str]]] = {domain: {} for domain in DOMAINS}
    options = {"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(web_dir),
        method_map=_EXTRACT_MAP,
        options_map=options,
        keywords=KEYWORDS,
        comment_tags=(),
        strip_comment_tags=True,
    ):
        if not message:
            continue
        msgid = message if isinstance(message, str) else message[0]
        domain = domain_of(filename)
        found[domain].setdefault(msgid, []).append(f"{filename}:{lineno}")
        if not isinstance(message, str):
            found[domain].setdefault(message[1], []).append(f"{filename}:{lineno}")
    return found


def read_catalogue(lang: str, domain: str, locale_dir: Path = LOCALE_DIR) -> Catalog:
    path = locale_dir / lang / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        return Catalog(locale=lang, domain=domain)
    with path.open("rb") as po_file:
        return read_po(po_file, locale=lang, domain=domain)


def add_missing(lang: str = "de", locale_dir: Path = LOCALE_DIR) -> dict[str, list[str]]:
    """Add the strings the catalogues lack, each to its area's .po file; returns what was added."""
    added: dict[str, list[str]] = {}
    known = {m.id for d in DOMAINS for m in read_catalogue(lang, d, locale_dir) if m.id}
    for domain, messages in extract_messages().items():
        missing = [msgid for msgid in messages if msgid not in known]
        if not missing:
            continue
        catalog = read_catalogue(lang, domain, locale_dir)
        for msgid in missing:
            catalog.add(msgid, "")
            known.add(msgid)
        _write_catalogue(catalog, locale_dir / lang / "LC_MESSAGES" / f"{domain}.po")
        added[domain] = missing
    return added


def prune(domain: str, lang: str = "de", locale_dir: Path = LOCALE_DIR) -> list[str]:
    """Remove from one area's catalogue the strings no template or module uses any more."""
    used = {msgid for messages in extract_messages().values() for msgid in messages}
    catalog = read_catalogue(lang, domain, locale_dir)
    stale = [message.id for message in catalog if message.id and message.id not in used]
    for msgid in stale:
        del catalog[msgid]
    if stale:
        _write_catalogue(catalog, locale_dir / lang / "LC_MESSAGES" / f"{domain}.po")
    return [str(msgid) for msgid in stale]


def _write_catalogue(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as po_file:
        write_po(po_file, catalog, width=100, omit_header=True, sort_output=False)


def _main(argv: Iterable[str]) -> int:
    """No arguments: add missing strings. `--prune AREA`: drop AREA's unused strings."""
    args = list(argv)
    if args[:1] == ["--prune"] and len(args) == 2 and args[1] in DOMAINS:
        for msgid in prune(args[1]):
            print(f"removed from {args[1]}.po: {msgid}")
        return 0
    if args:
        print(f"usage: python -m cxloop.web.ui.i18n [--prune {'|'.join(DOMAINS)}]")
        return 2
    for domain, messages in add_missing().items():
        for msgid in messages:
            print(f"{domain}.po: {msgid}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
