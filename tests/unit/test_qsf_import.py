"""QSF import: one fixture per question type and shape, garbage input, and two real exports."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxloop.domain.answers import is_shown, validate_response
from cxloop.domain.qsf import DEFAULT_MAX_BYTES, ImportReport, QsfImportError, import_qsf
from cxloop.domain.response_csv import ResponseTable
from cxloop.domain.survey_content import (
    MatrixQuestion,
    MultipleChoiceQuestion,
    RatingQuestion,
    SingleChoiceQuestion,
    SurveyContent,
    TextEntryQuestion,
)
from tests.conftest import reference_sample

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "qsf"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "qualtrics" / "qsf"


def load(name: str) -> tuple[SurveyContent, ImportReport]:
    content, report = import_qsf((FIXTURES / name).read_bytes())
    # Whatever comes in must be valid content that survives its own round trip.
    assert SurveyContent.from_yaml(content.to_yaml()) == content
    return content, report


def skipped(report: ImportReport) -> dict[str, str]:
    return {s.element: s.reason for s in report.skipped}


def test_single_answer_questions() -> None:
    content, report = load("mc_single_answer.qsf")
    assert report.imported == {"single_choice": 4}
    assert report.survey_name == "Single answer"
    assert report.source_survey_id == "SV_single000000001"
    q1 = content.question("QID1")
    assert isinstance(q1, SingleChoiceQuestion)
    assert q1.text == "How did you hear about us?<br>"
    assert q1.plain_text() == "How did you hear about us?"
    assert q1.required
    assert [(c.id, c.text, c.recode, c.allow_text_entry) for c in q1.choices] == [
        ("2", "A friend", 20, False),  # ChoiceOrder ["2", 1, "4"], ids normalised to text
        ("1", "Search engine", 10, False),
        ("4", "Other, please specify", -1, True),
    ]
    layouts = {q.qid: q.layout for q in content.questions}
    assert layouts == {
        "QID1": "vertical",
        "QID2": "horizontal",
        "QID3": "dropdown",
        "QID4": "dropdown",
    }
    assert not content.question("QID3").required
    assert report.warnings == [
        "translations (DE) are not imported; only the survey's own language is",
        "skip logic is not imported (on QID2); respondents go through every page in order",
        "QID3: 'request response' imported as optional",
    ]


def test_multiple_answer_questions() -> None:
    content, report = load("mc_multiple_answer.qsf")
    assert report.imported == {"multiple_choice": 3}
    assert report.warnings == [] and report.skipped == []
    q1 = content.question("QID1")
    assert isinstance(q1, MultipleChoiceQuestion)
    assert [(c.id, c.recode, c.allow_text_entry, c.exclusive) for c in q1.choices] == [
        ("1", 1, False, False),
        ("7", 7, False, False),
        ("3", 3, False, False),
        ("8", 8, True, False),
        ("9", 0, False, True),
    ]
    assert content.question("QID2").layout == "horizontal" and content.question("QID2").required


def test_nps() -> None:
    content, report = load("nps.qsf")
    assert report.imported == {"nps": 1}
    question = content.question("QID1")
    assert question.type == "nps" and question.required
    assert "${e://Field/Brand}" in question.text  # piped text is kept as written


def test_matrix_likert() -> None:
    content, report = load("matrix_likert.qsf")
    assert report.imported == {"matrix": 4}
    q1 = content.question("QID1")
    assert isinstance(q1, MatrixQuestion)
    assert not q1.multiple_answers and q1.required
    assert [(r.id, r.allow_text_entry) for r in q1.rows] == [
        ("1", False),
        ("2", False),
        ("4", True),
    ]
    assert [(s.id, s.text, s.recode) for s in q1.scale] == [
        ("1", "Dissatisfied", -1),
        ("2", "Neutral", 0),
        ("3", "Satisfied", 1),
        ("4", "n/a", None),
    ]
    assert "QID1: the recode 'n/a' of scale point '4' is not a number; it was left empty" in (
        report.warnings
    )
    assert content.question("QID2").multiple_answers
    assert "QID3: dropdown matrix imported as an ordinary matrix" in report.warnings
    assert "QID4: drag-and-drop matrix imported as an ordinary matrix" in report.warnings


def test_text_entry() -> None:
    content, report = load("text_entry.qsf")
    assert report.imported == {"text_entry": 7}
    shapes = {
        q.qid: (q.multiline, q.validation, q.required)
        for q in content.questions
        if isinstance(q, TextEntryQuestion)
    }
    assert shapes == {
        "QID1": (False, "none", False),
        "QID2": (True, "none", False),
        "QID3": (True, "none", False),
        "QID4": (False, "none", False),
        "QID5": (False, "email", True),
        "QID6": (False, "number", False),
        "QID7": (False, "none", False),
    }
    assert skipped(report) == {
        "QID8": "form fields (a text box per choice) are not supported; use separate text entry "
        "questions"
    }
    assert "QID4: password box imported as an ordinary text box" in report.warnings
    assert (
        "QID7: 'ValidUSPhone' validation is not imported; any text is accepted" in report.warnings
    )


def test_sliders_with_one_slider_become_ratings() -> None:
    content, report = load("slider.qsf")
    assert report.imported == {"rating": 2}
    q1, q2 = content.question("QID1"), content.question("QID2")
    assert isinstance(q1, RatingQuestion) and (q1.scale_min, q1.scale_max) == (0, 10)
    assert isinstance(q2, RatingQuestion) and (q2.scale_min, q2.scale_max) == (1, 5)
    assert q2.text == "Rate the checkout from 1 to 5"  # no question text: the slider's label
    assert "2 sliders" in skipped(report)["QID3"]
    assert "0-1000 does not fit a rating" in skipped(report)["QID4"]


def test_descriptive_text() -> None:
    content, report = load("descriptive.qsf")
    assert report.imported == {"descriptive": 2}
    assert content.question("QID1").plain_text() == (
        "Thank you for shopping with us, ${m://FirstName}!\nThis takes <2 minutes."
    )
    assert report.warnings == ["QID2: the graphic is not imported, only the text"]


def test_unsupported_question_types_are_reported_and_skipped() -> None:
    content, report = load("unsupported.qsf")
    assert content.questions == [] and report.imported == {} and report.imported_total == 0
    reasons = skipped(report)
    assert reasons == {
        "element QG": "this element (quotas) is not imported",
        "QID1": "side-by-side questions are not supported",
        "QID2": "constant sum questions are not supported",
        "QID3": "rank order questions are not supported",
        "QID4": "pick, group and rank questions are not supported",
        "QID5": "timing questions are not supported",
        "QID6": "browser meta info questions are not supported",
        "QID7": "captcha questions are not supported",
        "QID8": "bipolar matrix tables are not supported",
        "QID9": "text entry matrix tables are not supported",
        "QID10": "its choices are carried forward (q://QID20/ChoiceGroup/SelectedChoices), which "
        "is not supported",
        "QID11": "MaxDiff matrix tables are not supported",
    }
    assert {s.element: s.kind for s in report.skipped}["QID9"] == "Matrix/TE/Long"


def test_flow_blocks_page_breaks_and_embedded_data() -> None:
    content, report = load("flow_and_pages.qsf")
    assert [(q.qid, q.page) for q in content.questions] == [
        ("QID1", 1),
        ("QID2", 1),
        ("QID3", 2),  # page break inside the first block
        ("QID4", 3),  # the block inside the branch
        ("QID5", 4),  # the block inside the randomiser
        ("QID6", 5),  # two page breaks in a row make one page
        ("QID8", 6),  # the block inside a group; QID2 again is dropped
    ]
    assert [(f.name, f.default) for f in content.embedded_data] == [
        ("CaseId", None),
        ("Channel", "email"),
        ("Arm", None),
    ]
    assert skipped(report) == {
        # QID1 is a text entry: "choice 1 selected" means nothing for it
        "flow FL_3": "branch logic not imported (the condition on QID1/SelectableChoice/1 is not "
        "supported); what it holds is always shown",
        "flow FL_13": "'WebService' flow elements are not imported",
        "block BL_orphan0000000001": "block 'Never in the flow' is not in the survey flow, so it "
        "is never shown",
        "QID7": "the question is not in any block of the flow",
        "QID9": "the question is in the trash",
        "QID10": "the question is not in any block of the flow",
    }
    warnings = "\n".join(report.warnings)
    assert "BL_missing000000001, which the file does not have" in warnings
    assert content.flow is not None
    flow = content.to_document()["flow"]
    assert flow[0] == {
        "type": "embedded_data",
        "fields": [{"name": "Arm", "value": "${rand://int/1:4}"}],
    }
    assert {"type": "randomizer", "id": "FL_5", "present": 1,
            "flow": [{"type": "block", "block": "BL_third00000000001"}]} in flow  # fmt: skip
    assert flow[-1] == {"type": "end_survey"}
    assert "'Bad/Name' has characters cxloop cannot use" in warnings
    assert "'Channel' is set in several places; the first value was kept" in warnings
    assert "lists QID404, which the file does not have" in warnings
    assert "QID2 is in more than one block" in warnings
    assert report.pages == 6 and report.embedded_data_fields == 3


def test_display_logic_that_maps() -> None:
    content, report = load("display_logic.qsf")
    assert report.imported == {
        "single_choice": 2,
        "multiple_choice": 1,
        "matrix": 1,
        "text_entry": 16,
        "rating": 1,
        "nps": 1,
    }
    show_if = {q.qid: q.show_if.model_dump() if q.show_if else None for q in content.questions}
    assert show_if["QID10"] == {"field": "QID1", "operator": "equals", "value": "1"}
    assert show_if["QID11"] == {"field": "QID2", "operator": "not_contains", "value": "3"}
    assert show_if["QID12"] == {"field": "QID3/row/2", "operator": "equals", "value": "1"}
    assert show_if["QID13"] == {
        "join": "or",
        "conditions": [
            {"field": "QID3/row/1", "operator": "equals", "value": "3"},
            {"field": "QID3/row/2", "operator": "equals", "value": "3"},
        ],
    }
    assert show_if["QID14"] == {"field": "QID4", "operator": "equals", "value": "Acme"}
    assert show_if["QID16"] == {"field": "QID5", "operator": "greater_than", "value": 7}
    assert show_if["QID17"]["join"] == "or"
    assert show_if["QID18"] == {
        "join": "or",
        "conditions": [
            {
                "join": "and",
                "conditions": [
                    {"field": "QID1", "operator": "equals", "value": "1"},
                    {"field": "QID2", "operator": "contains", "value": "1"},
                ],
            },
            {"field": "QID2", "operator": "contains", "value": "2"},
        ],
    }
    assert show_if["QID19"]["conditions"][1]["conditions"][1] == {
        "field": "QID2/text/4",
        "operator": "is_not_empty",
        "value": None,
    }
    # The imported logic works on answers.
    answers = {"QID1": "1", "QID2": ["1"], "QID6": 0, "QID5": 8, "QID4": "Acme Ltd"}
    assert is_shown(content, "QID10", answers) and is_shown(content, "QID18", answers)
    assert is_shown(content, "QID17", answers) and is_shown(content, "QID16", answers)
    assert is_shown(content, "QID15", answers) and not is_shown(content, "QID14", answers)
    assert validate_response(content, answers) == []


def test_display_logic_that_does_not_map_is_reported_and_the_question_always_shown() -> None:
    content, report = load("display_logic.qsf")
    for qid in ("QID20", "QID21", "QID22", "QID25"):
        assert content.question(qid).show_if is None
    # same-page display logic is kept (issue 17): QID10 is above QID23 on its page
    assert content.question("QID23").show_if.model_dump() == {
        "field": "QID10",
        "operator": "is_not_empty",
        "value": None,
    }
    warnings = "\n".join(report.warnings)
    assert "QID20: display logic not imported (the 'Displayed' condition is not supported)" in (
        warnings
    )
    assert "QID21: display logic not imported ('EmbeddedField' conditions are not supported)" in (
        warnings
    )
    assert "QID22: display logic not imported (it depends on QID7, which was not imported)" in (
        warnings
    )
    assert "QID25: display logic not imported (QID1 has no choice '9')" in warnings
    assert "QID24: display logic on choice '2' is not imported; it is always shown" in warnings
    assert skipped(report) == {"QID7": "constant sum questions are not supported"}


# -- the two real exports ---------------------------------------------------------------------


def reference_file(name: str) -> bytes:
    """A real export of ../shared/reference/qualtrics/qsf (missing: skip, or fail under CI)."""
    return reference_sample("qualtrics", "qsf", name).read_bytes()


def test_real_export_sample_survey() -> None:
    content, report = import_qsf(reference_file("ctesta01_QualtricsTools__Sample_Survey.qsf"))
    assert report.survey_name == "Sample Survey"
    assert report.imported == {
        "single_choice": 4,
        "multiple_choice": 4,
        "matrix": 8,
        "text_entry": 4,
    }
    reasons = [s.reason for s in report.skipped]
    assert len(report.skipped) == 52 - 20  # every SQ element is imported or accounted for
    assert reasons.count("the question is in the trash") == 20
    assert reasons.count("side-by-side questions are not supported") == 8
    assert sum("sliders (one per choice)" in r for r in reasons) == 4
    assert report.pages == 4 and content.page_numbers() == [1, 2, 3, 4]
    q45 = content.question("QID45")
    assert [(c.id, c.recode) for c in q45.choices] == [("1", 143), ("2", 132), ("3", 142)]
    q36 = content.question("QID36")
    assert q36.page == 3
    assert q36.show_if.model_dump() == {"field": "QID1", "operator": "equals", "value": "1"}
    q37 = content.question("QID37")
    assert [c.field for c in q37.show_if.conditions] == ["QID3/row/1", "QID3/row/2", "QID3/row/3"]
    assert content.question("QID35").multiple_answers
    assert content.question("QID20").plain_text().startswith("This is a multiple choice")
    assert SurveyContent.from_json(content.to_json()) == content


def test_real_export_long_exhaustive_survey() -> None:
    content, report = import_qsf(
        reference_file("ctesta01_QualtricsTools__Long_Exhaustive_Sample_Survey.qsf")
    )
    assert report.survey_name == "Long & Exhaustive Sample Survey"
    assert report.imported == {
        "descriptive": 1,
        "single_choice": 8,
        "multiple_choice": 7,
        "matrix": 20,
        "text_entry": 2,
    }
    assert report.imported_total + len(report.skipped) == 48
    assert {s.kind for s in report.skipped} == {
        "Matrix/Likert/DND",
        "TE/SL",
        "SBS/SBSMatrix",
        "Matrix/TE/Long",
    }
    assert report.pages == 6
    assert content.question("QID10").layout == "dropdown"  # MC/DL
    assert content.question("QID11").layout == "dropdown"  # MC/SB
    q7 = content.question("QID7")
    assert [(c.id, c.recode, c.allow_text_entry) for c in q7.choices][2:] == [
        ("3", 16738740, True),
        ("4", 255, True),
        ("5", 1677721500000000, True),
    ]
    q16 = content.question("QID16")
    assert (q16.choices[-1].recode, q16.choices[-1].allow_text_entry) == (-2, True)
    q34 = content.question("QID34")
    assert [s.recode for s in q34.scale] == [1, 10, 100, None, -2]
    assert any("QID34: the recode '-'" in w for w in report.warnings)
    assert SurveyContent.from_yaml(content.to_yaml()) == content


# -- garbage in -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not JSON"),
        (b"<html>not a survey</html>", "not JSON, so not a QSF export (line 1, column 1"),
        ("{'single': 'quotes'}", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"[]", "expected an object"),
        (b"42", "expected an object"),
        (b'{"SurveyEntry": {}}', "no SurveyElements list"),
        (b'{"SurveyElements": {"0": {}}}', "no SurveyElements list"),
        (b"[" * 200_000 + b"]" * 200_000, "not JSON"),
        (b'{"SurveyElements": [], "x": 1' + b"9" * 5000 + b"}", "not JSON"),
        (None, "give the file's contents as text or bytes"),
    ],
)
def test_unusable_files_are_clear_errors(data: Any, message: str) -> None:
    with pytest.raises(QsfImportError) as info:
        import_qsf(data)
    assert message in str(info.value)


def test_files_over_the_limit_are_refused_before_parsing() -> None:
    data = (FIXTURES / "nps.qsf").read_bytes()
    with pytest.raises(QsfImportError, match=r"the limit is 0.0 MB \(1,000 bytes\)"):
        import_qsf(data, max_bytes=1_000)
    with pytest.raises(QsfImportError, match="the limit is"):
        import_qsf(data.decode(), max_bytes=1_000)
    with pytest.raises(QsfImportError, match=r"the limit is 50\.0 MB"):
        import_qsf(b" " * (DEFAULT_MAX_BYTES + 1))
    assert import_qsf(data, max_bytes=len(data)).report.imported == {"nps": 1}


def test_text_with_a_byte_order_mark_is_fine() -> None:
    data = (FIXTURES / "nps.qsf").read_text(encoding="utf-8")
    assert import_qsf("\ufeff" + data).report.imported == {"nps": 1}
    assert import_qsf(b"\xef\xbb\xbf" + data.encode()).report.imported == {"nps": 1}


@pytest.mark.parametrize(
    "elements",
    [
        [],
        [1, "two", None, []],
        [{"Element": "BL", "Payload": "nope"}, {"Element": "FL", "Payload": 7}],
        [{"Element": "SQ", "PrimaryAttribute": "QID1", "Payload": None}],
        [{"Element": "SQ", "Payload": {"QuestionID": "QID1", "QuestionType": "MC", "Choices": 5}}],
        [
            {"Element": "BL", "Payload": [{"Type": "Default", "ID": "BL_1", "BlockElements": "x"}]},
            {
                "Element": "FL",
                "Payload": {"Type": "Root", "Flow": [{"Type": "Block", "ID": "BL_1"}]},
            },
        ],
        [
            {
                "Element": "BL",
                "Payload": [
                    {
                        "Type": "Default",
                        "ID": "BL_1",
                        "BlockElements": [{"Type": "Question", "QuestionID": "QID1"}],
                    }
                ],
            },
            {
                "Element": "SQ",
                "Payload": {
                    "QuestionID": "QID1",
                    "QuestionType": "MC",
                    "Selector": "SAVR",
                    "Choices": {"1": "not an object", "2": {"Display": 7}},
                    "ChoiceOrder": [True, None, {"a": 1}, "2"],
                    "RecodeValues": {"1": [1], "2": {"x": 1}},
                    "Validation": "strict",
                    "DisplayLogic": {"0": "x"},
                },
            },
        ],
    ],
)
def test_wrong_shapes_inside_the_file_do_not_crash(elements: list[Any]) -> None:
    content, report = import_qsf(json.dumps({"SurveyElements": elements}))
    assert isinstance(content, SurveyContent) and isinstance(report, ImportReport)


def test_deeply_nested_flow_is_cut_with_a_warning() -> None:
    node: dict[str, Any] = {"Type": "Block", "ID": "BL_1", "FlowID": "FL_x"}
    for depth in range(300):
        node = {"Type": "Group", "FlowID": f"FL_{depth}", "Flow": [node]}
    document = {
        "SurveyElements": [
            {"Element": "BL", "Payload": [{"Type": "Default", "ID": "BL_1", "BlockElements": []}]},
            {"Element": "FL", "Payload": {"Type": "Root", "Flow": [node]}},
        ]
    }
    _, report = import_qsf(json.dumps(document))
    assert "the survey flow is nested too deeply; the deepest part was ignored" in report.warnings


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(
            ["QID1", "QID2", "BL_page1000000000001", "Question", "Page Break", "MC", "SAVR"]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
_BASE = json.loads((FIXTURES / "display_logic.qsf").read_text(encoding="utf-8"))


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


_BASE_PATHS = _paths(_BASE)[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_BASE_PATHS), _json), min_size=1, max_size=4))
def test_a_real_structure_with_random_parts_replaced_never_crashes(
    replacements: list[tuple[tuple, Any]],
) -> None:
    document = copy.deepcopy(_BASE)
    for path, value in replacements:
        target = document
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this path
    try:
        content, report = import_qsf(json.dumps(document))
    except QsfImportError as exc:
        assert str(exc)
        return
    assert SurveyContent.from_json(content.to_json()) == content
    assert report.imported_total == len(content.questions)


# -- survey flow and options (issue 17) -------------------------------------------------------


def test_a_branch_to_an_end_of_survey_keeps_its_redirect_and_screen_out() -> None:
    content, report = load("consent_randomizer_end.qsf")
    assert not report.skipped and not report.warnings
    flow = content.to_document()["flow"]
    assert flow[1] == {
        "type": "branch",
        "condition": {"field": "QID1", "operator": "equals", "value": "2"},
        "flow": [
            {
                "type": "end_survey",
                "redirect_url": "https://app.prolific.example/submissions/complete?cc=NOCONSENT"
                "&pid=${e://Field/PROLIFIC_PID}",
                "screened_out": True,
            }
        ],
    }
    assert flow[-1] == {"type": "end_survey"}
    assert [q.block for q in content.questions] == [
        "BL_consent", "BL_condA", "BL_condB", "BL_condC", "BL_outro",
    ]  # fmt: skip


def test_a_randomizer_keeps_its_subset_and_even_presentation() -> None:
    content, _ = load("consent_randomizer_end.qsf")
    randomizer = content.to_document()["flow"][2]
    assert randomizer["type"] == "randomizer" and randomizer["present"] == 1
    assert content.flow[2].even is True  # type: ignore[index, union-attr]
    assert [e["block"] for e in randomizer["flow"]] == ["BL_condA", "BL_condB", "BL_condC"]


def test_survey_options_are_imported() -> None:
    content, _ = load("consent_randomizer_end.qsf")
    assert content.options.model_dump() == {
        "title": "Choices study",
        "back_button": False,
        "progress_bar": "percent",
        "end_message": "",
        "end_redirect_url": "https://app.prolific.example/submissions/complete?cc=DONE",
    }


def test_the_shared_export_keeps_its_randomizer_redirect_and_options() -> None:
    path = REFERENCE / "Palladinium_iccc22__survey.qsf"
    if not path.exists():
        pytest.skip("the shared reference exports are not here")
    content, _ = import_qsf(path.read_bytes())
    [randomizer] = [e for e in content.flow or [] if e.type == "randomizer"]
    assert randomizer.present == 10 and len(randomizer.flow) == 10 and randomizer.even
    assert content.options.back_button is False
    assert content.options.progress_bar == "none"
    assert content.options.title == ""  # not the internal name, nor the product's page title
    assert content.options.end_redirect_url is not None
    assert content.options.end_redirect_url.endswith("survey_code=${e://Field/id}")


def test_a_slider_becomes_a_range_input_with_its_end_labels() -> None:
    content, _ = load("slider.qsf")
    q1 = content.question("QID1")
    assert isinstance(q1, RatingQuestion)
    assert q1.display == "slider" and q1.labels == ["Hard", "Easy"] and q1.choice_id == "1"


def test_export_tags_and_prefilled_defaults_are_kept() -> None:
    content, _ = load("consent_randomizer_end.qsf")
    assert content.question("QID1").export_tag == "consent"
    assert content.question("QID2").export_tag == "QID2"
    document = json.loads((FIXTURES / "consent_randomizer_end.qsf").read_text())
    for element in document["SurveyElements"]:
        if element["Element"] == "SQ" and element["PrimaryAttribute"] == "QID5":
            element["Payload"]["DefaultChoices"] = {"TEXT": {"Text": "${e://Field/PROLIFIC_PID}"}}
            element["Payload"]["DataExportTag"] = 'Comments, "free"'
    imported, _ = import_qsf(json.dumps(document))
    comments = imported.question("QID5")
    assert comments.default == "${e://Field/PROLIFIC_PID}"  # type: ignore[union-attr]
    assert comments.export_tag == "Comments_ _free_"  # no commas or quotes in a column name


def test_export_tags_name_the_columns_as_the_reference_export_does() -> None:
    path = REFERENCE / "ctesta01_QualtricsTools__Survey_Logic_EVERYWHERE.qsf"
    if not path.exists():
        pytest.skip("the shared reference exports are not here")
    content, _ = import_qsf(path.read_bytes())
    names, _, import_ids = ResponseTable(content).header_rows()
    reference = (path.with_suffix(".csv")).read_text(encoding="utf-8-sig").splitlines()[0]
    questions = [n for n in reference.split(",") if n.startswith("Q")]
    assert questions == ["Q1", "Q2", "Q3", "Q4", "Q5_1", "Q5_2", "Q5_3"]
    assert names[-len(questions) :] == questions
    assert import_ids[-1] == '{"ImportId":"QID5_3"}'  # reading still maps by QID


def test_the_report_names_what_changes_the_survey_behaviour_first() -> None:
    document = json.loads((FIXTURES / "consent_randomizer_end.qsf").read_text())
    for element in document["SurveyElements"]:
        if element["Element"] == "SQ" and element["PrimaryAttribute"] == "QID2":
            element["Payload"]["QuestionJS"] = (
                "Qualtrics.SurveyEngine.addOnload(function()\n{\n\tthis.hideNextButton();\n});"
            )
            element["Payload"]["QuestionText"] += '<img src="https://x.example/a.png" alt="A">'
        if element["Element"] == "SQ" and element["PrimaryAttribute"] == "QID3":
            # the editor's empty placeholder is no script
            element["Payload"]["QuestionJS"] = (
                "Qualtrics.SurveyEngine.addOnload(function()\n{\n\t/*Place your JavaScript "
                "here to run when the page loads*/\n\n});"
            )
    document["SurveyElements"].append(
        {"SurveyID": "SV_flowfixture0001", "Element": "SQ", "PrimaryAttribute": "QID9",
         "Payload": {"QuestionID": "QID9", "QuestionType": "CS", "Selector": "VRTL",
                     "QuestionText": "Split 100"}}
    )  # fmt: skip
    document["SurveyElements"][0]["Payload"][1]["BlockElements"].append(
        {"Type": "Question", "QuestionID": "QID9"}
    )
    _, report = import_qsf(json.dumps(document))
    assert report.behaviour_changes == [
        "JavaScript of 1 question is dropped (QID2); what it did (hiding, timing, checks) does "
        "not happen",
        "1 question show images (QID2); an image is shown only from a host the "
        "survey_image_hosts setting allows, otherwise as its alt text",
        "1 question left out as unsupported (QID9); see skipped for why",
    ]


def test_a_long_consent_text_becomes_a_descriptive_item_above_its_question() -> None:
    document = json.loads((FIXTURES / "consent_randomizer_end.qsf").read_text())
    consent = (
        "<div><strong>Information</strong></div><div>"
        + "This study is about decisions. " * 20
        + "</div><ul><li>Taking part is <u>voluntary</u>.</li></ul>"
        "<div>Do you agree to take part?</div>"
    )
    for element in document["SurveyElements"]:
        if element["Element"] == "SQ" and element["PrimaryAttribute"] == "QID1":
            element["Payload"]["QuestionText"] = consent
    content, report = import_qsf(json.dumps(document))
    description, question = content.questions[:2]
    assert (description.qid, description.type, description.block) == (
        "QID6", "descriptive", "BL_consent",
    )  # fmt: skip
    assert "<u>voluntary</u>" in description.text and "Do you agree" not in description.text
    assert question.qid == "QID1" and question.plain_text() == "Do you agree to take part?"
    assert "QID1: its long text is shown as text above it (QID6)" in report.warnings[0]
