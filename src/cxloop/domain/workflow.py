"""The workflow document: one event, optional conditions, ordered tasks. Pure data + checks.

The same document is what the API takes, what `cxloop workflows export` writes as YAML and
what `apply` reads back, so it round-trips exactly. Example::

    name: Detractor follow-up
    event:
      type: survey_response
      when: [created]
      include_imported: false
      include_incomplete: false
    conditions:
      join: and
      conditions:
        - {field: "q://QID1", operator: less_or_equal, value: 6}
    on_task_failure: stop
    tasks:
      - id: response
        type: salesforce
        connection: Acme production          # a connection of the survey's owner: name or id
        object: Survey_Response__c
        action: upsert
        key_field: Response_ID__c
        mappings:
          - {field: Response_ID__c, value: "${e://Field/ResponseID}"}
          - {field: NPS_Score__c, value: "${q://QID1/ChoiceGroup/SelectedChoices}"}
          - {field: Case__c, value: "${e://Field/CaseId}"}
      - id: alert
        type: email
        to: "am@example.com"
        subject: "Detractor on case ${e://Field/CaseId}"
        body: "Score ${q://QID1/ChoiceGroup/SelectedChoices}: ${task://response/Id}"

Condition fields name what they test: `q://QID1` (the answer: choice ids, numbers, text),
`q://QID1/recode` (recode values of the selected choices), `q://QID1/text` (text entered),
`q://QID1/text/4` (text typed into choice 4's box), `q://QID5/row/1` (a matrix row: the scale
point chosen), `q://QID5/row/1/recode` (its recode), `e://Field/Name` (embedded data or a
response field such as ResponseID) and `m://Name` (metadata: see RESPONSE_METADATA_FIELDS;
`m://Channel` is how the response came: anonymous_link, personal_link, signed_link, api, import).
Outbound message workflows test `event://Field/Name` (a field of the message) and `e://`.

Besides the schema, this module holds the pure checks a save runs (`check_document`,
`survey_problems`) and the exact YAML/JSON text form (`load_text`, `dump_yaml`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cxloop.domain import piped_text
from cxloop.domain.conditions import (
    EMPTINESS_OPERATORS,
    NUMERIC_OPERATORS,
    Condition,
    ConditionGroup,
    conditions_with_paths,
)
from cxloop.domain.document_paths import (
    NoAliasLoader,
    common_message,
    document_path,
    shorten,
    yaml_problem,
)
from cxloop.domain.salesforce_task import SalesforceTaskSpec
from cxloop.domain.survey_content import (
    ANSWER_FIELD_PATTERN,
    RESPONSE_CHANNELS,
    AnswerPart,
    ChoiceQuestion,
    DescriptiveQuestion,
    MatrixQuestion,
    SurveyContent,
    TextEntryQuestion,
    answer_part,
)

TASK_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
TASK_REFERENCE = re.compile(r"\$\{task://([^/}]+)/[^}]*\}")
API_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,79}$"

EventType = Literal["survey_response", "salesforce_outbound_message"]
ResponseEventKind = Literal["created", "updated"]
OnTaskFailure = Literal["continue", "stop"]

EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
TASK_TYPES = ("salesforce", "email", "directory")
# The piped-text namespaces a task may use, by event: a response has answers, embedded data and
# a contact; an outbound message has its record's fields and no answers yet.
PIPED_TEXT_NAMESPACES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "survey_response": ("q", "e", "m", "date", "task"),
        "salesforce_outbound_message": ("event", "e", "date", "task"),
    }
)
CONDITION_NAMESPACES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "survey_response": ("q", "e", "m"),
        "salesforce_outbound_message": ("event", "e"),
    }
)
# What `m://Name` names in a condition: the response's own metadata (as the engine reads it).
RESPONSE_METADATA_FIELDS = (
    "ResponseID",
    "SurveyID",
    "Finished",
    "Source",
    "Channel",
    "Duration",
    "Language",
    "StartDate",
    "EndDate",
    "DistributionID",
    "ContactID",
)
MAX_DOCUMENT_BYTES = 1_000_000
_DEFER_TASK_ORDER = "defer_task_order"
MAX_DEPTH = 40  # conditions nest at most 8 groups, each 2 levels; tasks sit 4 levels deep


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SurveyResponseEvent(_Model):
    """A response was created and/or updated."""

    type: Literal["survey_response"] = "survey_response"
    # Not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    when: list[ResponseEventKind] = Field(default_factory=lambda: ["created"], min_length=1)
    include_imported: bool = False
    include_incomplete: bool = False


class OutboundMessageEvent(_Model):
    """Salesforce sent an Outbound Message (a record-triggered Flow) to this workflow's URL.

    The message must come from the org of `connection` (a connection of the survey's owner) and
    carry `object` records. `verify_session_id` asks Salesforce whether the session id the
    message carries belongs to that org; `allowed_ips` (CIDRs) limits where it may come from.
    """

    type: Literal["salesforce_outbound_message"] = "salesforce_outbound_message"
    connection: str = Field(min_length=1, max_length=100)
    object: str = Field(pattern=API_NAME)
    verify_session_id: bool = False
    allowed_ips: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("allowed_ips")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(
                    f"{_short(value)} is not an IP address or network (use CIDRs such as "
                    "13.108.0.0/14)"
                ) from None
        return values


Event = Annotated[
    Annotated[SurveyResponseEvent, Tag("survey_response")]
    | Annotated[OutboundMessageEvent, Tag("salesforce_outbound_message")],
    Discriminator(lambda v: v.get("type") if isinstance(v, dict) else getattr(v, "type", None)),
]


class Lookup(_Model):
    """Set a reference field to the Id that a query finds, e.g. Contact by Email."""

    field: str = Field(pattern=API_NAME)
    object: str = Field(pattern=API_NAME)
    match_field: str = Field(pattern=API_NAME)
    value: str = Field(max_length=2000, description="Piped text: what match_field must equal.")
    when_missing: Literal["leave_empty", "fail"] = "leave_empty"


class SalesforceTask(SalesforceTaskSpec):
    """Write a Salesforce record: insert, update, upsert or delete."""

    type: Literal["salesforce"] = "salesforce"
    id: str = Field(pattern=TASK_ID)
    connection: str = Field(min_length=1, max_length=100, description="Name or id.")
    key_value: str | None = Field(
        default=None,
        max_length=2000,
        description="Piped text giving the key's value (update, delete, upsert), e.g. "
        "${e://Field/CaseId}; for upsert it may also come from the key field's mapping.",
    )
    lookups: list[Lookup] = Field(default_factory=list, max_length=10)
    dedupe_field: str | None = Field(
        default=None,
        pattern=API_NAME,
        description="insert only: a field holding a unique value (e.g. Response_ID__c) that is "
        "looked up before re-sending after an ambiguous failure.",
    )

    @model_validator(mode="after")
    def _check_action_options(self) -> SalesforceTask:
        if self.dedupe_field and self.action != "insert":
            raise ValueError("dedupe_field only applies to insert (upsert is idempotent already)")
        if self.dedupe_field and not any(m.field == self.dedupe_field for m in self.mappings):
            raise ValueError(f"dedupe_field {self.dedupe_field} must also be mapped")
        if self.action in ("update", "delete") and not self.key_value:
            raise ValueError(f"{self.action} needs key_value: which record, e.g. ${{e://Field/Id}}")
        if (
            self.action == "upsert"
            and not self.key_value
            and not any(m.field == self.key_field for m in self.mappings)
        ):
            raise ValueError(f"upsert needs a value for {self.key_field}: map it or set key_value")
        return self


class EmailTask(_Model):
    """Send an email, e.g. alert an account manager about a detractor."""

    type: Literal["email"] = "email"
    id: str = Field(pattern=TASK_ID)
    name: str = Field(default="Email", max_length=200)
    to: str = Field(min_length=1, max_length=2000, description="Addresses, comma-separated.")
    cc: str = Field(default="", max_length=2000)
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=100_000)


class ContactMapping(_Model):
    """The contact a directory task adds or updates: each field in piped text."""

    email: str = Field(min_length=1, max_length=2000)
    first_name: str = Field(default="", max_length=2000)
    last_name: str = Field(default="", max_length=2000)
    phone: str = Field(default="", max_length=2000)
    language: str = Field(default="", max_length=2000)
    external_ref: str = Field(default="", max_length=2000)

    @field_validator("email")
    @classmethod
    def _email_not_blank(cls, email: str) -> str:
        if not email.strip():
            raise ValueError(
                "the contact's email is empty: give an address or piped text such as "
                "${event://Field/SuppliedEmail}"
            )
        return email


class Distribute(_Model):
    """Email the contact a personal link to the survey."""

    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=100_000)
    from_name: str = Field(default="", max_length=200)
    from_address: str = Field(default="", max_length=320)
    reply_to: str = Field(default="", max_length=320)
    link_expiry_days: int = Field(default=30, ge=1, le=3650)
    # The personal link's embedded data (names declared in the survey), e.g.
    # {CaseId: "${event://Field/Id}"}: the response carries it back.
    embedded_data: dict[str, str] = Field(default_factory=dict, max_length=100)


class FrequencyRule(_Model):
    """At most `max_invitations` invitations per contact per `days`, across the directory."""

    max_invitations: int = Field(ge=1, le=1000)
    days: int = Field(ge=1, le=3650)


class DirectoryTask(_Model):
    """Add or update a contact in a directory, optionally on a mailing list, and invite them."""

    type: Literal["directory"] = "directory"
    id: str = Field(pattern=TASK_ID)
    name: str = Field(default="Directory", max_length=200)
    directory: str = Field(
        default="Default",
        min_length=1,
        max_length=100,
        description="A directory of the survey's owner, by name or id (made when missing).",
    )
    match_on: Literal["email", "external_ref"] = "email"
    contact: ContactMapping
    embedded_data: dict[str, str] = Field(default_factory=dict, max_length=100)
    mailing_list: str | None = Field(default=None, min_length=1, max_length=100)
    distribute: Distribute | None = None
    frequency: FrequencyRule | None = Field(
        default=None, description="Overrides the directory's own frequency rule."
    )

    @model_validator(mode="after")
    def _check_match(self) -> DirectoryTask:
        if self.match_on == "external_ref" and not self.contact.external_ref:
            raise ValueError("match_on external_ref needs contact.external_ref")
        return self


Task = Annotated[
    Annotated[SalesforceTask, Tag("salesforce")]
    | Annotated[EmailTask, Tag("email")]
    | Annotated[DirectoryTask, Tag("directory")],
    Discriminator(lambda v: v.get("type") if isinstance(v, dict) else getattr(v, "type", None)),
]
AnyTask = SalesforceTask | EmailTask | DirectoryTask


class WorkflowDocument(_Model):
    """A whole workflow."""

    format_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    event: Event
    conditions: ConditionGroup | None = None
    on_task_failure: OnTaskFailure = "stop"
    tasks: list[Task] = Field(min_length=1, max_length=50)

    @field_validator("name")
    @classmethod
    def _one_line_name(cls, name: str) -> str:
        # The name is how `apply` finds the workflow again: a blank or multi-line name would
        # make that (and every list that shows it) ambiguous.
        if not name.strip():
            raise ValueError("the workflow needs a name that is not blank")
        if any(char in name for char in "\r\n\t\x00"):
            raise ValueError("the workflow name must be one line")
        return name

    @model_validator(mode="after")
    def _check_tasks(self, info: ValidationInfo) -> WorkflowDocument:
        if info.context and info.context.get(_DEFER_TASK_ORDER):
            return self  # check_document reports these itself, with the survey's problems
        problems = task_order_problems(self.tasks)
        if problems:
            # One error carrying every problem with its path; problems_from_validation unpacks it.
            raise PydanticCustomError(
                "task_order",
                "{summary}",
                {
                    "summary": "; ".join(p.message for p in problems),
                    "problems": [(p.path, p.message) for p in problems],
                },
            )
        return self

    def task(self, task_id: str) -> AnyTask:
        return next(t for t in self.tasks if t.id == task_id)


# -- what a task holds --------------------------------------------------------------------------


def task_texts(task: AnyTask) -> list[tuple[str, str]]:
    """Every piped-text template of a task, with where it is (for validation messages)."""
    if isinstance(task, EmailTask | DirectoryTask):
        return task_templates(task)
    texts = [(f"mappings[{m.field}]", m.value) for m in task.mappings if not m.constant]
    texts += [(f"lookups[{lookup.field}]", lookup.value) for lookup in task.lookups]
    if task.key_value:
        texts.append(("key_value", task.key_value))
    return texts


def task_templates(task: AnyTask) -> list[tuple[str, str]]:
    """The same templates as `task_texts`, each with its path in the task (`mappings[2].value`),
    so a form or an editor can point at the very input."""
    if isinstance(task, EmailTask):
        return [("to", task.to), ("cc", task.cc), ("subject", task.subject), ("body", task.body)]
    if isinstance(task, DirectoryTask):
        return directory_task_templates(task)
    texts = [
        (f"mappings[{index}].value", m.value)
        for index, m in enumerate(task.mappings)
        if not m.constant
    ]
    texts += [(f"lookups[{index}].value", item.value) for index, item in enumerate(task.lookups)]
    if task.key_value:
        texts.append(("key_value", task.key_value))
    return texts


def directory_task_templates(task: DirectoryTask) -> list[tuple[str, str]]:
    """The piped text of a directory task: contact fields, embedded data, the invitation."""
    texts = [
        (f"contact.{name}", value) for name, value in task.contact.model_dump().items() if value
    ]
    texts += [(f"embedded_data.{name}", value) for name, value in task.embedded_data.items()]
    if task.distribute is not None:
        texts += [
            ("distribute.subject", task.distribute.subject),
            ("distribute.body", task.distribute.body),
        ]
        texts += [
            (f"distribute.embedded_data.{name}", value)
            for name, value in task.distribute.embedded_data.items()
        ]
    return texts


# Where a directory task's invitation may also use the recipient (m://) and links (l://).
INVITATION_TEMPLATE_PATHS = ("distribute.subject", "distribute.body")


def task_references(task: AnyTask) -> set[str]:
    """Ids of the earlier tasks whose output this task uses (`${task://ID/...}`)."""
    found: set[str] = set()
    for _where, text in task_texts(task):
        found.update(match.group(1) for match in TASK_REFERENCE.finditer(text))
    return found


def duplicate_id_problems(tasks: list[AnyTask]) -> list[DocumentProblem]:
    """Tasks whose id an earlier task has already."""
    problems: list[DocumentProblem] = []
    seen: set[str] = set()
    for index, task in enumerate(tasks):
        if task.id in seen:
            problems.append(
                DocumentProblem(
                    f"tasks[{index}].id",
                    f"two tasks have the id {task.id!r}; task ids must be unique",
                )
            )
        seen.add(task.id)
    return problems


def task_order_problems(tasks: list[AnyTask]) -> list[DocumentProblem]:
    """Duplicate task ids, and tasks that use the output of themselves or of a later task."""
    problems = duplicate_id_problems(tasks)
    seen: list[str] = []
    for index, task in enumerate(tasks):
        for where, text in task_templates(task):
            for referenced in sorted({m.group(1) for m in TASK_REFERENCE.finditer(text)}):
                if referenced == task.id:
                    message = f"task {task.id!r} refers to its own output"
                elif referenced not in seen:
                    message = (
                        f"task {task.id!r} uses the output of {referenced!r}, which is not an "
                        "earlier task"
                    )
                else:
                    continue
                problems.append(DocumentProblem(f"tasks[{index}].{where}", message))
        seen.append(task.id)
    return problems


# -- documents ----------------------------------------------------------------------------------


def parse_document(data: Any) -> WorkflowDocument:
    """A workflow document from parsed JSON/YAML (raises pydantic.ValidationError).

    Strict: `"yes"` is not a boolean and `"3"` not a number, so what is stored is what was meant.
    """
    return WorkflowDocument.model_validate(data, strict=True)


def to_document(workflow: WorkflowDocument) -> dict[str, Any]:
    """The document as plain data, leaving out what was not set, so exports stay as written."""
    return workflow.model_dump(mode="json", exclude_unset=True, by_alias=True)


@dataclass(frozen=True)
class DocumentProblem:
    """One thing wrong with a workflow document, at a path such as `tasks[1].subject`.

    `character` (1-based) says where in a piped-text template the problem starts.
    """

    path: str
    message: str
    character: int | None = None
    # What kind of problem (pydantic's error type, for one found by validation) and its values
    # (`min_length`, `expected`): pages say it in their language. Not part of the API's details.
    code: str = field(default="", compare=False)
    params: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The problem as an error detail: `{path, message}`, plus `character` when known."""
        detail: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.character is not None:
            detail["character"] = self.character
        return detail

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class WorkflowDocumentError(ValueError):
    """A workflow document has problems; `problems` lists every one.

    `document` is the parsed document when only checks beyond the schema failed, so that a
    caller can add what it checks itself (connections) and still report everything at once.
    """

    def __init__(
        self, problems: list[DocumentProblem], document: WorkflowDocument | None = None
    ) -> None:
        self.problems = problems
        self.document = document
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"The workflow has {len(problems)} {noun}: {shown}{more}")


