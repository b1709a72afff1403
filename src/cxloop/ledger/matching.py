"""Matching events to workflows: the facts of a response, whether a workflow starts, and why not.

The matcher takes plain facts (a row as written, or a `Response`), never ORM state, so the
writers of responses may insert rows any way they like. `response_start_decision` is the one
rule of whether a response event starts a workflow; the matcher and the dry run both ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from cxloop.domain.answers import resolve_answer_field
from cxloop.domain.conditions import evaluate
from cxloop.domain.piped_text import PipedTextContext, render_value
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import (
    ConditionField,
    SurveyResponseEvent,
    WorkflowDocument,
    parse_condition_field,
)


class ResponseFacts(NamedTuple):
    """What matching a response needs to know of it: its stored columns, nothing of the ORM."""

    id: str
    survey_id: str
    source: str
    finished: bool
    updated_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: int | None
    channel: str | None
    language: str | None
    distribution_id: str | None
    contact_id: str | None
    values: dict[str, Any]
    embedded_data: dict[str, Any]

    @classmethod
    def of(cls, response: Any) -> ResponseFacts:
        """The facts of a response row (a mapping of its columns) or of a `Response`."""
        if isinstance(response, ResponseFacts):
            return response
        get: Callable[[str], Any] = (
            response.get if isinstance(response, Mapping) else lambda n: getattr(response, n)
        )
        return cls(
            get("id"),
            get("survey_id"),
            get("source"),
            bool(get("finished")),
            get("updated_at"),
            get("started_at"),
            get("ended_at"),
            get("duration_s"),
            get("channel"),
            get("language"),
            get("distribution_id"),
            get("contact_id"),
            get("values") or {},
            get("embedded_data") or {},
        )


def survey_id_of(response: Any) -> str:
    """The survey of a response row or `Response` (what the matcher groups by)."""
    return response["survey_id"] if isinstance(response, Mapping) else response.survey_id


class StartDecision(NamedTuple):
    """Whether an event starts a workflow, and if not, why (in words a person can act on)."""

    starts: bool
    why_not: tuple[str, ...] = ()


STARTS = StartDecision(True)
_NOT = StartDecision(False)


def response_event_key(response: ResponseFacts, event: str) -> str:
    """What deduplicates a response event's runs: each update is an event of its own."""
    if event == "created":
        return f"response:{response.id}:created"
    updated_at = response.updated_at.isoformat() if response.updated_at else ""
    return f"response:{response.id}:updated:{updated_at}"


def response_start_decision(
    document: WorkflowDocument,
    content: SurveyContent | None,
    response: ResponseFacts,
    event: str,
    *,
    explain: bool = False,
) -> StartDecision:
    """Whether this response event starts the workflow: its event (the kind, `when`, imported,
    incomplete), then its conditions. The one rule: the matcher and the dry run both use it.

    The matcher asks for a yes or no (it stops at the first reason); with `explain` every
    reason is given, as the dry run shows them.
    """
    why_not: list[str] = []
    spec = document.event
    if not isinstance(spec, SurveyResponseEvent):
        return StartDecision(
            False,
            (
                "the workflow starts on Salesforce outbound messages, not on responses: try it "
                "on a record's fields instead",
            ),
        )
    if event not in spec.when:
        if not explain:
            return _NOT
        why_not.append(
            f"the workflow starts when a response is {' or '.join(spec.when)}, not {event}"
        )
    if response.source == "import" and not spec.include_imported:
        if not explain:
            return _NOT
        why_not.append("the response was imported and the workflow leaves imported ones out")
    if not response.finished and not spec.include_incomplete:
        if not explain:
            return _NOT
        why_not.append("the response is incomplete and the workflow leaves those out")
    if document.conditions is not None and not evaluate(
        document.conditions, response_field_resolver(content, response)
    ):
        if not explain:
            return _NOT
        why_not.append("the conditions do not hold for this response")
    return StartDecision(not why_not, tuple(why_not))


def response_metadata(response: Any) -> dict[str, Any]:
    """The response's metadata under the names piped text and conditions use."""
    return {
        "ResponseID": response.id,
        "SurveyID": response.survey_id,
        "StartDate": response.started_at,
        "EndDate": response.ended_at,
        "Finished": response.finished,
        "Duration": response.duration_s,
        "Source": response.source,
        "Channel": response.channel,
        "Language": response.language,
        "DistributionID": response.distribution_id,
        "ContactID": response.contact_id,
    }


def response_field_resolver(content: SurveyContent | None, response: Any) -> Callable[[str], Any]:
    """How workflow conditions read a response (field syntax in domain/workflow.py); the
    response is `ResponseFacts` or anything with the same attributes (a `Response`)."""
    metadata = response_metadata(response)
    answers = response.values or {}
    context = PipedTextContext(
        survey_content=content,
        answers=answers,
        embedded_data=response.embedded_data or {},
        metadata=metadata,
    )

    def read(parsed: ConditionField) -> Any:
        if parsed.namespace == "m":
            return metadata.get(parsed.name)
        if parsed.namespace != "q" or content is None:
            return None
        if parsed.part == "text" and parsed.item is None:
            return _entered_text(content, answers, parsed.name)
        suffix = {
            "value": "",
            "recode": "/recode",
            "text": f"/text/{parsed.item}",
            "row": f"/row/{parsed.item}",
            "row_recode": f"/row/{parsed.item}/recode",
        }[parsed.part]
        return resolve_answer_field(content, answers, parsed.name + suffix)

    return _resolver(context, read)


def event_field_resolver(survey_id: str, fields: dict[str, Any]) -> Callable[[str], Any]:
    """How workflow conditions read an outbound message's record.

    `event://Field/X` is the record's field X. `e://Field/X` reads what piped text's
    `${e://Field/X}` gives for such a run (the engine's run context: the record's fields are
    `event`, and there is no embedded data yet), so a condition and a template agree.
    """
    context = PipedTextContext(event_fields=fields, metadata={"SurveyID": survey_id})

    def read(parsed: ConditionField) -> Any:
        return fields.get(parsed.name) if parsed.namespace == "event" else None

    return _resolver(context, read)


def _resolver(
    context: PipedTextContext, read: Callable[[ConditionField], Any]
) -> Callable[[str], Any]:
    """A condition field resolver: `e://Field/X` is what piped text's `${e://Field/X}` gives in
    `context` (embedded data, ResponseID, RecordedDate, ...); `read` takes the other namespaces.
    A field that does not parse reads as None."""

    def resolve(field: str) -> Any:
        parsed = parse_condition_field(field)
        if parsed is None:
            return None
        if parsed.namespace == "e":
            return render_value(f"${{e://Field/{parsed.name}}}", context)
        return read(parsed)

    return resolve


def outbound_conditions_hold(
    document: WorkflowDocument, survey_id: str, fields: Mapping[str, Any]
) -> bool:
    """Whether an outbound message's record meets the workflow's conditions."""
    if document.conditions is None:
        return True
    return evaluate(document.conditions, event_field_resolver(survey_id, dict(fields)))


def _entered_text(content: SurveyContent, answers: dict[str, Any], qid: str) -> Any:
    """`q://QIDn/text`: a text entry's answer, or the "other, please specify" texts."""
    question = content.question(qid)
    if question is not None and question.type == "text_entry":
        return answers.get(qid)
    texts = [v for k, v in answers.items() if k.startswith(f"{qid}_") and k.endswith("_TEXT")]
    return texts or None
