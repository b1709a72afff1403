"""What the builder's pickers offer: the owner's accounts, objects and fields from describe,
condition fields (questions by text with QID, their parts, embedded data, response metadata,
the outbound message's fields), operators by field type, and piped text to insert."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cxloop.domain.conditions import OPERATORS
from cxloop.domain.survey_content import RESPONSE_CHANNELS, SurveyContent
from cxloop.domain.workflow import RESPONSE_METADATA_FIELDS
from cxloop.errors import Forbidden
from cxloop.services import survey_content, workflow_builder, workflows
from cxloop.services.workflow_builder import OrgCatalogue, SalesforceField
from cxloop.web.ui.accounts import STATUS_LABELS as ACCOUNT_STATUS_LABELS
from cxloop.web.ui.context import PageContext
from cxloop.web.ui.i18n import N_

OPERATOR_LABELS = MappingProxyType(
    {
        "equals": N_("equals"),
        "not_equals": N_("does not equal"),
        "less_than": N_("is less than"),
        "less_or_equal": N_("is at most"),
        "greater_than": N_("is greater than"),
        "greater_or_equal": N_("is at least"),
        "contains": N_("contains"),
        "not_contains": N_("does not contain"),
        "is_empty": N_("is empty"),
        "is_not_empty": N_("is not empty"),
        "in_list": N_("is one of"),
        "not_in_list": N_("is none of"),
    }
)
# Shown translated: a run's status on the tab.
STATUS_LABELS = MappingProxyType(
    {
        "pending": N_("pending"),
        "running": N_("running"),
        "succeeded": N_("succeeded"),
        "failed": N_("failed"),
        "paused": N_("paused"),
        "skipped": N_("skipped"),
    }
)
TEXT_OPERATORS = (
    "equals", "not_equals", "contains", "not_contains", "is_empty", "is_not_empty", "in_list",
    "not_in_list",
)  # fmt: skip
CHOICE_OPERATORS = ("equals", "not_equals", "is_empty", "is_not_empty", "in_list", "not_in_list")
OPERATORS_BY_KIND = MappingProxyType(
    {"number": OPERATORS, "text": TEXT_OPERATORS, "choice": CHOICE_OPERATORS}
)
METADATA_KINDS = MappingProxyType({"Duration": "number", "Finished": "choice", "Channel": "choice"})
NUMBER_TYPES = ("double", "currency", "int", "percent", "long")


@dataclass(frozen=True)
class Option:
    """One entry of a picker: its value, its label, and its group."""

    value: str
    label: str
    group: str = ""
    kind: str = "text"
    values: tuple[tuple[str, str], ...] = ()  # what a condition on it may compare with


@dataclass
class BuilderChoices:
    """Everything the builder's template offers, for one state of the form."""

    connections: list[tuple[str, str, str]]  # (name, label, status)
    catalogues: dict[str, OrgCatalogue]  # by connection name
    condition_fields: list[Option]
    insert_options: dict[int, list[Option]]  # by task index (earlier tasks' outputs differ)
    event_fields: list[Option]
    field_names: set[str] = field(default_factory=set)
    operator_labels: dict[str, str] = field(default_factory=lambda: dict(OPERATOR_LABELS))
    # The survey owner's own accounts, for their ⋯ menus (only the owner sees them).
    owned_accounts: list[Any] = field(default_factory=list)

    def catalogue(self, connection: str | None) -> OrgCatalogue | None:
        return self.catalogues.get(connection or "")

    def fields_of(self, connection: str | None, sobject: str | None) -> list[SalesforceField]:
        catalogue = self.catalogue(connection)
        if catalogue is None or not sobject:
            return []
        for name, found in catalogue.fields.items():
            if name.lower() == sobject.lower():
                return found
        return []

    def field_info(
        self, connection: str | None, sobject: str | None, name: str | None
    ) -> SalesforceField | None:
        for found in self.fields_of(connection, sobject):
            if name and found.name.lower() == name.lower():
                return found
        return None

    def values_for(self, field_value: str | None) -> tuple[tuple[str, str], ...]:
        """The values a condition on this field can hold (choice ids, channels), if known."""
        return next((o.values for o in self.condition_fields if o.value == field_value), ())

    def operators_for(self, field_value: str | None) -> list[str]:
        kind = next((o.kind for o in self.condition_fields if o.value == field_value), "number")
        return list(OPERATORS_BY_KIND.get(kind, OPERATORS))

    def place(self, errors: dict[str, str]) -> dict[str, list[str]]:
        """Each problem at the input its path names, else at the nearest enclosing part of the
        form that has a place for messages (a task, the conditions, the event, the form)."""
        placed: dict[str, list[str]] = {}
        for path, message in errors.items():
            anchor = path
            while anchor and anchor not in self.field_names:
                anchor = _parent(anchor)
            if anchor.startswith("conditions") and f"{anchor}.value" in self.field_names:
                anchor = f"{anchor}.value"  # a condition's problem is its value's (the schema's)
            placed.setdefault(anchor, []).append(message)
        return placed