def check_document(data: Any, content: SurveyContent | None = None) -> WorkflowDocument:
    """The document, checked; raises `WorkflowDocumentError` listing every problem with its path.

    Every problem at once: the schema's, duplicate task ids and, with the survey's `content`,
    every piped-text reference (including `${task://...}` to a task that does not run earlier,
    with its character) and condition field. When the schema refuses the document, the
    references are still checked in every part that can be read (the event type, each task's
    piped text, the conditions), so that fixing the structure never reveals a second round.
    Without `content`, task references are checked on their own.
    """
    if not isinstance(data, Mapping):
        raise WorkflowDocumentError(
            [DocumentProblem("", "the workflow document must be a mapping (an object)")]
        )
    shape = _shape_problem(data)
    if shape is not None:
        raise WorkflowDocumentError([shape])
    if document_size(data) > MAX_DOCUMENT_BYTES:
        raise WorkflowDocumentError([too_large_problem()])
    try:
        document = WorkflowDocument.model_validate(
            data, strict=True, context={_DEFER_TASK_ORDER: True}
        )
    except ValidationError as exc:
        problems = problems_from_validation(exc)
        if content is not None:
            problems += _salvaged_reference_problems(data, content)
        raise WorkflowDocumentError(problems) from None
    if content is None:
        problems = task_order_problems(document.tasks)
    else:
        problems = duplicate_id_problems(document.tasks) + survey_problems(document, content)
    if problems:
        raise WorkflowDocumentError(problems, document)
    return document


