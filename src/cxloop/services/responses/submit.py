"""Submitting responses whole (the API's POST): one at a time, or together (group commit).

The ledger matches every accepted response to its workflows inside the transaction that stores
it, before the commit; a group's response rows are written after the matching, together with
the runs it starts (`response_rows.inserts_together`: one round trip on PostgreSQL).
A submission gives back the response's row as stored (`StoredRow`), not an ORM object: the API
answers with its document (`response_document` reads either), and making a `Response` for
every row only to return it cost about a fifth of the writer's CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cxloop.db.base import utcnow
from cxloop.db.models import Response
from cxloop.db.response_rows import detached_response, insert_response_rows, inserts_together
from cxloop.db.uow import Database, core_connection
from cxloop.errors import CxloopError
from cxloop.services import users
from cxloop.services.access import Actor, SurveyAccess
from cxloop.services.responses.errors import check_accepting, invalid_response
from cxloop.services.responses.plan import ResponseDocument, ResponsePlan, Source, parse_document
from cxloop.services.survey_content import SurveyRef, content_for, survey_ref

# A stored response's row: every column of `responses`, as written.
StoredRow = dict[str, Any]


@dataclass(frozen=True)
class Submission:
    """One response submitted whole by `actor` (the API's single POST)."""

    actor: Actor
    survey_id: str
    document: Any
    source: Source = "api"
    # The revocation generation the actor's API token was remembered under, when the request
    # did not read it (`users.remembered_token`): the transaction that stores the response
    # compares it, and refuses the submission with `TokenCheckDue` when it differs. None: the
    # token was checked for this request (or there is no token).
    token_generation: int | None = None


def submit_response(
    db: Database, actor: Actor, survey_id: str, document: Any, *, source: Source = "api"
) -> Response:
    """Store one response submitted whole (editors and up; the survey must be active); the
    stored response, detached."""
    [outcome] = submit_responses(db, [Submission(actor, survey_id, document, source)])
    if isinstance(outcome, Exception):
        raise outcome
    return detached_response(outcome)


def submit_responses(
    db: Database, submissions: Sequence[Submission]
) -> list[StoredRow | Exception]:
    """Store responses submitted one by one, together in one transaction (group commit).

    Each submission is checked on its own and gets its own outcome, in order: the stored
    response's row, or the error that refused or failed it. The accepted ones commit together, each
    with its runs. Should that transaction fail, each is stored again in a transaction of its
    own, so that one culprit never costs the others their response.
    """
    try:
        return _submit_together(db, submissions)
    except Exception as exc:
        if len(submissions) == 1:
            return [exc]
    return [submit_responses(db, [one])[0] for one in submissions]


def _submit_together(
    db: Database, submissions: Sequence[Submission]
) -> list[StoredRow | Exception]:
    with db.uow() as uow:
        outcomes = _check_submissions(uow.session, submissions)
        rows = [outcome for outcome in outcomes if isinstance(outcome, dict)]
        if rows:
            # The responses, their runs and task runs in one round trip on PostgreSQL.
            with inserts_together(core_connection(uow.session)):
                insert_response_rows(uow.session, rows)
                uow.ledger.record_response_events(uow, rows, "created")
            uow.commit()
    return outcomes


def _check_submissions(
    session: Session, submissions: Sequence[Submission]
) -> list[StoredRow | Exception]:
    """The row to insert for each submission, or the error that refuses it."""
    surveys: dict[tuple[str, str], SurveyRef | CxloopError] = {}
    plans: dict[str, ResponsePlan] = {}
    now = utcnow()
    outcomes: list[StoredRow | Exception] = []
    generation = None
    if any(submission.token_generation is not None for submission in submissions):
        # One read for the group, in the transaction that stores it: a token revoked before
        # this read cannot store anything (a revocation bumps the generation as it commits).
        generation = users.revocation_generation(session)
    for submission in submissions:
        if submission.token_generation not in (None, generation):
            outcomes.append(users.TokenCheckDue())
            continue
        key = (submission.survey_id, submission.actor.id)
        try:
            if key not in surveys:
                try:
                    surveys[key] = survey_ref(
                        session, submission.survey_id, submission.actor, SurveyAccess.EDIT
                    )
                except CxloopError as exc:
                    surveys[key] = exc
            survey = surveys[key]
            if isinstance(survey, CxloopError):
                raise survey
            doc = parse_document(ResponseDocument, submission.document)
            check_accepting(survey)
            plan = plans.get(survey.id)
            if plan is None:
                plan = plans[survey.id] = ResponsePlan(
                    survey.id, content_for(session, survey), survey.language
                )
            problems = plan.problems(doc)
            if problems:
                raise invalid_response(problems)
            outcomes.append(plan.row(doc, source=submission.source, now=now, response_id=doc.id))
        except CxloopError as exc:
            outcomes.append(exc)
    return outcomes