# What the error summary calls an input (its label), by the last part of its path.
PART_LABELS = MappingProxyType(
    {
        "name": N_("Name"),
        "description": N_("Description"),
        "when": N_("Start when a response is"),
        "connection": N_("Account"),
        "object": N_("Object"),
        "allowed_ips": N_("Allowed IP ranges"),
        "join": N_("Join"),
        "field": N_("Field"),
        "operator": N_("Operator"),
        "value": N_("Value"),
        "id": N_("Task id"),
        "action": N_("Action"),
        "key_field": N_("Key field"),
        "key_value": N_("Record to change"),
        "mappings": N_("Field mappings"),
        "source_type": N_("Value type"),
        "directory": N_("Directory"),
        "mailing_list": N_("Mailing list"),
        "email": N_("Contact email"),
        "first_name": N_("First name"),
        "last_name": N_("Last name"),
        "external_ref": N_("External reference"),
        "max_invitations": N_("Invitations at most"),
        "days": N_("Days"),
        "subject": N_("Subject"),
        "body": N_("Message"),
        "to": N_("To"),
        "cc": N_("Cc"),
        "link_expiry_days": N_("Link valid for (days)"),
        "embedded_data": N_("Data the link carries"),
    }
)


def path_label(page: PageContext, path: str) -> str:
    """Where an input is, in words: "Task 2 · Salesforce field", "Conditions · Value"."""
    parts: list[str] = []
    task = re.match(r"tasks\[(\d+)\]", path)
    if task:
        parts.append(page._("Task %(n)s", n=int(task.group(1)) + 1))
    elif path.startswith("conditions"):
        parts.append(page._("Conditions"))
    elif path.startswith("event"):
        parts.append(page._("Event"))
    last = re.sub(r"\[\d+\]$", "", path.rpartition(".")[2] or path)
    if ".mappings[" in path and last == "field":
        parts.append(page._("Salesforce field"))
    elif last in PART_LABELS and not re.fullmatch(r"tasks\[\d+\]", path):
        parts.append(page._(PART_LABELS[last]))
    return " · ".join(parts)


def field_label(page: PageContext, path: str) -> str:
    """The label of the input at `path` alone ("Value"), or the key itself if it has none."""
    last = re.sub(r"\[\d+\]$", "", path.rpartition(".")[2] or path)
    if ".mappings[" in path and last == "field":
        return page._("Salesforce field")
    if last in PART_LABELS:
        return page._(PART_LABELS[last])
    return last


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def builder_choices(
    page: PageContext, survey_id: str, state: dict[str, Any], survey: Any
) -> BuilderChoices:
    """The pickers' contents for this form (describe is cached by the container).

    Viewers get no list of the owner's connections and no reads of Salesforce: only the names
    the workflow itself already holds, shown read-only."""
    event = state.get("event") if isinstance(state.get("event"), dict) else {}
    tasks = [t for t in state.get("tasks") or [] if isinstance(t, dict)]
    owned: list[Any] = []
    try:
        owned = workflows.owner_connections(page.db, page.user, survey_id)
    except Forbidden:
        named = {str(p.get("connection")) for p in (event, *tasks) if p.get("connection")}
        connections = [(name, name, "") for name in sorted(named)]
    else:
        connections = [
            (
                c.name,
                f"{c.name} ({page._(ACCOUNT_STATUS_LABELS.get(c.status, c.status))})",
                c.status,
            )  # the Accounts page's words
            for c in owned
        ]
    wanted: dict[str, list[str]] = {}
    if event.get("type") == "salesforce_outbound_message" and event.get("connection"):
        wanted.setdefault(event["connection"], []).append(str(event.get("object") or ""))
    for task in tasks:
        if task.get("type") == "salesforce" and task.get("connection"):
            wanted.setdefault(task["connection"], []).append(str(task.get("object") or ""))
    catalogues = {
        name: workflow_builder.org_catalogue(
            page.db,
            page.container.settings,
            page.container.describe_cache,
            page.user,
            survey_id,
            name,
            objects,
        )
        for name, objects in wanted.items()
        if any(name == c[0] and c[2] for c in connections)  # a viewer's have no status
    }
    content = survey_content.get_content(page.db, page.user, survey_id).content
    outbound = event.get("type") == "salesforce_outbound_message"
    event_fields: list[Option] = []
    if outbound:
        catalogue = catalogues.get(str(event.get("connection") or ""))
        sobject = str(event.get("object") or "")
        described = []
        if catalogue is not None:
            described = next(
                (f for n, f in catalogue.fields.items() if n.lower() == sobject.lower()), []
            )
        event_group = page._("Fields of the outbound message")
        names = [f.name for f in described] or ["Id"]
        kinds = {f.name: "number" if f.type in NUMBER_TYPES else "text" for f in described}
        event_fields = [Option(n, n, event_group, kinds.get(n, "text")) for n in names]
    choices = BuilderChoices(
        connections=connections,
        catalogues=catalogues,
        condition_fields=_condition_fields(page, content, outbound, event_fields),
        insert_options={},
        event_fields=event_fields,
        owned_accounts=owned if survey.owner_id == page.user.id else [],
    )
    for index in range(len(tasks)):
        choices.insert_options[index] = _insert_options(
            page, content, outbound, event_fields, [str(t.get("id") or "") for t in tasks[:index]]
        )
    choices.field_names = _field_names(state)
    return choices