_TAGS = frozenset({*EVENT_TYPES, *TASK_TYPES, "condition", "group"})
# The model behind each union tag pydantic puts in an error's location.
_TAG_MODELS: Mapping[str, type[BaseModel]] = MappingProxyType(
    {
        "survey_response": SurveyResponseEvent,
        "salesforce_outbound_message": OutboundMessageEvent,
        "salesforce": SalesforceTask,
        "email": EmailTask,
        "directory": DirectoryTask,
        "condition": Condition,
        "group": ConditionGroup,
    }
)


def problems_from_validation(exc: ValidationError) -> list[DocumentProblem]:
    """pydantic's errors as problems with document paths (`tasks[0].mappings[1].field`) and
    messages a person can act on."""
    problems: list[DocumentProblem] = []
    for error in exc.errors(include_url=False):
        loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
        if kind == "task_order":
            problems += [DocumentProblem(path, message) for path, message in ctx["problems"]]
            continue
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            choices = ", ".join(TASK_TYPES if loc and isinstance(loc[-1], int) else EVENT_TYPES)
            what = "task" if loc and isinstance(loc[-1], int) else "event"
            if kind == "union_tag_invalid":
                message = f"unknown {what} type {_short(ctx.get('tag'))}; use one of: {choices}"
            else:
                message, loc = f"'type' is missing; use one of: {choices}", (*loc, "type")
        elif kind == "string_pattern_mismatch":
            message = _pattern_message(loc, error.get("input"))
        else:
            message = common_message(error, loc, WorkflowDocument, _TAG_MODELS)
        path = _path(loc, keep_last=kind == "extra_forbidden")
        values = tuple(
            (str(k), v if isinstance(v, str | int | float) else str(v)) for k, v in ctx.items()
        )
        if kind == "extra_forbidden":
            values = (("name", str(loc[-1])),)
        if kind == "string_pattern_mismatch":  # our two patterns, each with its own sentence
            kind = "task_id_pattern" if loc and loc[-1] == "id" else "api_name_pattern"
        problems.append(DocumentProblem(path, message, code=kind, params=values))
    return problems


