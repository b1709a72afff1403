"""docs/piped-text.md and docs/configuration.md are generated from the code and tested against
it: a selector the parser accepts but the reference leaves out, an example that does not
render, or a setting the doc does not list, fails here (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxloop.domain import piped_text
from cxloop.reference_docs import (
    EXAMPLE_SURVEY,
    configuration_markdown,
    example_context,
    example_output,
    piped_text_markdown,
)
from cxloop.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "run `python -m cxloop.reference_docs docs` and commit the result"


def test_piped_text_doc_is_what_the_code_generates() -> None:
    assert (DOCS / "piped-text.md").read_text(encoding="utf-8") == piped_text_markdown(), REGENERATE


def test_configuration_doc_is_what_the_settings_model_generates() -> None:
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == configuration_markdown(), (
        REGENERATE
    )


@pytest.mark.parametrize("entry", piped_text.REFERENCE, ids=lambda e: e.reference)
def test_every_example_is_valid_piped_text_and_renders(entry: piped_text.ReferenceEntry) -> None:
    problems = piped_text.validate(
        entry.reference,
        example_context().survey_content,
        piped_text.NAMESPACES,
        known_task_ids={"response", "alert", "invite"},
    )
    assert problems == []
    assert example_output(entry.reference) != ""


def _ids(question: dict) -> list[str]:
    items = question.get("choices", []) + question.get("rows", []) + question.get("scale", [])
    return sorted({item["id"] for item in items})


def test_every_selector_the_parser_accepts_is_in_the_reference() -> None:
    content = example_context().survey_content
    assert content is not None
    documented = set()
    for entry in piped_text.REFERENCE:
        if entry.namespace == "q":
            parts = [p for p in entry.reference[6:-1].split("/")[1:] if p != "ChoiceGroup"]
            documented.add((entry.applies_to, parts[0], len(parts) > 1))
    missing = []
    for raw in EXAMPLE_SURVEY["questions"]:
        question = content.question(raw["qid"])
        for selector in piped_text._QUESTION_SELECTORS:
            for args in ([], *([item] for item in _ids(raw))):
                accepted = piped_text._selector_problem(question, selector, args) is None
                if accepted and (question.type, selector, bool(args)) not in documented:
                    missing.append(f"{question.type}: {selector}{'/<id>' if args else ''}")
    assert missing == [], "selectors the parser accepts but the reference does not show"
    question_types = {raw["type"] for raw in EXAMPLE_SURVEY["questions"]}
    from cxloop.domain.survey_content import QUESTION_TYPES

    assert question_types == set(QUESTION_TYPES), "the example survey has every question type"


def test_every_field_link_preset_and_namespace_is_in_the_reference() -> None:
    doc = piped_text_markdown()
    for name in piped_text.METADATA_FIELDS:
        assert f"${{e://Field/{name}}}" in doc, name
    for name in piped_text.RECIPIENT_FIELDS:
        assert f"${{m://{name}}}" in doc, name
    for name in piped_text.LINKS:
        assert f"${{l://{name}" in doc, name
    for preset in piped_text.DATE_PRESETS:
        assert f"${{date://CurrentDate/{preset}}}" in doc, preset
    for kind in ("CurrentDate", "CurrentTime", "OtherDate"):
        assert f"${{date://{kind}/" in doc, kind
    for namespace in piped_text.NAMESPACES:
        assert f"## `{namespace}://`" in doc, namespace
    for namespace in piped_text.UNSUPPORTED_NAMESPACES:
        assert f"`{namespace}://`" in doc, namespace


def test_every_setting_is_in_the_configuration_doc_with_what_it_does() -> None:
    doc = configuration_markdown()
    for name in Settings.model_fields:
        row = next(
            line for line in doc.splitlines() if line.startswith(f"| `CXLOOP_{name.upper()}`")
        )
        assert f"| `{name}` |" in row
        assert not row.rstrip().endswith("|  |"), f"{name} has no description"


def test_the_docs_point_to_the_reference_not_to_the_source() -> None:
    surveys = (DOCS / "surveys.md").read_text(encoding="utf-8")
    workflows = (DOCS / "workflows.md").read_text(encoding="utf-8")
    assert "piped-text.md" in surveys and "piped-text.md" in workflows
    assert "cxloop.domain.piped_text" not in surveys
