"""The respondent's pages, through real HTTP form posts: every question type, page by page."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from cxloop.bootstrap import Container
from cxloop.db.base import utcnow
from cxloop.db.models import PersonalLink
from cxloop.services.personal_links import create_personal_link
from tests.conftest import Person
from tests.integration.survey_helpers import all_types, hidden_fields, make_survey, quick_person

PAGE_1 = {"QID1": "9", "QID2": "4", "QID3": "4", "QID3_4_TEXT": "A letter", "QID4": ["1", "2"]}
PAGE_2 = {"QID6": "ann@example.com", "QID7": "3", "QID8": "Line one\nLine two"}
PAGE_3 = {"QID9[1]": "3", "QID9[2]": "2"}


class Respondent:
    """A browser without JavaScript: follows the hidden fields from page to page."""

    def __init__(self, client: TestClient, survey_id: str) -> None:
        self.client = client
        self.survey_id = survey_id
        self.fields: dict[str, str] = {}
        self.last: Any = None

    def open(self, query: str = "") -> Any:
        self.last = self.client.get(f"/s/{self.survey_id}{query}")
        self.fields = hidden_fields(self.last.text)
        return self.last

    def submit(self, answers: dict[str, Any], action: str = "next") -> Any:
        data = {**answers, **self.fields, "_action": action}
        self.last = self.client.post(f"/s/{self.survey_id}", data=data)
        self.fields = hidden_fields(self.last.text) or self.fields
        return self.last


def stored(client: TestClient, owner: Person, survey_id: str, **params: Any) -> list[dict]:
    reply = client.get(
        f"/api/v1/surveys/{survey_id}/responses", params=params, headers=owner.headers
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_every_question_type_answered_page_by_page(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    first = you.open("?CaseId=00001234&Unknown=ignored")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    assert "Page 1 of 3" in first.text
    assert "How likely are you to recommend us, case 00001234?" in text_of(first.text)
    # accessible structure: a fieldset and legend per question, inputs with labels
    assert first.text.count("<fieldset") == 4 and first.text.count("<legend") == 4
    assert '<label for="QID3-4">Other</label>' in first.text
    assert 'aria-label="Other: please specify"' in first.text

    second = you.submit(PAGE_1)
    assert second.status_code == 200, text_of(second.text)
    assert "Page 2 of 3" in second.text
    assert "You gave us 9." in text_of(second.text)  # piped from page 1
    assert 'type="email"' in second.text and 'inputmode="decimal"' in second.text
    assert "<textarea" in second.text

    third = you.submit(PAGE_2)
    assert "Page 3 of 3" in third.text and "Submit" in third.text
    assert "What should we do better" not in third.text  # QID10 only shows to detractors
    assert 'name="QID9[1]"' in third.text

    done = you.submit(PAGE_3)
    assert done.status_code == 200 and "Thank you!" in done.text

    [response] = stored(client, alice, survey_id)
    assert response["values"] == {
        "QID1": 9,
        "QID2": 4,
        "QID3": "4",
        "QID3_4_TEXT": "A letter",
        "QID4": ["1", "2"],
        "QID6": "ann@example.com",
        "QID7": "3",
        "QID8": "Line one\nLine two",
        "QID9": {"1": "3", "2": "2"},
    }
    assert response["finished"] is True and response["source"] == "web"
    assert response["embedded_data"] == {"CaseId": "00001234", "Channel": "email"}
    assert response["ended_at"] and response["duration_s"] >= 0


def test_display_logic_shows_the_follow_up_to_detractors(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    you.open()
    you.submit(PAGE_1 | {"QID1": "3", "QID3": "2"})
    third = you.submit(PAGE_2)
    assert "What should we do better, after your Chat?" in text_of(third.text)
    you.submit(PAGE_3 | {"QID10": "Call back sooner"})
    [response] = stored(client, alice, survey_id)
    assert response["values"]["QID10"] == "Call back sooner" and response["finished"]


def test_problems_are_shown_next_to_their_question_and_nothing_is_saved(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    you.open()
    refused = you.submit({"QID2": "4", "QID4": ["1", "3"]})
    assert refused.status_code == 422
    page = refused.text
    assert 'role="alert"' in page and "Please check your answers" in page
    # the error sits in the question's fieldset and is linked to it
    fieldset = re.search(r'<fieldset class="question has-error" id="QID1"[^>]*>', page)
    assert fieldset and 'aria-describedby="QID1-error"' in fieldset.group(0)
    assert '<p class="error" id="QID1-error">' in page
    assert "This question needs an answer." in page
    assert "cannot be combined with other choices" in text_of(page)  # exclusive "Nothing"
    assert 'value="4" checked' in page  # what was given is kept on the form
    assert stored(client, alice, survey_id) == []

    you.submit(PAGE_1)
    bad = you.submit({"QID6": "not-an-email", "QID7": "three"})
    assert bad.status_code == 422
    assert "is not a valid email address" in text_of(bad.text)
    assert "Enter a number, such as 42 or 3.5." in bad.text
    assert 'id="QID6-input" name="QID6" value="not-an-email"' in bad.text
    assert 'aria-invalid="true"' in bad.text
    ok = you.submit(PAGE_2)
    assert "Page 3 of 3" in ok.text
    missing_row = you.submit({"QID9[1]": "3"})
    assert missing_row.status_code == 422 and "missing: &#39;2&#39;" in missing_row.text


def test_progress_is_saved_each_page_so_an_abandoned_response_is_incomplete(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    you.open()
    you.submit(PAGE_1)
    [partial] = stored(client, alice, survey_id, finished="false")
    assert partial["finished"] is False and partial["ended_at"] is None
    assert partial["values"]["QID1"] == 9 and "QID6" not in partial["values"]
    you.submit(PAGE_2)
    [partial] = stored(client, alice, survey_id)
    assert partial["values"]["QID6"] == "ann@example.com" and not partial["finished"]
    assert stored(client, alice, survey_id, finished="true") == []


def test_back_keeps_the_answers_and_shows_them_again(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    you.open()
    you.submit(PAGE_1)
    back = you.submit({"QID6": "ann@example.com", "QID7": "many"}, action="back")
    assert back.status_code == 200 and "Page 1 of 3" in back.text
    assert 'name="QID1" value="9" checked' in back.text
    assert 'value="A letter"' in back.text
    again = you.submit(PAGE_1)
    # the valid answer was kept, the invalid one dropped
    assert 'value="ann@example.com"' in again.text and 'value="many"' not in again.text
    you.submit(PAGE_2)
    you.submit(PAGE_3)
    [response] = stored(client, alice, survey_id)
    assert response["finished"] and response["values"]["QID7"] == "3"


def test_after_finishing_the_same_form_cannot_be_sent_again(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    you.open()
    you.submit(PAGE_1)
    you.submit(PAGE_2)
    last_fields = dict(you.fields)
    you.submit(PAGE_3)
    you.fields = last_fields
    again = you.submit(PAGE_3)
    assert again.status_code == 409 and "already answered" in again.text
    assert len(stored(client, alice, survey_id)) == 1


def test_personal_link_carries_its_contact_and_embedded_data_and_is_single_use(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    token, url = create_personal_link(
        container.db, survey_id, {"CaseId": "5003000000D8cuI"},
        contact_id="CT_123", distribution_id="EMD_9", base_url="https://cx.example.com/",
    )  # fmt: skip
    assert url == f"https://cx.example.com/s/{survey_id}?t={token}"
    you = Respondent(client, survey_id)
    first = you.open(f"?t={token}&CaseId=forged")
    assert "case 5003000000D8cuI?" in text_of(first.text)  # the link's value wins
    you.submit(PAGE_1)
    # stopping half-way and opening the link again resumes with the answers filled in
    resumed = Respondent(client, survey_id).open(f"?t={token}")
    assert resumed.status_code == 200 and 'name="QID1" value="9" checked' in resumed.text
    you.submit(PAGE_2)
    assert "Thank you!" in you.submit(PAGE_3).text
    [response] = stored(client, alice, survey_id)
    assert response["contact_id"] == "CT_123" and response["distribution_id"] == "EMD_9"
    assert response["embedded_data"]["CaseId"] == "5003000000D8cuI"
    second = client.get(f"/s/{survey_id}?t={token}")
    assert second.status_code == 409 and "already answered this survey" in second.text
    resubmit = Respondent(client, survey_id)
    resubmit.fields = you.fields
    assert resubmit.submit(PAGE_3).status_code == 409
    assert len(stored(client, alice, survey_id)) == 1


def test_expired_or_unknown_personal_link_is_refused(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    token, _ = create_personal_link(
        container.db, survey_id, {}, expires_at=utcnow() + timedelta(hours=1)
    )
    you = Respondent(client, survey_id)
    assert you.open(f"?t={token}").status_code == 200
    with container.db.uow() as uow:
        uow.session.execute(update(PersonalLink).values(expires_at=utcnow() - timedelta(1)))
        uow.commit()
    expired = client.get(f"/s/{survey_id}?t={token}")
    assert expired.status_code == 410 and "This survey link has expired." in expired.text
    assert you.submit(PAGE_1).status_code == 410  # expired while answering
    unknown = client.get(f"/s/{survey_id}?t=not-a-token")
    assert unknown.status_code == 404 and "not valid" in unknown.text
    assert stored(client, alice, survey_id) == []


def test_draft_closed_and_unknown_surveys_take_no_answers(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    draft = make_survey(client, alice, status="draft")
    reply = client.get(f"/s/{draft}")
    assert reply.status_code == 404 and "not open yet" in reply.text
    closed = make_survey(client, alice, status="closed")
    reply = client.get(f"/s/{closed}")
    assert reply.status_code == 410 and "This survey is closed" in reply.text
    assert client.get("/s/SV_doesnotexist123").status_code == 404

    survey_id = make_survey(client, alice)
    you = Respondent(client, survey_id)
    you.open()
    client.patch(f"/api/v1/surveys/{survey_id}", json={"status": "closed"},
                 headers=alice.headers)  # fmt: skip
    refused = you.submit(PAGE_1)
    assert refused.status_code == 410 and "closed" in refused.text
    assert stored(client, alice, survey_id) == []


def test_hostile_html_is_escaped_wherever_it_is_shown(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    content = all_types()
    content["questions"][1]["text"] = 'Rate <script>alert("q")</script><b>the agent</b>'
    content["questions"][2]["choices"][0]["text"] = "<img src=x onerror=alert(1)>Phone"
    content["questions"][4]["text"] = "You said: ${q://QID3/ChoiceTextEntryValue/4}"
    survey_id = make_survey(client, alice, content)
    you = Respondent(client, survey_id)
    first = you.open("?CaseId=%3Cscript%3Ealert(2)%3C%2Fscript%3E")
    assert "<script" not in first.text and "<img" not in first.text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in first.text  # embedded data, escaped
    assert "Rate the agent" in text_of(first.text)  # the editor's markup is not run
    second = you.submit(PAGE_1 | {"QID3_4_TEXT": '<script>alert("a")</script>'})
    assert "<script" not in second.text
    # shown as the text it is (escaped; the quotes need no escaping outside attributes)
    assert 'You said: &lt;script&gt;alert("a")&lt;/script&gt;' in second.text
    bad = you.submit({"QID6": '"><script>x</script>'})
    assert "<script" not in bad.text


def test_a_forged_or_foreign_form_state_is_refused(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice)
    other_id = make_survey(client, alice, name="Other")
    you = Respondent(client, survey_id)
    you.open()
    you.fields["_state"] = you.fields["_state"][:-3] + "abc"
    forged = you.submit(PAGE_1)
    assert forged.status_code == 400 and "open the survey link again" in forged.text
    foreign = Respondent(client, other_id)
    foreign.open()
    moved = client.post(f"/s/{survey_id}", data={**PAGE_1, **foreign.fields})
    assert moved.status_code == 400
    assert client.post(f"/s/{survey_id}", data=PAGE_1).status_code == 400
    assert stored(client, alice, survey_id) == []


DOCTORED = [
    ({"QID1": "11"}, "Choose a number from 0 to 10"),
    ({"QID1": "nine"}, "must be a whole number"),
    ({"QID1": ["1", "2"]}, "must be a whole number"),
    ({"QID1": "9", "QID3": "7"}, "is not one of this question&#39;s choices"),
    ({"QID1": "9", "QID3": "1", "QID2": "6"}, "Choose a number from 1 to 5"),
]


def test_doctored_form_values_are_problems_not_errors(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, name="Doctored")
    for answers, message in DOCTORED:
        you = Respondent(client, survey_id)
        you.open()
        reply = you.submit(answers)
        assert reply.status_code == 422 and message in reply.text, answers
    empty = make_survey(client, alice, {"format_version": 1})
    reply = client.get(f"/s/{empty}")
    assert reply.status_code == 200 and "no questions yet" in reply.text