def _path(loc: Iterable[Any], keep_last: bool = False) -> str:
    return document_path(loc, union_tags=_TAGS, tagged_after="event", keep_last=keep_last)


def _pattern_message(loc: tuple[Any, ...], value: Any) -> str:
    if loc and loc[-1] == "id":
        return (
            f"{_short(value)} is not a usable task id: a letter, then up to 39 letters, digits, "
            "'_' or '-'"
        )
    return (
        f"{_short(value)} is not a Salesforce API name: a letter, then letters, digits or '_' "
        "(at most 80)"
    )


def _short(value: Any, limit: int = 40) -> str:
    return shorten(
        repr(value) if isinstance(value, str) else f"{type(value).__name__} {value!r}", limit
    )


def _shape_problem(data: Any) -> DocumentProblem | None:
    """Text with NUL characters (no database stores them), or nesting deeper than any workflow
    needs (which would only exhaust the stack further on). Iterative, for the same reason."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return DocumentProblem(_path(loc[:MAX_DEPTH]), "the document is nested too deeply")
        if isinstance(value, str) and "\x00" in value:
            return DocumentProblem(_path(loc), "text must not contain NUL characters")
        if isinstance(value, Mapping):
            for key, item in value.items():
                stack += [(key, (*loc, key)), (item, (*loc, key))]
        elif isinstance(value, list):
            stack += [(item, (*loc, index)) for index, item in enumerate(value)]
    return None


# -- checks against the survey ------------------------------------------------------------------


def survey_problems(document: WorkflowDocument, content: SurveyContent) -> list[DocumentProblem]:
    """Every piped-text reference and condition field that the survey cannot satisfy."""
    return (
        piped_text_problems(document, content)
        + condition_problems(document, content)
        + link_embedded_data_problems(document, content)
    )


def link_embedded_data_problems(
    document: WorkflowDocument, content: SurveyContent
) -> list[DocumentProblem]:
    """Personal-link embedded data of directory tasks that the survey does not declare (a
    response could not carry it back)."""
    problems: list[DocumentProblem] = []
    for index, task in enumerate(document.tasks):
        if not isinstance(task, DirectoryTask) or task.distribute is None:
            continue
        for name in task.distribute.embedded_data:
            if content.embedded_data_field(name) is None:
                problems.append(
                    DocumentProblem(
                        f"tasks[{index}].distribute.embedded_data.{name}",
                        f"task {task.id!r}: embedded data field {name!r} is not declared in "
                        "this survey; declare it in the survey's embedded data so that the "
                        "response can carry it back",
                    )
                )
    return problems


def piped_text_problems(
    document: WorkflowDocument, content: SurveyContent
) -> list[DocumentProblem]:
    """Piped text of every task, checked against the survey, the event and the earlier tasks."""
    problems: list[DocumentProblem] = []
    earlier: list[str] = []
    for index, task in enumerate(document.tasks):
        problems += _template_problems(
            document.event.type, index, task.id, task_templates(task), content, earlier
        )
        earlier.append(task.id)
    return problems


def _template_problems(
    event_type: str,
    index: int,
    task_id: Any,
    templates: Iterable[tuple[str, str]],
    content: SurveyContent,
    earlier: list[str],
) -> list[DocumentProblem]:
    """The piped-text problems of one task's templates (`where`, `template`)."""
    allowed = PIPED_TEXT_NAMESPACES[event_type]
    problems: list[DocumentProblem] = []
    for where, template in templates:
        usable = (*allowed, "m", "l") if where in INVITATION_TEMPLATE_PATHS else allowed
        for found in piped_text.validate(template, content, usable, known_task_ids=earlier):
            character = found.position + 1
            problems.append(
                DocumentProblem(
                    f"tasks[{index}].{where}",
                    f"task {task_id!r}, {where}, character {character}: "
                    f"{found.reference}: {found.message}",
                    character,
                )
            )
    return problems


