"""Answers: their stored shape, checking a submitted response, and what a respondent is shown.

A response's answers are a mapping keyed by QID. A question that was not answered has no key.
The canonical stored value per question type:

================  ========================================  ================================
type              value                                     example
================  ========================================  ================================
nps               whole number 0-10                         ``9``
rating            whole number ``scale_min``-``scale_max``  ``4``
single_choice     the choice id                             ``"2"``
multiple_choice   list of choice ids, each once             ``["1", "3"]``
text_entry        the text as typed                         ``"Quick and friendly"``
matrix            ``{row id: scale point id}``              ``{"1": "5", "2": "4"}``
matrix (multiple  ``{row id: [scale point ids]}``           ``{"1": ["2", "3"]}``
answers per row)
descriptive       never answered                            (no key)
================  ========================================  ================================

Text typed into a choice's "other, please specify" box (or a matrix row's box) is stored beside
the answer under ``<QID>_<choice id>_TEXT``, the name the reference product uses in its exports::

    {"QID2": "4", "QID2_4_TEXT": "From a friend", "QID7": ["1", "5"], "QID7_5_TEXT": "Radio"}

``None``, blank text, an empty list and an empty matrix all count as "not answered". Numbers are
never text (``"9"`` is not an NPS answer) and choice ids are always text (``2`` is not one).
Values are not escaped or cleaned: HTML in an answer is just text here; the web layer escapes.

Display logic: a question is **shown** when it has no ``show_if`` or its condition holds on the
answers to shown questions of earlier pages and of shown questions above it on its page.
Answers to hidden questions are not errors (a respondent may go back and change their mind);
``visible_answers()`` drops them before storing.

A response is **finished** when every shown required question is answered, nothing in it is
invalid and, for the page-by-page form, the respondent submitted the last page that shows
anything (``is_finished``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from cxloop.domain.conditions import evaluate, is_empty
from cxloop.domain.document_paths import short_value
from cxloop.domain.survey_content import (
    Choice,
    ChoiceQuestion,
    DescriptiveQuestion,
    MatrixQuestion,
    MultipleChoiceQuestion,
    Question,
    ScalePoint,
    ScaleQuestion,
    SingleChoiceQuestion,
    SurveyContent,
    TextEntryQuestion,
    parse_answer_field,
)

MAX_TEXT_LENGTH = 20_000
MAX_PROBLEMS = 100

_TEXT_KEY_RE = re.compile(r"^(QID[1-9][0-9]{0,8})_(.+)_TEXT$")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class AnswerProblem:
    """One thing wrong with a response: which question (or embedded data field), what, why."""

    qid: str | None
    code: str
    message: str
    field: str | None = None  # the embedded data field, for problems with embedded data

    def as_dict(self) -> dict[str, Any]:
        """The problem as ``{qid, code, message, field}``."""
        return asdict(self)


def text_key(qid: str, choice_id: str) -> str:
    """The answer key for text typed into a choice's (or matrix row's) box: ``QID2_4_TEXT``."""
    return f"{qid}_{choice_id}_TEXT"


def text_box_ids(question: Question) -> list[str]:
    """The ids of the question's choices (or matrix rows) that have a text box, in order."""
    if isinstance(question, ChoiceQuestion):
        return [c.id for c in question.choices if c.allow_text_entry]
    if isinstance(question, MatrixQuestion):
        return [r.id for r in question.rows if r.allow_text_entry]
    return []


def parse_answer_key(key: Any) -> tuple[str, str | None] | None:
    """``("QID2", None)`` for ``QID2``, ``("QID2", "4")`` for ``QID2_4_TEXT``, else None."""
    if not isinstance(key, str) or len(key) > 200:
        return None
    if key.startswith("QID") and key[3:].isdecimal() and key[3:4] != "0" and len(key) <= 12:
        return key, None
    match = _TEXT_KEY_RE.match(key)
    return (match[1], match[2]) if match else None


# -- what is shown ----------------------------------------------------------------------------


def shown_qids(content: SurveyContent, answers: Any) -> set[str]:
    """The QIDs of every question the respondent is shown, given these answers."""
    return {qid for qid, shown in _visibility(content, _mapping(answers)).items() if shown}


