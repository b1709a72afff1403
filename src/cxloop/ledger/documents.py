"""Parsed documents, cached by version: workflow revisions and survey contents.

A workflow revision and a survey's content at a version never change meaning, so their parsed
form is kept until the cache is full (no time to live). The caches belong to the ledger the
container builds; two containers in one process never share them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from cxloop.caching import TtlCache
from cxloop.db.models import Survey
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import WorkflowDocument, parse_document

# Parsed revisions and contents kept per process; each is some kB to some hundred kB.
DOCUMENT_ENTRIES = 1024
CONTENT_ENTRIES = 256

_SURVEY_CONTENT = select(Survey.content, Survey.content_version).where(
    Survey.id == bindparam("survey_id")
)


class WorkflowDocuments:
    """Workflow documents parsed once per (workflow id, revision)."""

    def __init__(self, max_entries: int = DOCUMENT_ENTRIES) -> None:
        self._parsed: TtlCache[tuple[str, int], WorkflowDocument] = TtlCache(max_entries)

    def parse(self, workflow_id: str, revision: int, document: Any) -> WorkflowDocument:
        """The parsed document of a workflow revision, parsed the first time only."""
        return self._parsed.get_or_set((workflow_id, revision), lambda: parse_document(document))

    def parsed(self, workflow_id: str, revision: int) -> WorkflowDocument | None:
        """The document of a workflow revision if it was parsed already."""
        return self._parsed.get((workflow_id, revision))


class SurveyContents:
    """Survey contents parsed once per (survey id, content version): the one owner of parsed
    survey content (responses, respondents, the matcher, workers all read through it)."""

    def __init__(self, max_entries: int = CONTENT_ENTRIES) -> None:
        self._parsed: TtlCache[tuple[str, int], SurveyContent] = TtlCache(max_entries)

    def get(self, survey_id: str, version: int | None) -> SurveyContent | None:
        """The parsed content at that version, if it is here."""
        return self._parsed.get((survey_id, version or 0))

    def put(self, survey_id: str, version: int | None, content: SurveyContent) -> None:
        """Keep `content` as the survey's content at `version` (just saved, or just parsed)."""
        self._parsed.set((survey_id, version or 0), content)

    def parse(self, survey_id: str, version: int | None, document: Any) -> SurveyContent:
        """The content at `version` from its stored document, parsed the first time only."""
        content = self.get(survey_id, version)
        if content is None:
            content = SurveyContent.model_validate(document, strict=True)
            self.put(survey_id, version, content)
        return content

    def of(self, survey: Survey) -> SurveyContent | None:
        """The survey's content (None if it has none). The version is checked first: the
        document is a deferred column, loaded only when this version was not parsed yet."""
        content = self.get(survey.id, survey.content_version)
        if content is not None:
            return content
        if not survey.content:
            return None
        return self.parse(survey.id, survey.content_version, survey.content)

    def by_version(
        self, session: Session, survey_id: str, content_version: int | None
    ) -> SurveyContent | None:
        """The survey's content at `content_version` (cached; else read and parsed once).

        The version is read back with the document, so a change saved in between is cached
        under its own version, never under the one asked for.
        """
        content = self.get(survey_id, content_version)
        if content is not None:
            return content
        row = session.execute(_SURVEY_CONTENT, {"survey_id": survey_id}).first()
        if row is None or not row.content:
            return None
        return self.parse(survey_id, row.content_version, row.content)
