"""Import survey content from the reference product's QSF export files.

``import_qsf(data)`` takes the file's text or bytes (already read: no I/O here) and returns the
survey content plus an ``ImportReport``: how many questions of each type were imported, every
element that was skipped and why, and warnings about what was simplified on the way.

What maps to what:

* ``MC`` single answer (``SAVR``, ``SAHR``, ``SACOL``, ``DL``, ``SB``) → ``single_choice``;
  multiple answer (``MAVR``, ``MAHR``, ``MACOL``, ``MSB``) → ``multiple_choice``; ``NPS`` →
  ``nps``. Choice ids, texts, recodes (``RecodeValues``; the id when there is none), "other"
  text boxes (``TextEntry``) and exclusive answers are kept.
* ``Matrix`` ``Likert`` (``SingleAnswer``, ``MultipleAnswer``, ``DL``, ``DND``) → ``matrix``:
  rows are ``Choices``, scale points are ``Answers`` with their recodes.
* ``TE`` ``SL`` (and ``PW``) → single-line ``text_entry``; ``ML`` and ``ESTB`` → multi-line;
  ``ContentType`` validation ``ValidEmail`` / ``ValidNumber`` → ``email`` / ``number``.
* ``Slider`` with a single slider → ``rating`` shown as a slider (``display: slider``) with its
  ``Labels`` and choice id (its range must be 0 or 1 to at most 100).
* ``DB`` (``TB``, ``GRB``) → ``descriptive``.
* Pages: every block starts a page, and so does every page break inside a block. Blocks come in
  survey-flow order; trashed questions and blocks outside the flow are skipped.
* Embedded data fields declared anywhere in the flow, with their "set a value now" default.
  A field the file marks as set "from Panel or URL" (type ``Recipient``, no value) takes values
  from the link's query string, as in the reference product (source ``query``); every other
  field gets cxloop's default source, ``personal_link``. The report names the ``query`` ones.
* Display logic on questions built from "is selected / not selected" and value comparisons of
  questions on earlier pages. Other logic is not imported and the report says so: the question
  is then always shown.

* The survey flow (``FL``): blocks, branches (question and embedded data conditions),
  randomizers (``SubSet``, ``EvenPresentation``), embedded data values, end-of-survey elements
  (redirect, screen-out), groups (flattened) → ``flow`` and each question's ``block``, kept when
  the flow does more than show the blocks in order.
* Survey options (``SO``): back button, progress bar, title, end redirect → ``options``.
* ``DataExportTag`` → ``export_tag``; a text entry's ``DefaultChoices`` → ``default``; a long
  question text made of paragraphs → a descriptive item above the question.

The report lists first what changes the survey's behaviour (``behaviour_changes``).
Everything else (side by side, constant sum, rank order, timing, meta info, forms, carried
forward choices, web services, device or location conditions, quotas, scoring...) is reported
and left out. The
importer never crashes on a bad file: anything it cannot read is a ``QsfImportError`` with a
message, or an entry in the report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import unquote

from pydantic import ValidationError

from cxloop.domain.survey_content import (
    FIELD_NAME_PATTERN,
    ID_RE,
    MAX_CHOICE_TEXT,
    MAX_CHOICES,
    MAX_QUESTIONS,
    MAX_SCALE_POINTS,
    MAX_TEXT,
    QID_RE,
    QUESTION_ADAPTER,
    SurveyContent,
    SurveyContentError,
    check_document,
    plain_text,
    problems_from_validation,
)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_MAX_FLOW_DEPTH = 64
_FIELD_NAME_RE = re.compile(FIELD_NAME_PATTERN)

_SINGLE_SELECTORS = MappingProxyType(
    {
        "SAVR": "vertical",
        "SAHR": "horizontal",
        "SACOL": "vertical",
        "DL": "dropdown",
        "SB": "dropdown",
    }
)
_MULTIPLE_SELECTORS = MappingProxyType(
    {
        "MAVR": "vertical",
        "MAHR": "horizontal",
        "MACOL": "vertical",
        "MSB": "vertical",
    }
)
_UNSUPPORTED_TYPES = MappingProxyType(
    {
        "SBS": "side-by-side questions",
        "CS": "constant sum questions",
        "RO": "rank order questions",
        "PGR": "pick, group and rank questions",
        "Timing": "timing questions",
        "Meta": "browser meta info questions",
        "Captcha": "captcha questions",
        "HeatMap": "heat map questions",
        "HotSpot": "hot spot questions",
        "Draw": "signature questions",
        "FileUpload": "file upload questions",
        "DD": "drill down questions",
        "HL": "highlight questions",
        "SS": "graphic slider questions",
        "GAP": "gap analysis questions",
    }
)
# Elements that describe the export or the account, not the survey's content.
_QUIET_ELEMENTS = frozenset({"BL", "FL", "SQ", "SO", "QC", "RS", "PROJ", "STAT", "PL", "BR", "SCO"})
_ELEMENT_NAMES = MappingProxyType({"QG": "quotas", "QGO": "quota order", "NT": "notes"})

_LOGIC_OPERATORS = MappingProxyType(
    {
        "EqualTo": "equals",
        "NotEqualTo": "not_equals",
        "GreaterThan": "greater_than",
        "GreaterThanOrEqual": "greater_or_equal",
        "LessThan": "less_than",
        "LessThanOrEqual": "less_or_equal",
        "Contains": "contains",
        "DoesNotContain": "not_contains",
        "Empty": "is_empty",
        "NotEmpty": "is_not_empty",
    }
)
_NUMERIC_OPERATORS = frozenset({"greater_than", "greater_or_equal", "less_than", "less_or_equal"})
_INT_RE = re.compile(r"[+-]?\d{1,16}")
_MAX_SAFE_INT = 2**53  # larger whole numbers do not survive a trip through JavaScript
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d{1,3})?")


class QsfImportError(ValueError):
    """The file cannot be imported at all; the message says why, in words."""


@dataclass(frozen=True)
class SkippedElement:
    """Something in the file that was left out: which element, what kind, and why."""

    element: str  # "QID12", "flow FL_4", "element QG"
    kind: str  # "TE/FORM", "Branch", ...
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did: counts per imported question type, skipped elements, warnings."""

    survey_name: str
    source_survey_id: str
    imported: dict[str, int]
    skipped: list[SkippedElement]
    warnings: list[str]
    embedded_data_fields: int = 0
    pages: int = 0
    # Fields that accept values from the link's query string (source `query`).
    embedded_data_from_link: list[str] = field(default_factory=list)
    # What makes the survey behave differently from the original, most serious first: dropped
    # JavaScript, images, questions and flow elements left out, logic not imported.
    behaviour_changes: list[str] = field(default_factory=list)

    @property
    def imported_total(self) -> int:
        """How many questions were imported."""
        return sum(self.imported.values())