def is_shown(content: SurveyContent, qid: str, answers: Any) -> bool:
    """Whether the question with this QID is shown, given these answers."""
    return _visibility(content, _mapping(answers)).get(qid, False)


def shown_questions(content: SurveyContent, page: int, answers: Any) -> list[Question]:
    """The questions of one page that the respondent is shown, in order."""
    visibility = _visibility(content, _mapping(answers))
    return [q for q in content.questions_on_page(page) if visibility.get(q.qid)]


def next_page(content: SurveyContent, answers: Any, after: int | None = None) -> int | None:
    """The first page after ``after`` (or the first page) that shows a question; None at the end."""
    visibility = _visibility(content, _mapping(answers))
    for page in content.page_numbers():
        if after is not None and page <= after:
            continue
        if any(visibility.get(q.qid) for q in content.questions_on_page(page)):
            return page
    return None


def previous_page(content: SurveyContent, answers: Any, before: int) -> int | None:
    """The last page before ``before`` that shows a question; None if there is none."""
    visibility = _visibility(content, _mapping(answers))
    for page in reversed(content.page_numbers()):
        if page < before and any(visibility.get(q.qid) for q in content.questions_on_page(page)):
            return page
    return None


def visible_answers(content: SurveyContent, answers: Any) -> dict[str, Any]:
    """The answers worth storing: those of shown questions, without empty values."""
    source = _mapping(answers)
    visibility = _visibility(content, source)
    kept: dict[str, Any] = {}
    for question in content.questions:
        if not visibility.get(question.qid):
            continue
        for key in _own_keys(question):
            if key in source and not is_empty(source[key]):
                kept[key] = source[key]
    return kept


def is_finished(
    content: SurveyContent, answers: Any, last_submitted_page: int | None = None
) -> bool:
    """Whether a response is finished (see the module docstring).

    ``last_submitted_page`` is the page the respondent just submitted in the page-by-page form;
    leave it out for a response submitted whole (through the API).
    """
    if validate_response(content, answers):
        return False
    if last_submitted_page is None:
        return True
    return next_page(content, answers, after=last_submitted_page) is None


# -- answer fields (display logic and conditions) ---------------------------------------------


def resolve_answer_field(content: SurveyContent, answers: Any, field: str) -> Any:
    """The value a display-logic field names (``QID1``, ``QID1/recode``, ``QID5/row/2``...).

    A missing question, a missing answer or an answer of the wrong shape resolve to None.
    """
    return _resolver(content.questions_by_qid(), _mapping(answers))(field)


def _resolver(by_qid: Mapping[str, Question], answers: Mapping[str, Any]) -> Callable[[str], Any]:
    def resolve(field: str) -> Any:
        parsed = parse_answer_field(field)
        question = by_qid.get(parsed.qid) if parsed else None
        if parsed is None or question is None:
            return None
        value = clean_value(question, answers.get(parsed.qid))
        if parsed.part == "value":
            return value
        if parsed.part == "text":
            text = answers.get(text_key(parsed.qid, parsed.item or ""))
            return text if isinstance(text, str) else None
        if parsed.part == "recode":
            return _recode(question, value)
        if not isinstance(question, MatrixQuestion) or not isinstance(value, dict):
            return None
        row_value = value.get(parsed.item)
        if parsed.part == "row":
            return row_value
        return _scale_recode(question, row_value)

    return resolve