_TASK_ADAPTER: TypeAdapter[AnyTask] = TypeAdapter(Task)


def _salvaged_reference_problems(
    data: Mapping[str, Any], content: SurveyContent
) -> list[DocumentProblem]:
    """The reference problems of a document the schema refused, in the parts that can be read:
    each task that fits the schema is checked as usual; a task that does not has every piece of
    piped text in it checked where it stands; conditions that fit are checked too."""
    event = data.get("event")
    event_type = event.get("type") if isinstance(event, Mapping) else None
    if event_type not in EVENT_TYPES:
        return []  # which namespaces a task may use depends on the event
    problems: list[DocumentProblem] = []
    raw_tasks = data.get("tasks")
    earlier: list[str] = []
    for index, raw in enumerate(raw_tasks[:50] if isinstance(raw_tasks, list) else []):
        task_id = raw.get("id") if isinstance(raw, Mapping) else None
        try:
            task = _TASK_ADAPTER.validate_python(raw, strict=True)
            templates = task_templates(task)
        except ValidationError:
            templates = _raw_templates(raw)
        problems += _template_problems(event_type, index, task_id, templates, content, earlier)
        if isinstance(task_id, str):
            earlier.append(task_id)
    if data.get("conditions") is not None:
        try:
            conditions = ConditionGroup.model_validate(data["conditions"], strict=True)
        except ValidationError:
            conditions = None
        if conditions is not None:
            problems += _condition_problems(conditions, content, event_type)
    return problems