def _condition_fields(
    page: PageContext, content: SurveyContent, outbound: bool, event_fields: list[Option]
) -> list[Option]:
    options: list[Option] = []
    questions = page._("Questions")
    if not outbound:
        for question in content.questions:
            kind = question.type
            if kind == "descriptive":
                continue
            text = _short(question.plain_text())
            label = f"{text} ({question.qid})"
            if kind in ("nps", "rating"):
                options.append(Option(f"q://{question.qid}", label, questions, "number"))
            elif kind == "text_entry":
                options.append(Option(f"q://{question.qid}", label, questions, "text"))
            elif kind in ("single_choice", "multiple_choice"):
                ids = tuple(
                    (c.id, f"{c.id}: {_short(c.plain_text(), 40)}") for c in question.choices
                )
                options.append(Option(f"q://{question.qid}", label, questions, "choice", ids))
                options.append(
                    Option(
                        f"q://{question.qid}/recode",
                        page._("%(q)s: recode value", q=label), questions, "number",
                    )
                )  # fmt: skip
                options += [
                    Option(
                        f"q://{question.qid}/text/{choice.id}",
                        page._(
                            "%(q)s: text entered for %(choice)s",
                            q=label,
                            choice=_short(choice.plain_text(), 30),
                        ),
                        questions,
                        "text",
                    )
                    for choice in question.choices
                    if choice.allow_text_entry
                ]
            elif kind == "matrix":
                scale = tuple(
                    (p.id, f"{p.id}: {_short(p.plain_text(), 40)}") for p in question.scale
                )
                options += [
                    Option(
                        f"q://{question.qid}/row/{row.id}",
                        f"{label}: {_short(row.plain_text(), 30)}",
                        questions,
                        "choice",
                        scale,
                    )
                    for row in question.rows
                ]
    embedded = page._("Embedded data")
    options += [Option(f"e://Field/{f.name}", f.name, embedded) for f in content.embedded_data]
    if outbound:
        options += [Option(f"event://Field/{o.value}", o.label, o.group, o.kind)
                    for o in event_fields]  # fmt: skip
    else:
        metadata = page._("Response metadata")
        known = {
            "Channel": tuple((c, c) for c in RESPONSE_CHANNELS),
            "Finished": (("true", "true"), ("false", "false")),
        }
        options += [
            Option(
                f"m://{name}",
                name,
                metadata,
                METADATA_KINDS.get(name, "text"),
                known.get(name, ()),
            )
            for name in RESPONSE_METADATA_FIELDS
        ]
    return options