def _recode(question: Question, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(question, ScaleQuestion):
        return value
    if isinstance(question, SingleChoiceQuestion):
        return _recodes(question.choice, value, many=False)
    if isinstance(question, MultipleChoiceQuestion):
        return _recodes(question.choice, value, many=True)
    return None


def _scale_recode(question: MatrixQuestion, row_value: Any) -> Any:
    if isinstance(row_value, str):
        return _recodes(question.scale_point, row_value, many=False)
    if isinstance(row_value, list):
        return _recodes(question.scale_point, row_value, many=True)
    return None


def _recodes(find: Callable[[Any], Choice | ScalePoint | None], value: Any, many: bool) -> Any:
    """The recode of the entry `value` names (`find` looks it up by id), or with `many` the
    recodes of those the list `value` names, leaving out unknown ones and those without."""
    if not many:
        found = find(value)
        return found.effective_recode if found else None
    entries = (find(v) for v in value)
    return [e.effective_recode for e in entries if e and e.effective_recode is not None]


def clean_value(question: Question, value: Any) -> Any:
    """The answer if it is a valid answer to the question, else None (counts as not answered).

    Display logic and piped text only ever see answers that passed this test.
    """
    if is_empty(value):
        return None
    if isinstance(question, ScaleQuestion):
        low, high = question.bounds
        valid = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return value if valid else None
    if isinstance(question, TextEntryQuestion):
        return value if isinstance(value, str) else None
    if isinstance(question, SingleChoiceQuestion):
        return value if isinstance(value, str) and question.choice(value) else None
    if isinstance(question, MultipleChoiceQuestion):
        valid = isinstance(value, list) and all(
            isinstance(v, str) and question.choice(v) for v in value
        )
        return value if valid else None
    if isinstance(question, MatrixQuestion) and isinstance(value, Mapping):
        rows = {}
        for row_id, chosen in value.items():
            if not isinstance(row_id, str) or question.row(row_id) is None:
                continue
            if isinstance(chosen, list) != question.multiple_answers:
                continue
            points = chosen if isinstance(chosen, list) else [chosen]
            if points and all(isinstance(p, str) and question.scale_point(p) for p in points):
                rows[row_id] = chosen
        return rows or None
    return None


def _visibility(content: SurveyContent, answers: Mapping[str, Any]) -> dict[str, bool]:
    by_qid = content.questions_by_qid()
    visibility: dict[str, bool] = {}
    earlier: dict[str, Any] = {}  # answers of shown questions on earlier pages
    resolve = _resolver(by_qid, earlier)
    for page in content.pages():
        for question in page:
            shown = question.show_if is None or evaluate(question.show_if, resolve)
            visibility[question.qid] = shown
            if shown:
                # At once: display logic may look at questions above it on the same page.
                earlier.update({k: answers[k] for k in _own_keys(question) if k in answers})
    return visibility


def _own_keys(question: Question) -> Iterator[str]:
    yield question.qid
    for box_id in text_box_ids(question):
        yield text_key(question.qid, box_id)


# -- validation -------------------------------------------------------------------------------


def validate_response(
    content: SurveyContent, answers: Any, embedded_data: Any = None
) -> list[AnswerProblem]:
    """Every problem with a submitted response at once; an empty list means it is fine.

    Never raises, whatever ``answers`` and ``embedded_data`` hold.
    """
    return _Checker(content).check(answers, embedded_data, page=None)


def validate_page(content: SurveyContent, page: int, answers: Any) -> list[AnswerProblem]:
    """The problems with one page's answers (``answers`` may hold earlier pages' answers too)."""
    return _Checker(content).check(answers, None, page=page)


# A question's test on a whole response: True when it certainly has no problem; False when it
# may have one (the general checks then decide). Built once per question by `ResponseRules`.
_QuestionTest = Callable[[Mapping[Any, Any], bool], bool]


class ResponseRules:
    """`validate_response` and `visible_answers` for one survey content, prepared once for many
    responses (an import checks thousands against the same content).

    The results are always those of the two functions. What is prepared is a quick test that
    recognises the usual response, one whose every answer is plainly valid, in a single pass
    over its answers; a response it is not sure of goes through the general checks, so every
    problem is found and worded exactly as `validate_response` words it.
    """

    def __init__(self, content: SurveyContent) -> None:
        self.content = content
        self._has_logic = any(q.show_if is not None for q in content.questions)
        by_qid = content.questions_by_qid()
        candidates = [q.qid for q in content.questions] + [
            text_key(q.qid, box_id) for q in content.questions for box_id in text_box_ids(q)
        ]
        # Only keys the general check accepts (as it parses them) count as known.
        self._known_keys = frozenset(k for k in candidates if _is_known_key(by_qid, k))
        self._tests = [(q.qid, _question_test(q)) for q in content.questions]
        self._own_keys = [(q.qid, tuple(_own_keys(q))) for q in content.questions]
        self._all_own_keys = tuple(k for _, keys in self._own_keys for k in keys)
        self._embedded_names = frozenset(
            [f.name for f in content.embedded_data] + content.flow_data_names()
        )

    def check(
        self, answers: Any, embedded_data: Any = None, *, include_required: bool = True
    ) -> list[AnswerProblem]:
        """`validate_response(content, answers, embedded_data)`; without `include_required`,
        less its "required" problems (an unfinished response may leave questions open)."""
        if self._plainly_valid(answers, embedded_data, include_required):
            return []
        problems = validate_response(self.content, answers, embedded_data)
        if not include_required:
            problems = [p for p in problems if p.code != "required"]
        return problems

    def visible_answers(self, answers: Any) -> dict[str, Any]:
        """`visible_answers(content, answers)`."""
        if type(answers) is not dict:
            return visible_answers(self.content, answers)
        kept: dict[str, Any] = {}
        if self._has_logic:
            visibility = _visibility(self.content, answers)
            keys: Iterable[str] = (
                k for qid, own in self._own_keys if visibility.get(qid) for k in own
            )
        else:
            keys = self._all_own_keys
        for key in keys:
            value = answers.get(key)
            if _answered(value):
                kept[key] = value
        return kept

    def _plainly_valid(self, answers: Any, embedded_data: Any, include_required: bool) -> bool:
        if answers is None:
            answers = {}
        elif type(answers) is not dict or not answers.keys() <= self._known_keys:
            return False
        if embedded_data is not None and not self._plain_embedded_data(embedded_data):
            return False
        if self._has_logic:
            visibility = _visibility(self.content, answers)
            return all(
                test(answers, include_required) for qid, test in self._tests if visibility.get(qid)
            )
        return all(test(answers, include_required) for _, test in self._tests)

    def _plain_embedded_data(self, embedded_data: Any) -> bool:
        if type(embedded_data) is not dict or not embedded_data.keys() <= self._embedded_names:
            return False
        for value in embedded_data.values():
            kind = type(value)
            if kind is str:
                if len(value) > MAX_TEXT_LENGTH:
                    return False
            elif value is not None and kind is not int and kind is not float and kind is not bool:
                return False
        return True


def _answered(value: Any) -> bool:
    """`not is_empty(value)`, in less time for the usual answers (text, numbers, None)."""
    kind = type(value)
    if kind is str:
        return bool(value) and not value.isspace()  # what `not value.strip()` tells, no copy
    if kind is int or kind is float or kind is bool:
        return True
    return value is not None and not is_empty(value)


def _is_known_key(by_qid: Mapping[str, Question], key: str) -> bool:
    """Whether `_Checker._check_keys` accepts this answer key."""
    parsed = parse_answer_key(key)
    question = by_qid.get(parsed[0]) if parsed else None
    if question is None or parsed is None:
        return False
    return parsed[1] is None or parsed[1] in text_box_ids(question)


def _question_test(question: Question) -> _QuestionTest:
    """The quick test of one (shown) question: True only if `_Checker._check_question` would
    find nothing wrong with its answer and text boxes."""
    qid = question.qid
    if isinstance(question, DescriptiveQuestion):
        return lambda answers, include_required: not _answered(answers.get(qid))
    value_ok = _value_test(question)
    required = question.required
    boxes = tuple((box_id, text_key(qid, box_id)) for box_id in text_box_ids(question))

    def test(answers: Mapping[Any, Any], include_required: bool) -> bool:
        value = answers.get(qid)
        answered = _answered(value)
        if answered:
            if not value_ok(value, include_required):
                return False
        elif required and include_required:
            return False
        for box_id, key in boxes:
            text = answers.get(key)
            if not _answered(text):
                continue
            # Text in a box: fine when it is text of a sane length for an answered choice/row.
            if type(text) is not str or len(text) > MAX_TEXT_LENGTH or not answered:
                return False
            if not _is_selected(question, value, box_id):
                return False
        return True

    return test


def _value_test(question: Question) -> Callable[[Any, bool], bool]:
    """Whether a non-empty answer is plainly valid for this question (True: certainly)."""
    if isinstance(question, ScaleQuestion):
        low, high = question.bounds
        return lambda value, _: type(value) is int and low <= value <= high
    if isinstance(question, SingleChoiceQuestion):
        choice_ids = frozenset(c.id for c in question.choices)
        return lambda value, _: type(value) is str and value in choice_ids
    if isinstance(question, MultipleChoiceQuestion):
        return _multiple_choice_test(question)
    if isinstance(question, TextEntryQuestion):
        validation = question.validation

        def text_ok(value: Any, _: bool) -> bool:
            if type(value) is not str or len(value) > MAX_TEXT_LENGTH:
                return False
            if validation == "email":
                return email_problem(value) is None
            return validation != "number" or is_number_text(value)

        return text_ok
    if isinstance(question, MatrixQuestion):
        return _matrix_test(question)
    return lambda value, _: False


def _multiple_choice_test(question: MultipleChoiceQuestion) -> Callable[[Any, bool], bool]:
    choice_ids = frozenset(c.id for c in question.choices)
    exclusive = frozenset(c.id for c in question.choices if c.exclusive)

    def test(value: Any, _: bool) -> bool:
        if type(value) is not list:
            return False
        for choice_id in value:
            if type(choice_id) is not str or choice_id not in choice_ids:
                return False
        # Several choices: each once, and none of them one that must stand alone.
        return len(value) < 2 or (len(set(value)) == len(value) and exclusive.isdisjoint(value))

    return test


def _matrix_test(question: MatrixQuestion) -> Callable[[Any, bool], bool]:
    row_ids = frozenset(r.id for r in question.rows)
    all_rows = tuple(r.id for r in question.rows)
    points = frozenset(s.id for s in question.scale)
    multiple = question.multiple_answers
    required = question.required

    def test(value: Any, include_required: bool) -> bool:
        if type(value) is not dict:
            return False
        for row_id, chosen in value.items():
            if type(row_id) is not str or row_id not in row_ids:
                return False
            if not _answered(chosen):
                continue
            if multiple:
                if type(chosen) is not list:
                    return False
                if not all(type(p) is str and p in points for p in chosen):
                    return False
                if len(set(chosen)) != len(chosen):
                    return False
            elif type(chosen) is not str or chosen not in points:
                return False
        if required and include_required:
            return all(_answered(value.get(row_id)) for row_id in all_rows)
        return True

    return test


class _Checker:
    def __init__(self, content: SurveyContent) -> None:
        self.content = content
        self.by_qid = content.questions_by_qid()
        self.problems: list[AnswerProblem] = []

    def add(self, qid: str | None, code: str, message: str, field: str | None = None) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(AnswerProblem(qid, code, message, field))
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append(
                AnswerProblem(
                    None,
                    "too_many_problems",
                    f"There are more problems; only the first {MAX_PROBLEMS} are listed.",
                )
            )

    def check(self, answers: Any, embedded_data: Any, page: int | None) -> list[AnswerProblem]:
        if not isinstance(answers, Mapping):
            if answers is not None:
                self.add(
                    None,
                    "wrong_type",
                    "The answers must be an object keyed by question ID (QID1, QID2, ...).",
                )
            answers = {}
        visibility = _visibility(self.content, answers)
        if page is None:
            self._check_keys(answers)
        for question in self.content.questions:
            if page is not None and question.page != page:
                continue
            if visibility.get(question.qid):
                self._check_question(question, answers)
        if page is None and embedded_data is not None:
            self._check_embedded_data(embedded_data)
        return self.problems

    def _check_keys(self, answers: Mapping[Any, Any]) -> None:
        for key in answers:
            parsed = parse_answer_key(key)
            question = self.by_qid.get(parsed[0]) if parsed else None
            if question is None:
                self.add(
                    None,
                    "unknown_question",
                    f"{_quote(key)} is not a question in this survey.",
                )
            elif parsed and parsed[1] is not None and parsed[1] not in text_box_ids(question):
                self.add(
                    question.qid,
                    "text_not_allowed",
                    f"{_quote(parsed[1])} has no text box in this question.",
                )

    def _check_question(self, question: Question, answers: Mapping[Any, Any]) -> None:
        qid = question.qid
        value = answers.get(qid)
        if isinstance(question, DescriptiveQuestion):
            if not is_empty(value):
                self.add(qid, "not_answerable", "This is descriptive text; it takes no answer.")
            return
        self._check_text_boxes(question, answers)
        if is_empty(value):
            if question.required:
                self.add(qid, "required", "This question needs an answer.")
            return
        if isinstance(question, ScaleQuestion):
            self._check_number(qid, value, *question.bounds)
        elif isinstance(question, SingleChoiceQuestion):
            self._check_single(question, value)
        elif isinstance(question, MultipleChoiceQuestion):
            self._check_multiple(question, value)
        elif isinstance(question, TextEntryQuestion):
            self._check_text_entry(question, value)
        elif isinstance(question, MatrixQuestion):
            self._check_matrix(question, value)

    def _check_number(self, qid: str, value: Any, low: int, high: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.add(qid, "wrong_type", f"The answer must be a whole number from {low} to {high}.")
        elif not low <= value <= high:
            self.add(
                qid,
                "out_of_range",
                f"Choose a number from {low} to {high}; {_short_number(value)} is outside that "
                "range.",
            )

    def _check_single(self, question: SingleChoiceQuestion, value: Any) -> None:
        if not isinstance(value, str):
            self.add(question.qid, "wrong_type", "The answer must be one choice id, as text.")
        elif question.choice(value) is None:
            self.add(
                question.qid,
                "unknown_choice",
                f"{_quote(value)} is not one of this question's choices.",
            )

    def _check_multiple(self, question: MultipleChoiceQuestion, value: Any) -> None:
        qid = question.qid
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(qid, "wrong_type", "The answer must be a list of choice ids, as text.")
            return
        seen: set[str] = set()
        for choice_id in value:
            if choice_id in seen:
                self.add(qid, "duplicate_choice", f"Choice {_quote(choice_id)} is given twice.")
            elif question.choice(choice_id) is None:
                self.add(
                    qid,
                    "unknown_choice",
                    f"{_quote(choice_id)} is not one of this question's choices.",
                )
            seen.add(choice_id)
            if len(seen) > len(question.choices) + 1:
                break  # the rest of a huge hostile list adds nothing
        if len(seen) > 1:
            for choice in question.choices:
                if choice.exclusive and choice.id in seen:
                    self.add(
                        qid,
                        "exclusive_choice",
                        f"{_quote(choice.plain_text() or choice.id)} cannot be combined with "
                        "other choices.",
                    )

    def _check_text_entry(self, question: TextEntryQuestion, value: Any) -> None:
        qid = question.qid
        if not isinstance(value, str):
            self.add(qid, "wrong_type", "The answer must be text.")
            return
        if self._check_length(qid, value):
            return
        if question.validation == "email":
            problem = email_problem(value)
            if problem:
                self.add(qid, "invalid_email", problem)
        elif question.validation == "number" and not is_number_text(value):
            self.add(qid, "invalid_number", "Enter a number, such as 42 or 3.5.")

    def _check_matrix(self, question: MatrixQuestion, value: Any) -> None:
        qid = question.qid
        if not isinstance(value, Mapping):
            shape = "a list of scale point ids" if question.multiple_answers else "a scale point id"
            self.add(qid, "wrong_type", f"The answer must map each row id to {shape}.")
            return
        for row_id, chosen in value.items():
            if not isinstance(row_id, str) or question.row(row_id) is None:
                self.add(qid, "unknown_row", f"This matrix has no row {_quote(row_id)}.")
                continue
            if is_empty(chosen):
                continue
            if question.multiple_answers:
                if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
                    self.add(
                        qid,
                        "wrong_type",
                        f"Row {_quote(row_id)} must be answered with a list of scale point ids.",
                    )
                    continue
                if len(set(chosen)) != len(chosen):
                    self.add(
                        qid,
                        "duplicate_choice",
                        f"Row {_quote(row_id)} gives the same scale point twice.",
                    )
                points = list(dict.fromkeys(chosen))[: len(question.scale) + 1]
            elif isinstance(chosen, str):
                points = [chosen]
            else:
                self.add(
                    qid,
                    "wrong_type",
                    f"Row {_quote(row_id)} must be answered with one scale point id, as text.",
                )
                continue
            for point in points:
                if question.scale_point(point) is None:
                    self.add(
                        qid,
                        "unknown_scale_point",
                        f"{_quote(point)} is not a point on this matrix's scale "
                        f"(row {_quote(row_id)}).",
                    )
        if question.required:
            missing = [r.id for r in question.rows if is_empty(value.get(r.id))]
            if missing:
                self.add(
                    qid,
                    "required",
                    "Every row needs an answer; missing: "
                    + ", ".join(_quote(r) for r in missing[:10])
                    + ("..." if len(missing) > 10 else "")
                    + ".",
                )

    def _check_text_boxes(self, question: Question, answers: Mapping[Any, Any]) -> None:
        value = clean_value(question, answers.get(question.qid))
        for box_id in text_box_ids(question):
            text = answers.get(text_key(question.qid, box_id))
            if is_empty(text):
                continue
            if not isinstance(text, str):
                self.add(
                    question.qid,
                    "wrong_type",
                    f"The text for {_quote(box_id)} must be text.",
                )
                continue
            if self._check_length(question.qid, text):
                continue
            if not _is_selected(question, value, box_id):
                what = "row" if isinstance(question, MatrixQuestion) else "choice"
                self.add(
                    question.qid,
                    "text_without_choice",
                    f"Text was given for {what} {_quote(box_id)}, but it is not answered.",
                )

    def _check_length(self, qid: str | None, text: str, field: str | None = None) -> bool:
        if len(text) > MAX_TEXT_LENGTH:
            self.add(
                qid,
                "too_long",
                f"The text is {len(text):,} characters long; the limit is {MAX_TEXT_LENGTH:,}.",
                field,
            )
            return True
        return False

    def _check_embedded_data(self, embedded_data: Any) -> None:
        if not isinstance(embedded_data, Mapping):
            self.add(
                None,
                "wrong_type",
                "Embedded data must be an object mapping field names to values.",
            )
            return
        # What the survey flow stores (randomizer assignments...) counts as declared.
        declared = {f.name for f in self.content.embedded_data} | set(
            self.content.flow_data_names()
        )
        for name, value in embedded_data.items():
            if not isinstance(name, str) or name not in declared:
                self.add(
                    None,
                    "unknown_embedded_data",
                    f"{_quote(name)} is not an embedded data field of this survey.",
                    name if isinstance(name, str) else None,
                )
                continue
            if value is None or isinstance(value, bool | int | float):
                continue
            if not isinstance(value, str):
                self.add(
                    None,
                    "wrong_type",
                    "Embedded data values must be text, numbers or true/false.",
                    name,
                )
                continue
            self._check_length(None, value, name)


def _is_selected(question: Question, value: Any, box_id: str) -> bool:
    if isinstance(question, SingleChoiceQuestion):
        return value == box_id
    if isinstance(question, MultipleChoiceQuestion):
        return isinstance(value, list) and box_id in value
    if isinstance(question, MatrixQuestion):
        return isinstance(value, dict) and not is_empty(value.get(box_id))
    return False


def email_problem(text: str) -> str | None:
    """Why ``text`` is not a usable email address, in words; None when it is one."""
    candidate = text.strip()
    if not candidate or len(candidate) > 320:
        return "Enter an email address, such as name@example.com."
    try:
        # Syntax only: the domain layer does no I/O, so no DNS lookup of the domain.
        validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"{_quote(candidate)} is not a valid email address: {exc}"
    except Exception:  # the library is third-party; a hostile string must not crash validation
        return f"{_quote(candidate)} is not a valid email address."
    return None


def is_number_text(text: str) -> bool:
    """Whether text is a plain number: ``42``, ``-3.5``, ``1e3`` (no thousands separators)."""
    candidate = text.strip()
    return len(candidate) <= 100 and _NUMBER_RE.fullmatch(candidate) is not None


def _mapping(answers: Any) -> Mapping[str, Any]:
    return answers if isinstance(answers, Mapping) else {}


def _quote(value: Any, limit: int = 40) -> str:
    return f"'{short_value(value, limit)}'"


def _short_number(value: int) -> str:
    text = str(value) if abs(value) < 10**30 else "that number"
    return text