def _raw_templates(raw: Any, where: str = "") -> list[tuple[str, str]]:
    """Every text holding piped text in a task the schema refused, with its path in the task
    (constant mapping values are not piped text)."""
    if isinstance(raw, str):
        return [(where, raw)] if "${" in raw else []
    if isinstance(raw, Mapping):
        if raw.get("constant") is True:
            return []
        found: list[tuple[str, str]] = []
        for key, value in raw.items():
            if isinstance(key, str) and key not in ("id", "type"):
                found += _raw_templates(value, f"{where}.{key}" if where else key)
        return found
    if isinstance(raw, list):
        return [
            item for i, value in enumerate(raw) for item in _raw_templates(value, f"{where}[{i}]")
        ]
    return []


@dataclass(frozen=True)
class ConditionField:
    """A parsed condition field: `q://QID5/row/2/recode` is ("q", "QID5", "row_recode", "2")."""

    namespace: Literal["q", "e", "m", "event"]
    name: str
    part: AnswerPart = "value"
    item: str | None = None  # choice id for "text", row id for "row" / "row_recode"


_Q_FIELD_RE = re.compile(rf"^q://{ANSWER_FIELD_PATTERN}$")
_NAMED_FIELD_RE = re.compile(r"^(?P<ns>e|event)://Field/(?P<name>[^/{}$\x00-\x1f]{1,200})$")
_METADATA_FIELD_RE = re.compile(r"^m://(?P<name>[A-Za-z][A-Za-z0-9_]{0,79})$")


