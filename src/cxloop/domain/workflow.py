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
`q://QID5/row/1` (a matrix row), `e://Field/Name` (embedded data) and `m://Name` (metadata:
Finished, Source, Duration, Language...).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from cxloop.domain.conditions import ConditionGroup
from cxloop.domain.salesforce_task import SalesforceTaskSpec

TASK_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
TASK_REFERENCE = re.compile(r"\$\{task://([^/}]+)/[^}]*\}")

EventType = Literal["survey_response", "salesforce_outbound_message"]
ResponseEventKind = Literal["created", "updated"]
OnTaskFailure = Literal["continue", "stop"]


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
    """Salesforce sent an Outbound Message (a record-triggered Flow) to this workflow's URL."""

    type: Literal["salesforce_outbound_message"] = "salesforce_outbound_message"
    connection: str = Field(min_length=1, max_length=100)
    object: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


Event = Annotated[
    Annotated[SurveyResponseEvent, Tag("survey_response")]
    | Annotated[OutboundMessageEvent, Tag("salesforce_outbound_message")],
    Discriminator(lambda v: v.get("type") if isinstance(v, dict) else getattr(v, "type", None)),
]


class Lookup(_Model):
    """Set a reference field to the Id that a query finds, e.g. Contact by Email."""

    field: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    object: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    match_field: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
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
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$",
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


Task = Annotated[
    Annotated[SalesforceTask, Tag("salesforce")] | Annotated[EmailTask, Tag("email")],
    Discriminator(lambda v: v.get("type") if isinstance(v, dict) else getattr(v, "type", None)),
]


class WorkflowDocument(_Model):
    """A whole workflow."""

    format_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    event: Event
    conditions: ConditionGroup | None = None
    on_task_failure: OnTaskFailure = "stop"
    tasks: list[Task] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _check_tasks(self) -> WorkflowDocument:
        seen: list[str] = []
        for task in self.tasks:
            if task.id in seen:
                raise ValueError(f"two tasks have the id {task.id!r}; task ids must be unique")
            for referenced in sorted(task_references(task)):
                if referenced == task.id:
                    raise ValueError(f"task {task.id!r} refers to its own output")
                if referenced not in seen:
                    raise ValueError(
                        f"task {task.id!r} uses the output of {referenced!r}, which is not an "
                        "earlier task"
                    )
            seen.append(task.id)
        return self

    def task(self, task_id: str) -> SalesforceTask | EmailTask:
        return next(t for t in self.tasks if t.id == task_id)


def task_texts(task: SalesforceTask | EmailTask) -> list[tuple[str, str]]:
    """Every piped-text template of a task, with where it is (for validation messages)."""
    if isinstance(task, EmailTask):
        return [("to", task.to), ("cc", task.cc), ("subject", task.subject), ("body", task.body)]
    texts = [(f"mappings[{m.field}]", m.value) for m in task.mappings if not m.constant]
    texts += [(f"lookups[{lookup.field}]", lookup.value) for lookup in task.lookups]
    if task.key_value:
        texts.append(("key_value", task.key_value))
    return texts


def task_references(task: SalesforceTask | EmailTask) -> set[str]:
    """Ids of the earlier tasks whose output this task uses (`${task://ID/...}`)."""
    found: set[str] = set()
    for _where, text in task_texts(task):
        found.update(match.group(1) for match in TASK_REFERENCE.finditer(text))
    return found


def parse_document(data: Any) -> WorkflowDocument:
    """A workflow document from parsed JSON/YAML (raises pydantic.ValidationError)."""
    return WorkflowDocument.model_validate(data)


def to_document(workflow: WorkflowDocument) -> dict[str, Any]:
    """The document as plain data, leaving out what was not set, so exports stay as written."""
    return workflow.model_dump(mode="json", exclude_unset=True, by_alias=True)