def _insert_options(
    page: PageContext,
    content: SurveyContent,
    outbound: bool,
    event_fields: list[Option],
    earlier_tasks: list[str],
) -> list[Option]:
    options: list[Option] = []
    if not outbound:
        questions = page._("Questions")
        for question in content.questions:
            if question.type == "descriptive":
                continue
            label = f"{_short(question.plain_text())} ({question.qid})"
            qid = question.qid
            if question.type == "text_entry":
                options.append(Option(f"${{q://{qid}/ChoiceTextEntryValue}}", label, questions))
            elif question.type == "matrix":
                options += [
                    Option(
                        f"${{q://{qid}/ChoiceGroup/SelectedAnswers/{row.id}}}",
                        f"{label}: {_short(row.plain_text(), 30)}",
                        questions,
                    )
                    for row in question.rows
                ]
            else:
                options.append(
                    Option(f"${{q://{qid}/ChoiceGroup/SelectedChoices}}", label, questions)
                )
                if question.type in ("single_choice", "multiple_choice"):
                    options.append(
                        Option(
                            f"${{q://{qid}/ChoiceGroup/SelectedChoicesRecode}}",
                            page._("%(q)s: recode value", q=label), questions,
                        )
                    )  # fmt: skip
    embedded = page._("Embedded data")
    options += [Option(f"${{e://Field/{f.name}}}", f.name, embedded) for f in content.embedded_data]
    if outbound:
        options += [Option(f"${{event://Field/{o.value}}}", o.label, o.group) for o in event_fields]
    else:
        response = page._("Response")
        options += [
            Option(f"${{e://Field/{name}}}", name, response)
            for name in ("ResponseID", "RecordedDate", "RecipientEmail", "DistributionChannel")
        ]
    outputs = page._("Earlier tasks")
    options += [
        Option(f"${{task://{task_id}/Id}}", page._("Id from task %(task)s", task=task_id), outputs)
        for task_id in earlier_tasks
        if task_id
    ]
    options.append(Option("${date://CurrentDate/Y-m-d}", page._("Today's date"), page._("Date")))
    return options


def _field_names(state: dict[str, Any]) -> set[str]:
    """The inputs (and places for messages) the builder renders for this state: a problem's
    path is shown at the longest of these it starts with."""
    names = {"", "name", "description", "on_task_failure", "event", "event.type", "conditions",
             "tasks"}  # fmt: skip
    event = state.get("event") if isinstance(state.get("event"), dict) else {}
    if event.get("type") == "salesforce_outbound_message":
        names |= {f"event.{k}" for k in ("connection", "object", "verify_session_id",
                                          "allowed_ips")}  # fmt: skip
    else:
        names |= {f"event.{k}" for k in ("when", "include_imported", "include_incomplete")}

    def group(path: str, node: Any) -> None:
        names.add(path)
        names.add(f"{path}.join")
        for index, child in enumerate((node or {}).get("conditions") or []):
            child_path = f"{path}.conditions[{index}]"
            if isinstance(child, dict) and "join" in child:
                group(child_path, child)
            else:
                names.update({child_path, f"{child_path}.field", f"{child_path}.operator",
                              f"{child_path}.value"})  # fmt: skip

    group("conditions", state.get("conditions") if isinstance(state.get("conditions"), dict)
          else {})  # fmt: skip
    for index, task in enumerate(state.get("tasks") or []):
        if not isinstance(task, dict):
            continue
        path = f"tasks[{index}]"
        names |= {path, f"{path}.id", f"{path}.name", f"{path}.type"}
        kind = task.get("type")
        if kind == "salesforce":
            names |= {f"{path}.{k}" for k in ("connection", "object", "action", "key_field",
                                              "key_value", "mappings")}  # fmt: skip
            for row in range(len(task.get("mappings") or [])):
                row_path = f"{path}.mappings[{row}]"
                names |= {row_path, *(f"{row_path}.{k}" for k in ("field", "value", "source_type"))}
        elif kind == "directory":
            names |= {f"{path}.{k}" for k in ("directory", "match_on", "mailing_list",
                                              "contact", "distribute", "frequency")}  # fmt: skip
            names |= {f"{path}.contact.{k}" for k in ("email", "first_name", "last_name",
                                                      "external_ref")}  # fmt: skip
            names |= {
                f"{path}.distribute.{k}"
                for k in ("subject", "body", "link_expiry_days", "embedded_data")
            }
            names |= {f"{path}.frequency.{k}" for k in ("max_invitations", "days")}
        elif kind == "email":
            names |= {f"{path}.{k}" for k in ("to", "cc", "subject", "body")}
    return names


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