def parse_condition_field(field: str) -> ConditionField | None:
    """Parse a condition field (see the module docstring); None if it is not one."""
    if not isinstance(field, str):
        return None
    if match := _Q_FIELD_RE.match(field):
        return ConditionField("q", match["qid"], *answer_part(match))
    if match := _NAMED_FIELD_RE.match(field):
        return ConditionField("e" if match["ns"] == "e" else "event", match["name"])
    if match := _METADATA_FIELD_RE.match(field):
        return ConditionField("m", match["name"])
    return None


def condition_problems(document: WorkflowDocument, content: SurveyContent) -> list[DocumentProblem]:
    """Condition fields that name no question, embedded data or field this workflow has."""
    if document.conditions is None:
        return []
    return _condition_problems(document.conditions, content, document.event.type)


def _condition_problems(
    conditions: ConditionGroup, content: SurveyContent, event_type: str
) -> list[DocumentProblem]:
    return [
        DocumentProblem(f"{path}.field", message)
        for path, condition in conditions_with_paths(conditions, "conditions")
        if (message := condition_field_problem(condition, content, event_type))
    ]


def condition_field_problem(
    condition: Condition, content: SurveyContent, event_type: str
) -> str | None:
    """Why a condition's field (and, for choices, its value) does not fit the survey, or None."""
    field = parse_condition_field(condition.field)
    allowed = CONDITION_NAMESPACES.get(event_type, ())
    if field is None:
        return (
            f"{_short(condition.field)} is not a condition field; use q://QID1, q://QID1/recode, "
            "q://QID1/text, q://QID1/text/<choice id>, q://QID1/row/<row id>, "
            "e://Field/<name>, m://<name> or event://Field/<name>"
        )
    if field.namespace not in allowed:
        usable = ", ".join(f"{n}://" for n in allowed)
        return f"a {event_type} workflow cannot test {field.namespace}:// fields; use {usable}"
    if field.namespace == "event":
        return None  # the message's fields are known only when Salesforce sends one
    if field.namespace == "m":
        if field.name == "Channel":
            return _channel_value_problem(condition)
        if field.name in RESPONSE_METADATA_FIELDS:
            return None
        return f"'{field.name}' is not response metadata; use one of: " + ", ".join(
            RESPONSE_METADATA_FIELDS
        )
    if field.namespace == "e":
        if field.name in piped_text.METADATA_FIELDS or content.embedded_data_field(field.name):
            return None
        return f"embedded data field '{field.name}' is not declared in this survey"
    return _question_field_problem(field, condition, content)


def _channel_value_problem(condition: Condition) -> str | None:
    """`m://Channel` compares with channel names: a typo would make a condition that never
    (or always) holds, so it is refused."""
    if condition.operator not in ("equals", "not_equals", "in_list", "not_in_list"):
        if condition.operator in ("is_empty", "is_not_empty"):
            return None
        return "m://Channel is tested with equals, not_equals, in_list or not_in_list"
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    for value in values:
        if value not in RESPONSE_CHANNELS:
            return f"'{_short(value)}' is not a channel; use one of: " + ", ".join(
                RESPONSE_CHANNELS
            )
    return None


