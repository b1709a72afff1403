"""What refuses a response: the survey takes none now, or the response has problems."""

from __future__ import annotations

from typing import Any

from cxloop.db.models import Survey
from cxloop.domain.statuses import SurveyStatus
from cxloop.errors import Conflict, InvalidInput
from cxloop.services.survey_content import SurveyRef

# How many of a response's problems the error's message names (`details` has them all).
SHOWN_PROBLEMS = 5


class SurveyNotAccepting(Conflict):
    """The survey takes no responses now: it is a draft (not open yet) or closed."""

    def __init__(self, survey: Survey | SurveyRef) -> None:
        if survey.status == SurveyStatus.CLOSED:
            super().__init__(
                f"Survey {survey.id!r} is closed and takes no more responses.",
                code="survey_closed",
            )
        else:
            super().__init__(
                f"Survey {survey.id!r} is not open yet (status {survey.status}): set its status "
                "to active to collect responses.",
                code="survey_not_open",
            )


def check_accepting(survey: Survey | SurveyRef) -> None:
    """Refuse responses unless the survey is active."""
    if survey.status != SurveyStatus.ACTIVE:
        raise SurveyNotAccepting(survey)


def problem(qid: str | None, code: str, message: str, field: str | None = None) -> dict:
    """One problem of a response, as `InvalidInput.details` lists it."""
    return {"qid": qid, "code": code, "message": message, "field": field}


def invalid_response(problems: list[dict[str, Any]]) -> InvalidInput:
    """The error refusing a response, naming its first problems."""
    shown = "; ".join(
        f"{p['qid']}: {p['message']}" if p.get("qid") else p["message"]
        for p in problems[:SHOWN_PROBLEMS]
    )
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    return InvalidInput(
        f"The response has {len(problems)} problem(s): {shown}{more}",
        code="invalid_response",
        details=problems,
    )