class QsfImport(NamedTuple):
    """The imported survey content and the report of the import."""

    content: SurveyContent
    report: ImportReport


def import_qsf(data: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> QsfImport:
    """Import a QSF export (its text or bytes); raises ``QsfImportError`` for an unusable file."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > max_bytes:
            raise QsfImportError(_too_big(len(raw), max_bytes))
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise QsfImportError(
                f"the file is not UTF-8 text (byte {exc.start} cannot be read); export the "
                "survey again as a QSF file"
            ) from None
    elif isinstance(data, str):
        # Characters never outnumber UTF-8 bytes, so the cheap check comes first.
        if len(data) > max_bytes or len(data.encode("utf-8", "surrogatepass")) > max_bytes:
            raise QsfImportError(_too_big(len(data.encode("utf-8", "surrogatepass")), max_bytes))
        text = data.removeprefix("\ufeff")
    else:
        raise QsfImportError("give the file's contents as text or bytes")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QsfImportError(
            f"the file is not JSON, so not a QSF export (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg})"
        ) from None
    except (RecursionError, ValueError) as exc:
        raise QsfImportError(f"the file is not JSON that can be read: {exc}") from None
    try:
        return _Importer(document).run()
    except QsfImportError:
        raise
    except Exception as exc:
        # Every shape problem we know of becomes a skip or a warning; this is the net for the
        # ones we do not, so a hostile upload gets an answer instead of a server error.
        raise QsfImportError(
            f"the file has a structure this importer cannot read ({type(exc).__name__}); "
            "please report it with the file"
        ) from exc


def _too_big(size: int, limit: int) -> str:
    return (
        f"the file is {size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.1f} MB "
        f"({limit:,} bytes)"
    )


# -- the importer -----------------------------------------------------------------------------


@dataclass
class _Placed:
    qid: str
    page: int
    payload: dict[str, Any]
    question: dict[str, Any] | None = None  # the cxloop question document, once mapped
    block: str = ""  # the QSF block id


@dataclass
class _Importer:
    document: Any
    skipped: list[SkippedElement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def run(self) -> QsfImport:
        if not isinstance(self.document, dict):
            raise QsfImportError("the file is JSON but not a QSF export: expected an object")
        elements = self.document.get("SurveyElements")
        if not isinstance(elements, list):
            raise QsfImportError(
                "the file is JSON but not a QSF export: it has no SurveyElements list"
            )
        entry = self.document.get("SurveyEntry")
        entry = entry if isinstance(entry, dict) else {}
        survey_name = _text(entry.get("SurveyName"))
        survey_id = _text(entry.get("SurveyID"))

        blocks, flows, questions = self._collect(elements)
        self._note_survey_wide(questions)
        block_order = self._block_order(blocks, flows)
        embedded = self._embedded_data(flows)
        placed = self._place(blocks, block_order, questions)
        mapped = [p for p in placed if self._map(p)]
        self._map_display_logic(mapped)
        mapped = self._split_long_texts(mapped, questions)
        self._renumber_pages(mapped)

        imported: dict[str, int] = {}
        for item in mapped:
            assert item.question is not None
            imported[item.question["type"]] = imported.get(item.question["type"], 0) + 1
        document: dict[str, Any] = {
            "format_version": 1,
            "embedded_data": embedded,
            "questions": [item.question for item in mapped],
        }
        flow = _FlowMapper(self, mapped, embedded).flow(flows)
        if flow is not None:
            # Only a flow that does more than show the blocks in order is kept (with the blocks).
            for item in mapped:
                assert item.question is not None
                item.question["block"] = _block_id(item.block)
            document["flow"] = flow
        options = self._options(elements)
        if options:
            document["options"] = options
        self._drop_inconsistent_display_logic(document)
        try:
            content = SurveyContent.from_document(document)
        except SurveyContentError as exc:
            raise QsfImportError(f"the imported survey is not consistent: {exc}") from None
        report = ImportReport(
            behaviour_changes=self._behaviour_changes(questions, mapped),
            survey_name=survey_name,
            source_survey_id=survey_id,
            imported=imported,
            skipped=self.skipped,
            warnings=self.warnings,
            embedded_data_fields=len(embedded),
            pages=len(content.page_numbers()),
            embedded_data_from_link=[f["name"] for f in embedded if f.get("source") == "query"],
        )
        return QsfImport(content, report)

    # -- elements --------------------------------------------------------------------------

    def _collect(
        self, elements: list[Any]
    ) -> tuple[list[dict[str, Any]], list[Any], dict[str, dict[str, Any]]]:
        blocks: list[dict[str, Any]] = []
        flows: list[Any] = []
        questions: dict[str, dict[str, Any]] = {}
        for index, element in enumerate(elements):
            if not isinstance(element, dict):
                self.warnings.append(f"survey element #{index} is not an object; it was ignored")
                continue
            kind = _text(element.get("Element"))
            payload = element.get("Payload")
            if kind == "BL":
                for block in _values(payload):
                    if isinstance(block, dict):
                        blocks.append(block)
            elif kind == "FL":
                if isinstance(payload, dict):
                    flows.append(payload)
                else:
                    self.warnings.append("the survey flow cannot be read; it was ignored")
            elif kind == "SQ":
                if not isinstance(payload, dict):
                    name = _text(element.get("PrimaryAttribute")) or f"#{index}"
                    self._skip(name, "SQ", "the question has no readable content")
                    continue
                qid = _text(payload.get("QuestionID")) or _text(element.get("PrimaryAttribute"))
                if qid in questions:
                    self._skip(qid, _kind(payload), f"{qid} appears twice; the first was kept")
                else:
                    questions[qid] = payload
            elif kind == "SCO":
                if isinstance(payload, dict) and payload.get("ScoringCategories"):
                    self._skip("element SCO", "SCO", "scoring is not imported")
            elif kind not in _QUIET_ELEMENTS:
                name = _ELEMENT_NAMES.get(_text(kind))
                self._skip(
                    f"element {_text(kind) or '?'}",
                    _text(kind),
                    f"this element ({name}) is not imported" if name else "not imported",
                )
        return blocks, flows, questions

    def _note_survey_wide(self, questions: dict[str, dict[str, Any]]) -> None:
        languages = sorted(
            {
                _text(code)
                for payload in questions.values()
                if isinstance(payload.get("Language"), dict)
                for code in payload["Language"]
            }
            - {""}
        )
        if languages:
            self.warnings.append(
                f"translations ({', '.join(languages[:10])}) are not imported; only the survey's "
                "own language is"
            )
        with_skip_logic = [qid for qid, p in questions.items() if p.get("SkipLogic")]
        if with_skip_logic:
            self.warnings.append(
                "skip logic is not imported (on "
                + ", ".join(with_skip_logic[:10])
                + ("..." if len(with_skip_logic) > 10 else "")
                + "); respondents go through every page in order"
            )

    def _block_order(self, blocks: list[dict[str, Any]], flows: list[Any]) -> list[str]:
        known = {_text(b.get("ID")): b for b in blocks}
        if not flows:
            self.warnings.append("the file has no survey flow; blocks are taken in listed order")
            return [_text(b.get("ID")) for b in blocks if b.get("Type") != "Trash"]
        order: list[str] = []
        for flow in flows:
            for node in self._walk_flow(flow, depth=0):
                node_type = _text(node.get("Type"))
                if node_type in ("Block", "Standard"):
                    block_id = _text(node.get("ID"))
                    if block_id not in known:
                        self.warnings.append(
                            f"the survey flow shows block {block_id or '?'}, which the file "
                            "does not have; it was ignored"
                        )
                    elif block_id not in order:
                        order.append(block_id)
        for block_id, block in known.items():
            if block.get("Type") != "Trash" and block_id not in order:
                description = _text(block.get("Description"))
                self._skip(
                    f"block {block_id}",
                    "Block",
                    f"block '{description}' is not in the survey flow, so it is never shown",
                )
        return order

    def _walk_flow(self, node: Any, depth: int, report: bool = True) -> Iterator[dict[str, Any]]:
        if not isinstance(node, dict):
            return
        if depth > _MAX_FLOW_DEPTH:
            if report:
                self.warnings.append(
                    "the survey flow is nested too deeply; the deepest part was ignored"
                )
            return
        yield node
        children = node.get("Flow")
        if isinstance(children, list):
            for child in children:
                yield from self._walk_flow(child, depth + 1, report)

    def _embedded_data(self, flows: list[Any]) -> list[dict[str, Any]]:
        fields: dict[str, dict[str, Any]] = {}
        for flow in flows:
            # report=False: _block_order already reported the flow's skipped elements.
            for node in self._walk_flow(flow, depth=0, report=False):
                if node.get("Type") != "EmbeddedData":
                    continue
                for item in _values(node.get("EmbeddedData")):
                    self._embedded_field(item, fields)
        return list(fields.values())

    def _embedded_field(self, item: Any, fields: dict[str, dict[str, Any]]) -> None:
        if not isinstance(item, dict):
            return
        name = _text(item.get("Field"))
        if not name:
            return
        if not _FIELD_NAME_RE.match(name):
            self.warnings.append(
                f"embedded data field '{name[:60]}' has characters cxloop cannot use in a field "
                "name; it was not imported"
            )
            return
        default: str | None = None
        value = item.get("Value")
        if (
            item.get("Type") == "Custom"
            and isinstance(value, str | int | float)
            and not isinstance(value, bool)
        ):
            default = str(value)
            if "${" in default:
                default = None  # computed when the flow passes (an embedded data element)
            elif len(default) > MAX_TEXT:
                self.warnings.append(f"embedded data field '{name}': its value is too long")
                default = None
        if name in fields:
            if fields[name].get("default") != default and default is not None:
                self.warnings.append(
                    f"embedded data field '{name}' is set in several places; the first value "
                    "was kept"
                )
            return
        declared: dict[str, Any] = {"name": name}
        if default is not None:
            declared["default"] = default
        elif item.get("Type") == "Recipient":
            # "Will be set from Panel or URL": anyone may set it from the link. A field that
            # drives a Salesforce write should be switched to personal_link after the import.
            declared["source"] = "query"
        description = _text(item.get("Description"))
        if description and description != name:
            declared["description"] = description[:1_000]
        fields[name] = declared

    # -- blocks and pages ------------------------------------------------------------------

    def _place(
        self,
        blocks: list[dict[str, Any]],
        order: list[str],
        questions: dict[str, dict[str, Any]],
    ) -> list[_Placed]:
        by_id = {_text(b.get("ID")): b for b in blocks}
        placed: list[_Placed] = []
        seen: set[str] = set()
        page = 0
        for block_id in order:
            page += 1
            for item in _values(by_id[block_id].get("BlockElements")):
                if not isinstance(item, dict):
                    continue
                if item.get("Type") == "Page Break":
                    page += 1
                    continue
                if item.get("Type") != "Question":
                    continue
                qid = _text(item.get("QuestionID"))
                if qid in seen:
                    self.warnings.append(f"{qid} is in more than one block; it was kept once")
                    continue
                payload = questions.get(qid)
                if payload is None:
                    self.warnings.append(
                        f"block {block_id} lists {qid or 'a question'}, which the file does not "
                        "have"
                    )
                    continue
                seen.add(qid)
                placed.append(_Placed(qid, page, payload, block=block_id))
        trash = {
            _text(element.get("QuestionID"))
            for block in blocks
            if block.get("Type") == "Trash"
            for element in _values(block.get("BlockElements"))
            if isinstance(element, dict)
        }
        for qid, payload in questions.items():
            if qid in seen:
                continue
            if qid in trash:
                self._skip(qid, _kind(payload), "the question is in the trash")
            else:
                self._skip(qid, _kind(payload), "the question is not in any block of the flow")
        if len(placed) > MAX_QUESTIONS:
            for extra in placed[MAX_QUESTIONS:]:
                self._skip(
                    extra.qid,
                    _kind(extra.payload),
                    f"a survey holds at most {MAX_QUESTIONS} questions",
                )
            placed = placed[:MAX_QUESTIONS]
        return placed

    @staticmethod
    def _renumber_pages(mapped: list[_Placed]) -> None:
        numbers: dict[int, int] = {}
        for item in mapped:
            numbers.setdefault(item.page, len(numbers) + 1)
        for item in mapped:
            assert item.question is not None
            item.page = numbers[item.page]
            if item.page == 1:
                item.question.pop("page", None)
            else:
                item.question["page"] = item.page

    # -- questions -------------------------------------------------------------------------

    def _map(self, item: _Placed) -> bool:
        if not QID_RE.match(item.qid):
            self._skip(item.qid or "?", _kind(item.payload), "its question ID is not like QID1")
            return False
        try:
            question, reason = self._question(item.qid, item.payload)
        except Exception as exc:
            # One odd question must not sink the whole import.
            question, reason = None, f"it could not be read ({type(exc).__name__})"
        if question is None:
            self._skip(item.qid, _kind(item.payload), reason or "it is not supported")
            return False
        question["page"] = item.page
        try:
            QUESTION_ADAPTER.validate_python(question, strict=True)
        except ValidationError as exc:
            first = problems_from_validation(exc)[0]
            self._skip(item.qid, _kind(item.payload), f"it cannot be used: {first}")
            return False
        item.question = question
        return True

    def _split_long_texts(
        self, mapped: list[_Placed], questions: dict[str, dict[str, Any]]
    ) -> list[_Placed]:
        """A long question text made of paragraphs (a consent form, instructions) is really a
        description: it becomes a descriptive item above the question, whose label is then
        its last paragraph."""
        numbers = [int(q[3:]) for q in questions if QID_RE.match(q)]
        next_number = max(numbers, default=0) + 1
        result: list[_Placed] = []
        for item in mapped:
            question = item.question
            assert question is not None
            split = None
            if question["type"] != "descriptive" and len(plain_text(question["text"])) > 400:
                split = _split_paragraphs(question["text"])
            if split is None or next_number > 999_999_999 or len(mapped) >= MAX_QUESTIONS:
                result.append(item)
                continue
            description, label = split
            new_qid = f"QID{next_number}"
            next_number += 1
            descriptive: dict[str, Any] = {
                "qid": new_qid, "type": "descriptive", "text": description, "page": item.page,
            }  # fmt: skip
            if "show_if" in question:
                descriptive["show_if"] = question["show_if"]
            result.append(_Placed(new_qid, item.page, {}, descriptive, item.block))
            question["text"] = label
            self.warnings.append(
                f"{item.qid}: its long text is shown as text above it ({new_qid}); the "
                "question is labelled with its last paragraph"
            )
            result.append(item)
        return result

    def _question(self, qid: str, payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        question_type = _text(payload.get("QuestionType"))
        selector = _text(payload.get("Selector"))
        sub_selector = _text(payload.get("SubSelector"))
        text = payload.get("QuestionText")
        base: dict[str, Any] = {"qid": qid, "text": text if isinstance(text, str) else ""}
        if len(base["text"]) > MAX_TEXT:
            return None, f"its text is longer than {MAX_TEXT:,} characters"
        if question_type != "DB" and _is_required(payload, qid, self.warnings):
            base["required"] = True
        tag = re.sub(r'[\x00-\x1f\x7f,"]', "_", _text(payload.get("DataExportTag")))[:100]
        if tag:
            base["export_tag"] = tag  # names the question's columns in response exports

        if question_type == "MC":
            return self._multiple_choice(base, payload, selector)
        if question_type == "Matrix":
            return self._matrix(base, payload, selector, sub_selector)
        if question_type == "TE":
            return self._text_entry(base, payload, selector)
        if question_type == "Slider":
            return self._slider(base, payload)
        if question_type == "DB":
            if selector not in ("TB", "GRB"):
                return None, f"descriptive '{selector}' elements are not supported"
            if selector == "GRB":
                self.warnings.append(f"{qid}: the graphic is not imported, only the text")
            base.pop("required", None)
            return {**base, "type": "descriptive"}, ""
        what = _UNSUPPORTED_TYPES.get(question_type, f"'{question_type}' questions")
        return None, f"{what} are not supported"

    def _multiple_choice(
        self, base: dict[str, Any], payload: dict[str, Any], selector: str
    ) -> tuple[dict[str, Any] | None, str]:
        qid = base["qid"]
        if selector == "NPS":
            recodes = payload.get("RecodeValues")
            if isinstance(recodes, dict) and any(str(k) != str(v) for k, v in recodes.items()):
                self.warnings.append(f"{qid}: NPS recodes are not imported; answers are 0-10")
            return {**base, "type": "nps"}, ""
        if selector in _SINGLE_SELECTORS:
            kind, layout = "single_choice", _SINGLE_SELECTORS[selector]
        elif selector in _MULTIPLE_SELECTORS:
            kind, layout = "multiple_choice", _MULTIPLE_SELECTORS[selector]
        else:
            return None, f"multiple choice with the '{selector}' selector is not supported"
        carried = _carried_forward(payload)
        if carried:
            return None, carried
        choices, reason = self._choices(
            qid, payload, "Choices", "ChoiceOrder", "RecodeValues", "choice"
        )
        if choices is None:
            return None, reason
        if not choices:
            return None, "it has no choices"
        for choice in choices:
            if kind == "multiple_choice" and choice.pop("_exclusive", False):
                choice["exclusive"] = True
            choice.pop("_exclusive", None)
        question = {**base, "type": kind, "choices": choices}
        if layout != "vertical":
            question["layout"] = layout
        return question, ""

    def _matrix(
        self, base: dict[str, Any], payload: dict[str, Any], selector: str, sub_selector: str
    ) -> tuple[dict[str, Any] | None, str]:
        qid = base["qid"]
        if selector != "Likert":
            names = {
                "Bipolar": "bipolar",
                "TE": "text entry",
                "MaxDiff": "MaxDiff",
                "CS": "constant sum",
            }
            return None, f"{names.get(selector, repr(selector))} matrix tables are not supported"
        if sub_selector not in ("SingleAnswer", "MultipleAnswer", "DL", "DND"):
            return None, f"Likert matrix tables of the '{sub_selector}' kind are not supported"
        carried = _carried_forward(payload)
        if carried:
            return None, carried
        if sub_selector == "DND":
            self.warnings.append(f"{qid}: drag-and-drop matrix imported as an ordinary matrix")
        if sub_selector == "DL":
            self.warnings.append(f"{qid}: dropdown matrix imported as an ordinary matrix")
        rows, reason = self._choices(qid, payload, "Choices", "ChoiceOrder", None, "row")
        if rows is None:
            return None, reason
        scale, reason = self._choices(
            qid, payload, "Answers", "AnswerOrder", "RecodeValues", "scale point"
        )
        if scale is None:
            return None, reason
        if not rows or not scale:
            return None, "it has no rows or no scale points"
        if len(scale) > MAX_SCALE_POINTS:
            return None, f"it has more than {MAX_SCALE_POINTS} scale points"
        for row in rows:
            row.pop("recode", None)
            row.pop("_exclusive", None)
        for point in scale:
            point.pop("allow_text_entry", None)
            point.pop("_exclusive", None)
        question = {**base, "type": "matrix", "rows": rows, "scale": scale}
        if sub_selector == "MultipleAnswer":
            question["multiple_answers"] = True
        return question, ""

    def _text_entry(
        self, base: dict[str, Any], payload: dict[str, Any], selector: str
    ) -> tuple[dict[str, Any] | None, str]:
        qid = base["qid"]
        if selector == "FORM":
            return None, (
                "form fields (a text box per choice) are not supported; use separate text "
                "entry questions"
            )
        if selector not in ("SL", "ML", "ESTB", "PW"):
            return None, f"text entry with the '{selector}' selector is not supported"
        question: dict[str, Any] = {**base, "type": "text_entry"}
        if selector in ("ML", "ESTB"):
            question["multiline"] = True
        if selector == "PW":
            self.warnings.append(f"{qid}: password box imported as an ordinary text box")
        defaults = payload.get("DefaultChoices")
        if isinstance(defaults, dict):
            # {"TEXT": {"Text": "${e://Field/PROLIFIC_PID}"}}: the text box's prefilled value.
            text = defaults.get("TEXT")
            default = _text(text.get("Text")) if isinstance(text, dict) else ""
            if default and len(default) <= MAX_TEXT:
                question["default"] = default
        settings = _settings(payload)
        validation_type = _text(settings.get("Type"))
        if validation_type == "ContentType":
            content_type = _text(settings.get("ContentType"))
            if content_type == "ValidEmail":
                question["validation"] = "email"
            elif content_type == "ValidNumber":
                question["validation"] = "number"
                limits = settings.get("ValidNumber")
                if isinstance(limits, dict) and any(_text(v) for v in limits.values()):
                    self.warnings.append(
                        f"{qid}: the number's range or decimals are not imported; any number "
                        "is accepted"
                    )
            else:
                self.warnings.append(
                    f"{qid}: '{content_type}' validation is not imported; any text is accepted"
                )
        elif validation_type not in ("", "None"):
            self.warnings.append(
                f"{qid}: '{validation_type}' validation is not imported; any text is accepted"
            )
        return question, ""

    def _slider(
        self, base: dict[str, Any], payload: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str]:
        qid = base["qid"]
        choices, reason = self._choices(qid, payload, "Choices", "ChoiceOrder", None, "slider")
        if choices is None:
            return None, reason
        if len(choices) != 1:
            return None, (
                f"it has {len(choices)} sliders (one per choice); a rating question holds one "
                "number, so make one rating question per slider"
            )
        config = payload.get("Configuration")
        config = config if isinstance(config, dict) else {}
        low, high = _number(config.get("CSSliderMin")), _number(config.get("CSSliderMax"))
        if low is None or high is None:
            return None, "its range (CSSliderMin / CSSliderMax) is missing"
        if low not in (0, 1) or not float(high).is_integer() or not low < high <= 100:
            return None, f"its range {low}-{high} does not fit a rating (0 or 1 up to at most 100)"
        decimals = _number(config.get("NumDecimals"))
        if decimals:
            self.warnings.append(
                f"{qid}: the slider's decimals are dropped; ratings are whole numbers"
            )
        if _text(choices[0].get("text")) and not base["text"]:
            base["text"] = choices[0]["text"]
        question = {
            **base,
            "type": "rating",
            "scale_max": int(high),
            "display": "slider",
            "choice_id": _text(choices[0].get("id")),
        }
        if low == 0:
            question["scale_min"] = 0
        labels = [_text(label.get("Display")) for label in _values(payload.get("Labels"))
                  if isinstance(label, dict)]  # fmt: skip
        if labels:
            question["labels"] = [label[:MAX_CHOICE_TEXT] for label in labels[:11]]
        return question, ""

    def _choices(
        self,
        qid: str,
        payload: dict[str, Any],
        items_key: str,
        order_key: str,
        recode_key: str | None,
        what: str,
    ) -> tuple[list[dict[str, Any]] | None, str]:
        raw = payload.get(items_key)
        if isinstance(raw, list):
            items = {str(index): value for index, value in enumerate(raw)}
        elif isinstance(raw, dict):
            items = {str(key): value for key, value in raw.items()}
        else:
            items = {}
        if len(items) > MAX_CHOICES:
            return None, f"it has more than {MAX_CHOICES} choices"
        order = [
            str(key)
            for key in _values(payload.get(order_key))
            if isinstance(key, str | int) and not isinstance(key, bool)
        ]
        ids = [key for key in dict.fromkeys(order) if key in items]
        ids += sorted((key for key in items if key not in ids), key=_natural)
        recodes = payload.get(recode_key) if recode_key else None
        recodes = {str(k): v for k, v in recodes.items()} if isinstance(recodes, dict) else {}
        result = []
        for item_id in ids:
            if not ID_RE.match(item_id):
                return (
                    None,
                    f"the id '{item_id[:30]}' cannot be used (letters, digits, - and _ only)",
                )
            item = items[item_id] if isinstance(items[item_id], dict) else {}
            display = item.get("Display")
            choice: dict[str, Any] = {
                "id": item_id,
                "text": display if isinstance(display, str) else _text(display),
            }
            if len(choice["text"]) > 5_000:
                return None, f"the text of '{item_id}' is too long"
            recode = self._recode(qid, item_id, recodes, what)
            if recode is not None:
                choice["recode"] = recode
            if _truthy(item.get("TextEntry")):
                choice["allow_text_entry"] = True
            if _truthy(item.get("ExclusiveAnswer")):
                choice["_exclusive"] = True
            if isinstance(item.get("DisplayLogic"), dict):
                self.warnings.append(
                    f"{qid}: display logic on {what} '{item_id}' is not imported; it is always "
                    "shown"
                )
            result.append(choice)
        return result, ""

    def _recode(
        self, qid: str, item_id: str, recodes: dict[str, Any], what: str
    ) -> int | float | None:
        if item_id not in recodes:
            return int(item_id) if _INT_RE.fullmatch(item_id) else None
        value = recodes[item_id]
        number = _number(value)
        if number is None:
            self.warnings.append(
                f"{qid}: the recode {_text(value)[:30]!r} of {what} '{item_id}' is not a number; "
                "it was left empty"
            )
        return number

    # -- display logic ---------------------------------------------------------------------

    def _map_display_logic(self, mapped: list[_Placed]) -> None:
        by_qid = {item.qid: item for item in mapped}
        for item in mapped:
            logic = item.payload.get("DisplayLogic")
            if not isinstance(logic, dict) or not logic:
                continue
            assert item.question is not None
            try:
                node, reason = _LogicMapper(by_qid, item).map(logic)
            except Exception as exc:
                node, reason = None, f"it could not be read ({type(exc).__name__})"
            if node is not None:
                candidate = {**item.question, "show_if": node}
                try:
                    QUESTION_ADAPTER.validate_python(candidate, strict=True)
                except ValidationError as exc:
                    node, reason = None, str(problems_from_validation(exc)[0])
                else:
                    item.question = candidate
            if node is None:
                self.warnings.append(
                    f"{item.qid}: display logic not imported ({reason}); the question is always "
                    "shown"
                )

    def _drop_inconsistent_display_logic(self, document: dict[str, Any]) -> None:
        # The mapper checks what it can see question by question; the content's own checks see
        # across questions. Logic they refuse is dropped (and reported), never the whole import.
        for _ in range(3):
            dropped = False
            for problem in check_document(document):
                match = re.match(r"questions\[(\d+)\]\.show_if", problem.path)
                question = document["questions"][int(match[1])] if match else None
                if question is not None and question.pop("show_if", None) is not None:
                    dropped = True
                    self.warnings.append(
                        f"{question['qid']}: display logic not imported ({problem.message}); the "
                        "question is always shown"
                    )
            if not dropped:
                return

    def _skip(self, element: str, kind: str, reason: str) -> None:
        self.skipped.append(SkippedElement(element[:100], kind[:60], reason))

    # -- the report ------------------------------------------------------------------------

    def _behaviour_changes(
        self, questions: dict[str, dict[str, Any]], mapped: list[_Placed]
    ) -> list[str]:
        changes: list[str] = []
        kept = {item.qid for item in mapped}
        scripted = [qid for qid, p in questions.items() if qid in kept and _has_script(p)]
        if scripted:
            changes.append(
                f"JavaScript of {_count(scripted, 'question')} is dropped ({_qids(scripted)}); "
                "what it did (hiding, timing, checks) does not happen"
            )
        pictured = [
            qid for qid, p in questions.items()
            if qid in kept and "<img" in _text(p.get("QuestionText")).lower()
        ]  # fmt: skip
        if pictured:
            changes.append(
                f"{_count(pictured, 'question')} show images ({_qids(pictured)}); an image is "
                "shown only from a host the survey_image_hosts setting allows, otherwise as its "
                "alt text"
            )
        left_out = [s.element for s in self.skipped if QID_RE.match(s.element)]
        trashed = {s.element for s in self.skipped if s.reason == "the question is in the trash"}
        left_out = [qid for qid in left_out if qid not in trashed]
        if left_out:
            changes.append(
                f"{_count(left_out, 'question')} left out as unsupported ({_qids(left_out)}); "
                "see skipped for why"
            )
        flow = [s for s in self.skipped if s.element.startswith("flow ")]
        for item in flow:
            changes.append(f"{item.element} ({item.kind}): {item.reason}")
        logic = list(
            dict.fromkeys(w.split(":", 1)[0] for w in self.warnings if "display logic" in w)
        )
        if logic:
            changes.append(
                f"display logic of {_count(logic, 'question')} is not (fully) imported "
                f"({_qids(logic)}); those questions are shown more often than in the original"
            )
        return changes

    # -- survey options --------------------------------------------------------------------

    def _options(self, elements: list[Any]) -> dict[str, Any]:
        payload = next(
            (
                e.get("Payload")
                for e in elements
                if isinstance(e, dict) and e.get("Element") == "SO"
            ),
            None,
        )
        if not isinstance(payload, dict):
            return {}
        options: dict[str, Any] = {}
        if _text(payload.get("BackButton")).lower() == "false":
            options["back_button"] = False
        progress = _text(payload.get("ProgressBarDisplay"))
        if progress == "None" or not progress:
            options["progress_bar"] = "none"
        else:
            options["progress_bar"] = "percent"  # the reference's bar shows a percentage
        title = _text(payload.get("SurveyTitle")).strip()
        # The reference fills the browser title with its own product name by default; that is
        # no heading for respondents, and neither is the survey's internal name.
        default_title = not title or "Qualtrics" in title
        options["title"] = "" if default_title else title[:1_000]
        termination = _text(payload.get("SurveyTermination"))
        url = _text(payload.get("EOSRedirectURL")).strip()
        if termination == "Redirect" and url.startswith(("https://", "http://")) and len(url) > 8:
            options["end_redirect_url"] = url[:2_000]
        elif termination == "DisplayMessage" and payload.get("EOSMessage"):
            self.warnings.append(
                "the end-of-survey message is kept in the reference's message library, which "
                "the file does not hold; respondents see cxloop's thank-you"
            )
        return options


class _LogicMapper:
    """Turns a QSF DisplayLogic into a condition tree, or says why it cannot."""

    def __init__(self, by_qid: Mapping[str, _Placed], item: _Placed) -> None:
        self.by_qid = by_qid
        self.item = item

    def map(self, logic: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        terms: list[tuple[str, dict[str, Any]]] = []
        for key in sorted((k for k in logic if _text(k).isdecimal()), key=_natural):
            logic_set = logic[key]
            if not isinstance(logic_set, dict):
                return None, "a logic set is not an object"
            expressions: list[tuple[str, dict[str, Any]]] = []
            for expression_key in sorted(
                (k for k in logic_set if _text(k).isdecimal()), key=_natural
            ):
                expression = logic_set[expression_key]
                if not isinstance(expression, dict):
                    return None, "a condition is not an object"
                node, reason = self._expression(expression)
                if node is None:
                    return None, reason
                # The reference's exports spell it "Conjuction".
                conjunction = _text(expression.get("Conjuction") or expression.get("Conjunction"))
                expressions.append(("or" if conjunction == "Or" else "and", node))
            if not expressions:
                continue
            set_type = _text(logic_set.get("Type"))
            terms.append(("or" if set_type == "OrIf" else "and", _combine(expressions)))
        if not terms:
            return None, "it has no conditions"
        return _combine(terms), ""

    def _expression(self, expression: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        logic_type = _text(expression.get("LogicType"))
        if logic_type == "EmbeddedField" and self.item.qid == "":
            return _embedded_condition(expression)
        if logic_type != "Question":
            return None, f"'{logic_type or '?'}' conditions are not supported"
        locator = unquote(_text(expression.get("LeftOperand")))
        match = re.fullmatch(r"q://(QID[1-9][0-9]{0,8})/(.+)", locator)
        if not match:
            return None, f"the condition on '{locator[:60]}' is not supported"
        ref_qid, tail = match[1], match[2].split("/")
        target = self.by_qid.get(ref_qid)
        if target is None or target.question is None:
            return None, f"it depends on {ref_qid}, which was not imported"
        positions = list(self.by_qid)
        if target.page > self.item.page or (
            target.page == self.item.page
            and positions.index(ref_qid) >= positions.index(self.item.qid)
        ):
            return None, f"it depends on {ref_qid}, which comes later"
        operator = _text(expression.get("Operator"))
        question = target.question
        kind = question["type"]
        if tail[0] in ("SelectableChoice", "SelectableAnswer") and operator in (
            "Selected",
            "NotSelected",
        ):
            return self._selection(ref_qid, question, tail, operator == "Selected")
        mapped = _LOGIC_OPERATORS.get(operator)
        if mapped is None:
            return None, f"the '{operator}' condition is not supported"
        if tail == ["ChoiceTextEntryValue"] and kind == "text_entry":
            field = ref_qid
        elif tail[0] == "ChoiceTextEntryValue" and len(tail) == 2 and kind != "text_entry":
            boxes = question.get("choices", question.get("rows", []))
            if not any(b["id"] == tail[1] and b.get("allow_text_entry") for b in boxes):
                return None, f"'{tail[1]}' of {ref_qid} has no text box"
            field = f"{ref_qid}/text/{tail[1]}"
        elif tail[0] == "ChoiceNumericEntryValue" and kind in ("rating", "nps", "text_entry"):
            field = ref_qid
        else:
            return None, f"the condition on {ref_qid}/{'/'.join(tail)[:40]} is not supported"
        condition: dict[str, Any] = {"field": field, "operator": mapped}
        if mapped not in ("is_empty", "is_not_empty"):
            right = expression.get("RightOperand")
            numeric = kind in ("rating", "nps") or mapped in _NUMERIC_OPERATORS
            value = _number(right) if numeric else _text(right)
            if value is None:
                return None, f"'{_text(right)[:30]}' is not a number to compare with"
            condition["value"] = value
        return condition, ""

    def _selection(
        self, ref_qid: str, question: dict[str, Any], tail: list[str], selected: bool
    ) -> tuple[dict[str, Any] | None, str]:
        kind = question["type"]
        if tail[0] == "SelectableChoice" and len(tail) == 2:
            choice_id = tail[1]
            if kind == "nps" and _INT_RE.fullmatch(choice_id):
                operator = "equals" if selected else "not_equals"
                return {"field": ref_qid, "operator": operator, "value": int(choice_id)}, ""
            if kind in ("single_choice", "multiple_choice"):
                if choice_id not in {c["id"] for c in question["choices"]}:
                    return None, f"{ref_qid} has no choice '{choice_id}'"
                if kind == "single_choice":
                    operator = "equals" if selected else "not_equals"
                else:
                    operator = "contains" if selected else "not_contains"
                return {"field": ref_qid, "operator": operator, "value": choice_id}, ""
        if kind == "matrix":
            rows = [r["id"] for r in question["rows"]]
            points = {p["id"] for p in question["scale"]}
            operator = "equals" if selected else "not_equals"
            if tail[0] == "SelectableChoice" and len(tail) == 3:
                row, point = tail[1], tail[2]
                if row not in rows or point not in points:
                    return None, f"{ref_qid} has no row '{row}' or scale point '{point}'"
                return {"field": f"{ref_qid}/row/{row}", "operator": operator, "value": point}, ""
            if tail[0] == "SelectableAnswer" and len(tail) == 2 and tail[1] in points:
                # "Scale point 3 is selected" means: in some row. "Not selected": in no row.
                conditions = [
                    {"field": f"{ref_qid}/row/{row}", "operator": operator, "value": tail[1]}
                    for row in rows
                ]
                if len(conditions) == 1:
                    return conditions[0], ""
                return {"join": "or" if selected else "and", "conditions": conditions}, ""
        return None, f"the condition on {ref_qid}/{'/'.join(tail)[:40]} is not supported"


def _embedded_condition(expression: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    name = _text(expression.get("LeftOperand"))
    operator = _LOGIC_OPERATORS.get(_text(expression.get("Operator")))
    if not _FIELD_NAME_RE.match(name) or operator is None:
        return None, f"the condition on embedded data '{name[:40]}' is not supported"
    condition: dict[str, Any] = {"field": f"e://Field/{name}", "operator": operator}
    if operator not in ("is_empty", "is_not_empty"):
        right = expression.get("RightOperand")
        value = _number(right) if operator in _NUMERIC_OPERATORS else _text(right)
        if value is None:
            return None, f"'{_text(right)[:30]}' is not a number to compare with"
        condition["value"] = value
    return condition, ""


def _block_id(block: str) -> str:
    return block if ID_RE.match(block) else re.sub(r"[^A-Za-z0-9_-]", "_", block)[:64] or "block"


class _FlowMapper:
    """Turns the QSF survey flow (``FL``) into cxloop's flow, reporting what it cannot keep."""

    def __init__(
        self, importer: _Importer, mapped: list[_Placed], embedded: list[dict[str, Any]]
    ) -> None:
        self.importer = importer
        self.blocks = {item.block for item in mapped}
        self.by_qid = {item.qid: item for item in mapped}
        self.defaults = {f["name"]: f.get("default") for f in embedded}
        self.meaningful = False  # anything beyond showing the blocks in order

    def flow(self, flows: list[Any]) -> list[dict[str, Any]] | None:
        if not flows:
            return None
        elements: list[dict[str, Any]] = []
        for root in flows:
            if isinstance(root, dict):
                elements += self.elements(root.get("Flow"), 0)
        return elements if self.meaningful else None

    def elements(self, nodes: Any, depth: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if depth > 16 or not isinstance(nodes, list):
            return out
        for node in nodes:
            if isinstance(node, dict):
                out += self.element(node, depth)
        return out

    def element(self, node: dict[str, Any], depth: int) -> list[dict[str, Any]]:
        kind = _text(node.get("Type"))
        where = f"flow {_text(node.get('FlowID')) or '?'}"
        if kind in ("Block", "Standard"):
            block = _text(node.get("ID"))
            return [{"type": "block", "block": _block_id(block)}] if block in self.blocks else []
        if kind == "Group":
            return self.elements(node.get("Flow"), depth + 1)
        if kind == "Branch":
            children = self.elements(node.get("Flow"), depth + 1)
            logic = node.get("BranchLogic")
            condition, reason = (None, "it has no conditions")
            if isinstance(logic, dict):
                try:
                    condition, reason = _LogicMapper(self.by_qid, _Placed("", 10**9, {})).map(logic)
                except Exception as exc:
                    condition, reason = None, f"it could not be read ({type(exc).__name__})"
            if condition is None:
                self.importer._skip(
                    where, "Branch",
                    f"branch logic not imported ({reason}); what it holds is always shown",
                )  # fmt: skip
                self.meaningful = self.meaningful or any(c["type"] != "block" for c in children)
                return children
            self.meaningful = True
            branch: dict[str, Any] = {"type": "branch", "condition": condition, "flow": children}
            description = _text(node.get("Description"))
            if description and description != "New Branch":
                branch["description"] = description[:1_000]
            return [branch]
        if kind in ("BlockRandomizer", "Randomizer"):
            children = self.elements(node.get("Flow"), depth + 1)
            if not children:
                self.importer._skip(where, kind, "the randomizer holds nothing cxloop can show")
                return []
            subset = _number(node.get("SubSet"))
            present = int(subset) if isinstance(subset, int) and subset > 0 else len(children)
            self.meaningful = True
            return [
                {
                    "type": "randomizer",
                    "id": _block_id(_text(node.get("FlowID")) or "randomizer"),
                    "present": min(present, len(children)),
                    "even": _truthy(node.get("EvenPresentation")),
                    "flow": children,
                }
            ]
        if kind == "EmbeddedData":
            fields = []
            for item in _values(node.get("EmbeddedData")):
                if not isinstance(item, dict) or item.get("Type") != "Custom":
                    continue
                name, value = _text(item.get("Field")), item.get("Value")
                if not _FIELD_NAME_RE.match(name) or not isinstance(value, str | int | float):
                    continue
                if str(value) != self.defaults.get(name) and len(str(value)) <= MAX_TEXT:
                    fields.append({"name": name, "value": str(value)})
            if fields:
                self.meaningful = True
                return [{"type": "embedded_data", "fields": fields}]
            return []
        if kind == "EndSurvey":
            self.meaningful = True
            return [self.end_survey(node)]
        self.importer._skip(where, kind, f"'{kind}' flow elements are not imported")
        return self.elements(node.get("Flow"), depth + 1)

    def end_survey(self, node: dict[str, Any]) -> dict[str, Any]:
        options = node.get("Options") if isinstance(node.get("Options"), dict) else {}
        end: dict[str, Any] = {"type": "end_survey"}
        url = _text(options.get("EOSRedirectURL")).strip()
        if _text(options.get("SurveyTermination")) == "Redirect":
            if url.startswith(("https://", "http://")) and len(url) <= 2_000:
                end["redirect_url"] = url
        elif _text(options.get("EOSMessage")):
            self.importer.warnings.append(
                f"flow {_text(node.get('FlowID')) or '?'}: the end-of-survey message is kept in "
                "the reference's message library, which the file does not hold; respondents see "
                "cxloop's thank-you"
            )
        if _text(options.get("ResponseFlag")) == "Screened":
            end["screened_out"] = True
        return end


_JS_SKELETON = re.compile(
    r"Qualtrics\.SurveyEngine\.addOn(?:load|Ready|Unload)\s*\(\s*function\s*\(\s*\)\s*"
    r"\{\s*\}\s*\)\s*;?"
)


_PARAGRAPH_END = re.compile(
    r"(?:</p\s*>|</div\s*>|</[uo]l\s*>|(?:<br\s*/?>\s*){2,})", re.IGNORECASE
)


def _split_paragraphs(text: str) -> tuple[str, str] | None:
    """(everything but the last paragraph, the last paragraph) of an HTML text, or None when
    the text is one paragraph or its last one is long too."""
    parts = [part for part in _PARAGRAPH_END.split(text) if plain_text(part)]
    if len(parts) < 2 or len(plain_text(parts[-1])) > 300:
        return None
    cut = text.rfind(parts[-1])
    head, tail = text[:cut], text[cut:]
    return (head, tail) if plain_text(head) else None


def _has_script(payload: dict[str, Any]) -> bool:
    """Whether a question carries JavaScript beyond the editor's empty placeholders."""
    script = payload.get("QuestionJS")
    if not isinstance(script, str) or not script.strip():
        return False
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", script, flags=re.DOTALL)
    return bool(_JS_SKELETON.sub("", code).strip())


def _count(items: list[str], what: str) -> str:
    return f"{len(items)} {what}{'' if len(items) == 1 else 's'}"


def _qids(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(dict.fromkeys(items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _combine(terms: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    # "and" binds tighter than "or", as in the reference: a and b or c = (a and b) or c.
    groups: list[list[dict[str, Any]]] = [[]]
    for index, (conjunction, node) in enumerate(terms):
        if index and conjunction == "or":
            groups.append([])
        groups[-1].append(node)
    ands = [g[0] if len(g) == 1 else {"join": "and", "conditions": g} for g in groups]
    return ands[0] if len(ands) == 1 else {"join": "or", "conditions": ands}


# -- small readers ----------------------------------------------------------------------------


def _values(value: Any) -> list[Any]:
    """A QSF list, which may also come as a dict keyed by (gappy) indexes."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value[key] for key in sorted(value, key=_natural)]
    return []


def _natural(key: Any) -> tuple[int, int, str]:
    text = str(key)
    return (0, int(text), "") if text.isdecimal() and len(text) < 19 else (1, 0, text)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        try:
            return str(value)
        except ValueError:  # an int too long to print
            return ""
    return ""


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= _MAX_SAFE_INT else None
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return None
        return int(value) if value.is_integer() and abs(value) <= _MAX_SAFE_INT else value
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return _number(int(text))
        if len(text) <= 40 and _DECIMAL_RE.fullmatch(text):
            return _number(float(text))
    return None


def _truthy(value: Any) -> bool:
    return (
        value is True or value == 1 or (isinstance(value, str) and value.lower() in ("true", "1"))
    )


def _carried_forward(payload: dict[str, Any]) -> str | None:
    dynamic = payload.get("DynamicChoices")
    if isinstance(dynamic, dict) and dynamic:
        locator = _text(dynamic.get("Locator"))
        return f"its choices are carried forward ({locator[:60]}), which is not supported"
    return None


def _settings(payload: dict[str, Any]) -> dict[str, Any]:
    validation = payload.get("Validation")
    settings = validation.get("Settings") if isinstance(validation, dict) else None
    return settings if isinstance(settings, dict) else {}


def _is_required(payload: dict[str, Any], qid: str, warnings: list[str]) -> bool:
    force = _text(_settings(payload).get("ForceResponse"))
    if force == "RequestResponse":
        warnings.append(f"{qid}: 'request response' imported as optional")
    return force == "ON"


def _kind(payload: Any) -> str:
    if not isinstance(payload, dict):
        return "?"
    parts = [_text(payload.get(k)) for k in ("QuestionType", "Selector", "SubSelector")]
    return "/".join(p for p in parts if p) or "?"