def _question_field_problem(
    field: ConditionField, condition: Condition, content: SurveyContent
) -> str | None:
    qid = field.name
    question = content.question(qid)
    if question is None:
        return f"{qid} does not exist in this survey"
    if isinstance(question, DescriptiveQuestion):
        return f"{qid} is descriptive text and has no answer"
    is_choice = isinstance(question, ChoiceQuestion)
    if isinstance(question, MatrixQuestion):
        if field.part == "text" and field.item:
            row = question.row(field.item)
            if row is None or not row.allow_text_entry:
                return f"row '{field.item}' of {qid} has no text box"
            return None
        if field.part not in ("row", "row_recode"):
            return f"{qid} is a matrix; name a row, such as q://{qid}/row/<row id>"
        if question.row(field.item or "") is None:
            return f"{qid} has no row '{field.item}'"
        if field.part == "row":
            return _ids_problem(condition, {s.id for s in question.scale}, qid, "scale point")
        return None
    if field.part in ("row", "row_recode"):
        return f"{qid} is not a matrix and has no rows"
    if field.part == "text":
        if isinstance(question, TextEntryQuestion) and field.item is None:
            return None
        if not is_choice:
            return f"{qid} has no choices with a text box; use q://{qid}"
        if field.item is None:
            if any(c.allow_text_entry for c in question.choices):
                return None
            return f"no choice of {qid} has a text box"
        choice = question.choice(field.item)
        if choice is None or not choice.allow_text_entry:
            return f"choice '{field.item}' of {qid} has no text box"
        return None
    if field.part == "recode" and isinstance(question, TextEntryQuestion):
        return f"{qid} is a text entry question and has no recode"
    if field.part == "value" and is_choice:
        return _ids_problem(condition, {c.id for c in question.choices}, qid, "choice")
    return None


def _ids_problem(condition: Condition, ids: set[str], qid: str, what: str) -> str | None:
    # Only where the value names an item: emptiness has no value, and numeric comparisons of
    # ids are unusual but meaningful.
    if condition.operator in EMPTINESS_OPERATORS or condition.operator in NUMERIC_OPERATORS:
        return None
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    for value in values:
        if isinstance(value, bool) or str(value) not in ids:
            listed = ", ".join(sorted(ids)[:20])
            return f"{qid} has no {what} {_short(value)} (compare with {what} ids: {listed})"
    return None


# -- text: YAML and JSON ------------------------------------------------------------------------


class DocumentTextError(WorkflowDocumentError):
    """The text is no document at all: not YAML or JSON, not UTF-8, or empty."""


def load_text(text: str | bytes, syntax: Literal["auto", "json", "yaml"] = "auto") -> Any:
    """Parse a document written as YAML or JSON (`auto`: JSON if it parses as JSON, else YAML).

    Raises `DocumentTextError` when the text is not a document, `WorkflowDocumentError` when it
    is too large. Safe YAML without anchors/aliases (which only serve to blow up a hostile
    document) and without duplicate keys (the second would silently win); JSON without NaN,
    Infinity or duplicate keys.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise WorkflowDocumentError([too_large_problem()])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DocumentTextError(
                [DocumentProblem("", "the document is not UTF-8 text")]
            ) from None
    if not text.strip():
        raise DocumentTextError([DocumentProblem("", "the document is empty")])
    if syntax == "json" or (syntax == "auto" and text.lstrip().startswith("{")):
        try:
            return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as exc:
            if syntax == "json":
                raise DocumentTextError(
                    [DocumentProblem("", f"the document is not valid JSON: {exc}")]
                ) from None
            # perhaps YAML's flow style ({name: x}); YAML says what is wrong if not
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise DocumentTextError(
            [DocumentProblem("", f"the document is not valid YAML or JSON: {yaml_problem(exc)}")]
        ) from None


def dump_yaml(document: Mapping[str, Any]) -> str:
    """The document as YAML, keys in the order stored; `load_text` gives the same data back."""
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def document_size(document: Any) -> int:
    """How many bytes the document takes as compact JSON (what a size limit is measured on)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=repr)
    return len(text.encode())


def too_large_problem() -> DocumentProblem:
    """The problem reported for a document over MAX_DOCUMENT_BYTES."""
    return DocumentProblem(
        "", f"the document is larger than {MAX_DOCUMENT_BYTES // 1000} kB; split the workflow"
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice")
        result[key] = value
    return result


class _Loader(NoAliasLoader):
    """Safe YAML without aliases and without duplicate keys; keys are the text written."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # a complex key; the schema refuses it with a path
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Safe YAML, multi-line text as literal blocks, awkward characters escaped."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # YAML 1.1 reads NEL, LS and PS as line breaks and a BOM as noise; only the double-quoted
    # style writes them as escapes that load back unchanged. Multi-line text (an email body)
    # reads and diffs best as a literal block; PyYAML falls back to quoting when it cannot.
    if any(char in data for char in "\x85\u2028\u2029\ufeff"):
        style: str | None = '"'
    elif "\n" in data:
        style = "|"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)
