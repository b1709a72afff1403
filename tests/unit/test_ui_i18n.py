"""The admin UI's languages: every string of the templates and UI modules has its German
translation; catalogues merge per language; the browser's language is picked as it asks."""

from __future__ import annotations

from datetime import UTC, datetime

from cxloop.web.ui.i18n import (
    DOMAINS,
    Formats,
    UiLanguages,
    domain_of,
    extract_messages,
    pick_language,
    read_catalogue,
)


def test_every_ui_string_has_a_german_translation() -> None:
    translated = {
        message.id: message.string
        for domain in DOMAINS
        for message in read_catalogue("de", domain)
        if message.id
    }
    missing = [
        f"{domain}: {msgid!r} ({places[0]})"
        for domain, messages in extract_messages().items()
        for msgid, places in messages.items()
        if not translated.get(msgid)
    ]
    assert not missing, (
        "strings without German (run `python -m cxloop.web.ui.i18n`, then fill in msgstr):\n"
        + "\n".join(missing)
    )


def test_catalogues_of_all_areas_are_merged_into_one_language() -> None:
    languages = UiLanguages()
    assert languages.gettext("de", "Log out") == "Abmelden"  # ui.po
    assert languages.gettext("de", "Search by name") == "Nach Name suchen"  # surveys.po
    assert languages.gettext("en", "Log out") == "Log out"


def test_rendered_pages_use_the_language() -> None:
    languages = UiLanguages()
    page = languages.environment("de").from_string('{{ _("Log out") }} {{ 1234.5 | number }}')
    assert page.render() == "Abmelden 1.234,5"


def test_strings_belong_to_their_areas_catalogue() -> None:
    assert domain_of("templates/ui/surveys/list.html") == "surveys"
    assert domain_of("ui/accounts.py") == "accounts"
    assert domain_of("ui/workflows/builder.py") == "workflows"
    assert domain_of("templates/ui/layout.html") == "ui"
    assert domain_of("ui/context.py") == "ui"


def test_the_persons_choice_wins_then_the_browsers_accept_language() -> None:
    assert pick_language("de", "en-GB,en;q=0.9") == "de"
    assert pick_language(None, "fr-FR, de;q=0.8, en;q=0.5") == "de"
    assert pick_language(None, "en;q=0.3, de-AT;q=0.9") == "de"
    assert pick_language("xx", "fr") == "en"
    assert pick_language(None, "de;q=0, en") == "en"
    assert pick_language(None, "de;q=bogus") == "en"


def test_dates_and_numbers_are_written_as_the_language_writes_them() -> None:
    moment = datetime(2026, 12, 5, 13, 5, tzinfo=UTC)
    assert Formats("de").datetime(moment) == "05.12.2026, 13:05:00"
    assert "Dec 5, 2026" in Formats("en").datetime(moment)
    assert Formats("de").number(100000) == "100.000"
    assert Formats("en").number(100000) == "100,000"
