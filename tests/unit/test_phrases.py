"""Phrases: English text that German pages say in German. Every `Phrase("...")` in the code
base has its German entry (with the same placeholders), the English stays as it was, and a
Phrase inside a Phrase is translated too."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from cxloop.domain.phrases import Phrase, and_list, say
from cxloop.salesforce.doctor import check_task
from cxloop.salesforce.remedies import Remedies
from cxloop.web.ui.i18n import DOMAINS, LOCALE_DIR, UiLanguages, read_catalogue

SOURCE = Path(__file__).resolve().parents[2] / "src" / "cxloop"
PHRASES_PO = LOCALE_DIR / "de" / "LC_MESSAGES" / "phrases.po"
PLACEHOLDER = re.compile(r"%\(\w+\)s")
# Templates that read the same in German (punctuation and the emulator's file keys).
SAME_IN_GERMAN = frozenset({"%(spelling)s; %(fix)s", "profiles: %(profile)s"})
ENGLISH_WORDS = ("the connection's user", "Check the spelling", " is not ", "Map a", "does not",
                 "In Setup", "Or remove", "emulator's org file")  # fmt: skip


def phrase_templates() -> dict[str, str]:
    """Every literal template of a `Phrase(...)` call under src/cxloop, with where it is."""
    found: dict[str, str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Phrase":
                first = node.args[0] if node.args else None
                if path.name == "phrases.py" and path.parent.name == "domain":
                    continue  # the class itself, and and_list's literal
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path}:{node.lineno}: a Phrase's template must be a literal, so that "
                    "its translation can be checked"
                )
                found.setdefault(first.value, f"{path.relative_to(SOURCE)}:{node.lineno}")
    found["%(first)s and %(rest)s"] = "domain/phrases.py"
    return found


def test_every_phrase_has_german_with_the_same_placeholders() -> None:
    with PHRASES_PO.open("rb") as handle:
        german = {m.id: m.string for m in read_po(handle) if m.id}
    templates = phrase_templates()
    assert len(templates) > 80  # the doctor, the fixes, the checks, the setup steps
    problems = []
    for template, where in templates.items():
        text = german.get(template)
        if not text:
            problems.append(f"no German for {template!r} ({where})")
        elif sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(template)):
            problems.append(f"placeholders differ: {template!r} -> {text!r}")
        elif text == template and template not in SAME_IN_GERMAN:
            problems.append(f"not translated: {template!r} ({where})")
    assert not problems, "\n".join(problems)
    unused = set(german) - set(templates)
    assert not unused, f"phrases.po has entries no Phrase uses: {sorted(unused)}"


def test_phrases_po_means_nothing_else_in_the_areas_catalogues() -> None:
    with PHRASES_PO.open("rb") as handle:
        german = {m.id: m.string for m in read_po(handle) if m.id}
    clashes = [
        f"{message.id!r} ({domain}): {message.string!r} vs {german[message.id]!r}"
        for domain in DOMAINS
        for message in read_catalogue("de", domain)
        if isinstance(message.id, str) and message.id in german
        and message.string != german[message.id]
    ]  # fmt: skip
    assert not clashes, clashes


def test_a_phrase_is_its_english_text_and_nested_phrases_are_translated() -> None:
    inner = Phrase("task '%(name)s'", name="Case follow-up")
    outer = Phrase("%(task)s: %(action)s on %(object)s looks right.", task=inner,
                   action="upsert", object="Case")  # fmt: skip
    assert outer == "task 'Case follow-up': upsert on Case looks right."
    assert isinstance(outer, str) and str(outer) == outer
    assert pickle.loads(pickle.dumps(outer)).template == outer.template
    languages = UiLanguages()
    assert (
        languages.say("de", outer) == "Aufgabe „Case follow-up“: upsert auf Case sieht richtig aus."
    )
    assert languages.say("en", outer) == outer
    assert languages.say("de", "plain text") == "plain text"  # not a Phrase: as it is
    assert and_list(["Create", "Edit"]) == "Create and Edit"
    assert languages.say("de", and_list(["Create", "Edit"])) == "Create und Edit"


def test_numbers_in_a_phrase_are_written_as_the_pages_language_writes_them() -> None:
    left = Phrase("%(remaining)s of %(max)s daily API requests left.", remaining=99997, max=100000)
    assert left == "99997 of 100000 daily API requests left."  # the API's and the CLI's text
    languages = UiLanguages()
    assert languages.say("de", left) == "99.997 von 100.000 täglichen API-Anfragen übrig."
    assert languages.say("en", left) == "99,997 of 100,000 daily API requests left."


def test_a_broken_translation_falls_back_to_the_english_not_an_error() -> None:
    text = Phrase("Only %(remaining)s of %(max)s daily API requests are left.", remaining=1, max=2)
    assert say(lambda _message: "Nur %(missing)s", text) == str(text)


@pytest.mark.parametrize("is_emulator", [False, True])
def test_the_doctors_findings_and_fixes_are_said_in_german(is_emulator: bool) -> None:
    """A task with every kind of finding: in German, no English sentence is left."""
    from cxloop.domain.salesforce_task import FieldMapping, SalesforceTaskSpec

    spec = SalesforceTaskSpec(
        name="Case follow-up", object="Case", action="upsert", key_field="Subject",
        record_type="Missing",
        mappings=[FieldMapping(field="Descripton", value="x"),
                  FieldMapping(field="Status", value="Nope", constant=True),
                  FieldMapping(field="CreatedDate", value="x")],
    )  # fmt: skip
    describe = {
        "name": "Case", "createable": False, "updateable": True,
        "fields": [
            {"name": "Description", "type": "textarea", "createable": True, "updateable": True},
            {"name": "Subject", "type": "string", "createable": True, "updateable": True},
            {"name": "Status", "type": "picklist", "createable": True, "updateable": True,
             "restrictedPicklist": True, "picklistValues": [{"value": "New"}]},
            {"name": "CreatedDate", "type": "datetime"},
            {"name": "Origin", "type": "string", "createable": True, "nillable": False},
        ],
        "recordTypeInfos": [{"developerName": "Support", "available": True}],
    }  # fmt: skip
    remedies = Remedies(is_emulator=is_emulator, username="api@acme.example")
    findings = check_task(spec, describe, remedies)
    assert len(findings) >= 5
    languages = UiLanguages()
    for finding in findings:
        for text in (finding.message, finding.fix):
            if not text:
                continue
            german = languages.say("de", text)
            assert german != text, text
            for english in ENGLISH_WORDS:
                assert english not in german, (english, german)
