"""The demo's scenario: seed cxloop (admin, survey, connection linked by the real OAuth flow,
the two workflows, the emulator's outbound rule) and drive the loop by itself (close the Case ->
outbound message -> mail -> personal link -> answers -> Case updated)."""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from cxloop.demo.seed import (
    ADMIN_EMAIL,
    ANSWERS,
    CASE_SUBJECT,
    CONNECTION,
    ORG,
    RULE,
    SURVEY_CONTENT,
    SURVEY_NAME,
    outbound_workflow,
    response_workflow,
)
from cxloop.demo.stack import DemoError, Stack, local_client
from cxloop.domain.statuses import LinkingStatus, SurveyStatus, TaskRunStatus
from cxloop.services import directory, survey_content, surveys, users, workflows
from cxloop.services.access import Actor

T = TypeVar("T")


@dataclass
class Seeded:
    """What the seeding made, and where to find it."""

    admin_email: str = ""
    admin_password: str = ""
    api_token: str = ""
    survey_id: str = ""
    survey_url: str = ""
    connection_id: str = ""
    outbound_workflow_id: str = ""
    response_workflow_id: str = ""
    outbound_url: str = ""
    case_id: str = ""
    case_number: str = ""


class Demo(Stack):
    """The stack, seeded through cxloop's services and API, and the loop driven through it."""

    def __init__(self, *, step_timeout_s: float = 30.0, **stack_options: Any) -> None:
        """`stack_options` are the Stack's (ports, data directory); each step of the loop may
        take `step_timeout_s`."""
        super().__init__(**stack_options)
        self.timeout = step_timeout_s
        self.seeded = Seeded()

    def api(self) -> httpx.Client:
        return local_client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.seeded.api_token}"},
            timeout=30,
        )

    # -- seeding ---------------------------------------------------------------------------------

    def seed(self) -> Seeded:
        """The admin, the survey, the connection, the workflows and the outbound rule."""
        assert self.container is not None
        db, seeded = self.container.db, self.seeded
        seeded.admin_email = ADMIN_EMAIL
        seeded.admin_password = secrets.token_urlsafe(12)
        admin = users.create_user(
            db, ADMIN_EMAIL, seeded.admin_password, is_admin=True, name="Demo admin"
        )
        seeded.api_token = users.create_token(db, ADMIN_EMAIL, "cxloop demo").token
        actor = Actor.of(admin)
        survey = surveys.create_survey(
            db, actor, SURVEY_NAME, "NPS and CSAT after a support case is closed."
        )
        survey_content.put_content(db, actor, survey.id, SURVEY_CONTENT)
        surveys.update_survey(db, actor, survey.id, {"status": SurveyStatus.ACTIVE})
        seeded.survey_id = survey.id
        seeded.survey_url = f"{self.base_url}/s/{survey.id}"
        seeded.connection_id = self._link_connection()
        outbound = workflows.create_workflow(db, actor, survey.id, outbound_workflow())
        seeded.outbound_workflow_id = outbound.workflow.id
        response = workflows.create_workflow(db, actor, survey.id, response_workflow())
        seeded.response_workflow_id = response.workflow.id
        seeded.outbound_url = self._outbound_url(actor)
        with self.emulator() as control:
            control.patch(
                f"/outbound/rules/{RULE}",
                json={"active": True, "endpoint_url": seeded.outbound_url},
            ).raise_for_status()
            case = self._case(control)
            customer = control.get(f"/records/{ORG}/{case['ContactId']}").raise_for_status().json()
        seeded.case_id, seeded.case_number = case["Id"], case.get("CaseNumber", "")
        self._seed_customer(actor, customer)
        return seeded

    def _seed_customer(self, actor: Actor, customer: dict[str, Any]) -> None:
        """The Case's contact in the directory with first and last name, as a real directory
        is filled from the CRM (`cxloop contacts import`): the invitation greets by first name."""
        assert self.container is not None
        fields = customer.get("fields", customer)
        row = {
            "email": fields["Email"], "first_name": fields.get("FirstName") or "",
            "last_name": fields.get("LastName") or "", "external_ref": customer.get("Id", ""),
        }  # fmt: skip
        found = directory.find_directory_by_name(
            self.container.db, actor, directory.DEFAULT_DIRECTORY, create_missing=True
        )
        directory.import_contacts(self.container.db, actor, found.id, [json.dumps(row)], "jsonl")

    def _link_connection(self) -> str:
        """The real OAuth web-server flow, with the emulator logging in by itself."""
        assert self.container is not None
        callback = self.container.settings.oauth_callback_url
        with self.emulator() as control:
            control.patch("/apps/cxloop", json={"add_callback_urls": [callback]}).raise_for_status()
            info = control.get("/info").raise_for_status().json()
        login_url = next(o["login_url"] for o in info["orgs"] if o["alias"] == ORG)
        with self.api() as api:
            started = api.post(
                "/api/v1/connections",
                json={"name": CONNECTION, "type": "emulator", "login_url": login_url},
            )
            if started.status_code != 201:
                raise DemoError(f"linking {CONNECTION} did not start: {started.text}")
            # What the browser does: sign in to cxloop, open the one-time link (it sets the
            # cookie the callback wants), Salesforce's login (automatic here), back.
            with local_client(base_url=self.base_url, timeout=30) as browser:
                self._sign_in(browser)
                bootstrap = browser.get(started.json()["authorize_url"])
                if bootstrap.status_code != 303:
                    raise DemoError(
                        f"the linking link did not lead to Salesforce (HTTP "
                        f"{bootstrap.status_code}): {_text_of(bootstrap.text)[:300]}"
                    )
                at_salesforce = browser.get(bootstrap.headers["location"])
                location = at_salesforce.headers.get("location", "")
                if not location.startswith(callback):
                    raise DemoError(
                        f"the emulator's login did not send the browser back to cxloop (HTTP "
                        f"{at_salesforce.status_code}): {_text_of(at_salesforce.text)[:300]}"
                    )
                back = browser.get(location)
            attempt = api.get(f"/api/v1/connections/attempts/{started.json()['attempt_id']}").json()
        if attempt.get("status") != LinkingStatus.COMPLETED:
            raise DemoError(
                f"linking {CONNECTION} failed (HTTP {back.status_code}): "
                f"{attempt.get('error') or _text_of(back.text)[:300]}"
            )
        return str(attempt["connection_id"])

    def _sign_in(self, browser: httpx.Client) -> None:
        """Sign the demo admin in to cxloop's pages in this browser-like client."""
        form = browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        signed_in = browser.post(
            "/login",
            data={
                "email": self.seeded.admin_email,
                "password": self.seeded.admin_password,
                "csrf": csrf.group(1) if csrf else "",
            },
        )
        if signed_in.status_code != 303:
            raise DemoError(
                f"the demo admin could not sign in (HTTP {signed_in.status_code}): "
                f"{_text_of(signed_in.text)[:300]}"
            )

    def _outbound_url(self, actor: Actor) -> str:
        """The URL the outbound workflow's messages go to (with its unguessable token)."""
        assert self.container is not None
        endpoint = workflows.outbound_endpoint(
            self.container.db,
            actor,
            self.seeded.survey_id,
            self.seeded.outbound_workflow_id,
            base_url=self.base_url,
        )
        return endpoint.url

    def _case(self, control: httpx.Client) -> dict[str, Any]:
        records = control.get(
            "/records", params={"org": ORG, "sobject": "Case", "limit": 200}
        ).raise_for_status()
        data = records.json()
        items = data.get("records", data) if isinstance(data, dict) else data
        for record in items:
            if record.get("Subject") == CASE_SUBJECT:
                return record
        raise DemoError(f"the emulator's org {ORG} has no Case {CASE_SUBJECT!r}")

    # -- what to print ---------------------------------------------------------------------------

    def urls(self) -> dict[str, str]:
        seeded = self.seeded
        return {
            "cxloop": self.base_url,
            "api_docs": f"{self.base_url}/docs",
            "login": f"{self.base_url}/login",
            "survey": seeded.survey_url,
            "mail_catcher": self.mail_url,
            "emulator": self.emulator_url,
            "emulator_records": f"{self.emulator_url}/__emulator__/ui",
            "emulator_case": f"{self.emulator_url}/__emulator__/ui/{ORG}/Case/{seeded.case_id}",
            "emulator_outbound": f"{self.emulator_url}/__emulator__/ui/outbound",
            "outbound_endpoint": seeded.outbound_url,
        }

    # -- the loop, by itself ---------------------------------------------------------------------

    def run_loop(self, report: Callable[[Step], None]) -> list[Step]:
        """Close the Case, follow the message, the mail and the link, answer, check the Case."""
        state: dict[str, Any] = {}
        steps: list[tuple[str, Callable[[], str]]] = [
            (f"Close the Case {CASE_SUBJECT!r} in the emulator", self._close_case),
            ("Salesforce delivers the outbound message; cxloop acknowledges it",
             lambda: self._wait_outbound(state)),
            ("The invitation arrives in the mail catcher", lambda: self._wait_mail(state)),
            ("The personal link opens the survey", lambda: self._open_link(state)),
            ("The answers are posted through the survey page", lambda: self._answer(state)),
            ("The Case is updated with the score and comment", self._wait_case),
            ("A Survey_Response__c is linked to the Case", self._wait_survey_response),
        ]  # fmt: skip
        done: list[Step] = []
        failed: str | None = None
        for name, action in steps:
            if failed is not None:
                step = Step(name, False, f"not run: {failed!r} failed", 0.0)
            else:
                started = time.monotonic()
                try:
                    detail, ok = action(), True
                except DemoError as exc:
                    detail, ok = str(exc), False
                except Exception as exc:  # a bug or a crash is a failed step, not a traceback
                    detail, ok = f"{type(exc).__name__}: {exc}", False
                step = Step(name, ok, detail, round(time.monotonic() - started, 2))
                if not ok:
                    failed = name
            done.append(step)
            report(step)
        return done

    def _close_case(self) -> str:
        with self.emulator() as control:
            control.patch(
                f"/records/{ORG}/{self.seeded.case_id}", json={"Status": "Closed"}
            ).raise_for_status()
        return f"Case {self.seeded.case_number} ({self.seeded.case_id}): Status → Closed"

    def _wait_outbound(self, state: dict[str, Any]) -> str:
        last: dict[str, Any] = {}

        def delivered() -> dict[str, Any] | None:
            with self.emulator() as control:
                queue = control.get("/outbound", params={"org": ORG}).raise_for_status().json()
            mine = [n for n in queue["notifications"] if n["record_id"] == self.seeded.case_id]
            if mine:
                last.update(mine[-1])
            return next((n for n in mine if n["status"] == "delivered"), None)

        found = self._wait(
            delivered,
            lambda: (
                "the outbound message was not acknowledged"
                + (
                    f" (status {last['status']}, {last['attempts']} attempt(s), last error: "
                    f"{last.get('last_error') or last.get('last_status_code')})"
                    if last
                    else " (the emulator queued none: is the rule active?)"
                )
            ),
        )
        state["notification"] = found
        return f"notification {found['id']} acknowledged after {found['attempts']} attempt(s)"

    def _wait_mail(self, state: dict[str, Any]) -> str:
        def arrived() -> dict[str, Any] | None:
            with local_client(timeout=10) as client:
                mails = client.get(f"{self.mail_url}/api/messages").raise_for_status().json()
            return next(
                (
                    m
                    for m in mails
                    if self.seeded.case_number and self.seeded.case_number in m["subject"]
                ),
                None,
            )

        mail = self._wait(arrived, lambda: "no invitation mail arrived", diagnose=True)
        link = next((u for u in mail["links"] if u.startswith(f"{self.base_url}/s/")), None)
        if link is None:
            raise DemoError(f"the mail has no survey link: {mail['text'][:300]!r}")
        state["mail"], state["link"] = mail, link
        return f"to {mail['to']}: {mail['subject']!r} (mail #{mail['number']})"

    def _open_link(self, state: dict[str, Any]) -> str:
        client = local_client(timeout=30, follow_redirects=True)
        state["browser"] = client
        page = client.get(state["link"])
        if page.status_code != 200 or "<form" not in page.text:
            raise DemoError(
                f"GET the link answered {page.status_code}: {_text_of(page.text)[:300]}"
            )
        state["page"] = page
        path = urlsplit(state["link"]).path
        return f"GET {path}?t=… → 200, {_title_of(page.text)!r}"

    def _answer(self, state: dict[str, Any]) -> str:
        client: httpx.Client = state["browser"]
        page = state["page"]
        action = f"{self.base_url}{urlsplit(state['link']).path}"
        try:
            for _ in range(10):  # pages; the demo survey has one
                fields = dict(
                    re.findall(r'<input type="hidden" name="(_\w+)" value="([^"]*)"', page.text)
                )
                if "_state" not in fields:
                    break
                fields = {k: html.unescape(v) for k, v in fields.items()}
                page = client.post(action, data={**ANSWERS, **fields, "_action": "next"})
                if page.status_code != 200:
                    raise DemoError(
                        f"POST answers → {page.status_code}: {_text_of(page.text)[:300]}"
                    )
        finally:
            client.close()
        if "Thank you" not in page.text:
            raise DemoError(f"the survey did not finish: {_text_of(page.text)[:300]}")
        return (
            f"NPS {ANSWERS['QID1']}, CSAT {ANSWERS['QID2']}/5, comment {ANSWERS['QID3']!r}"
            " → 'Thank you!'"
        )

    def _wait_case(self) -> str:
        last: dict[str, Any] = {}

        def updated() -> dict[str, Any] | None:
            with self.emulator() as control:
                case = (
                    control.get(f"/records/{ORG}/{self.seeded.case_id}").raise_for_status().json()
                )
            last.update(case)
            score = case.get("Survey_NPS_Score__c")
            is_set = isinstance(score, int | float) and score == int(ANSWERS["QID1"])
            return case if is_set else None

        case = self._wait(
            updated,
            lambda: (
                "the Case was not updated (Survey_NPS_Score__c = "
                f"{last.get('Survey_NPS_Score__c')!r})"
            ),
            diagnose=True,
        )
        return (
            f"Survey_NPS_Score__c = {_shown(case['Survey_NPS_Score__c'])}, "
            f"Survey_Responded__c = {_shown(case.get('Survey_Responded__c'))}, "
            f"Survey_Comment__c = {_shown(case.get('Survey_Comment__c'))}"
        )

    def _wait_survey_response(self) -> str:
        def linked() -> dict[str, Any] | None:
            with self.emulator() as control:
                data = (
                    control.get(
                        "/records",
                        params={"org": ORG, "sobject": "Survey_Response__c", "limit": 200},
                    )
                    .raise_for_status()
                    .json()
                )
            items = data.get("records", data) if isinstance(data, dict) else data
            return next(
                (r for r in items if str(r.get("Case__c", ""))[:15] == self.seeded.case_id[:15]),
                None,
            )

        record = self._wait(
            linked, lambda: "no Survey_Response__c points at the Case", diagnose=True
        )
        return (
            f"{record.get('Name', record['Id'])}: Response_ID__c = {record.get('Response_ID__c')}, "
            f"NPS_Score__c = {_shown(record.get('NPS_Score__c'))}, "
            f"Case__c = {record.get('Case__c')}"
        )

    def _wait(
        self, probe: Callable[[], T | None], why: Callable[[], str], *, diagnose: bool = False
    ) -> T:
        """What `probe` finds, asking every 0.1 s; after the step timeout, DemoError saying
        why (and, with `diagnose`, what cxloop's run history says)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                found = probe()
            except httpx.HTTPError:
                found = None
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{why()} within {self.timeout:.0f} s" + (self._diagnosis() if diagnose else "")
                )
            time.sleep(0.1)

    def _diagnosis(self) -> str:
        """What cxloop's run history says about the demo survey's unfinished work."""
        try:
            with self.api() as api:
                reply = api.get(
                    "/api/v1/runs", params={"survey_id": self.seeded.survey_id, "limit": 20}
                )
            runs = reply.json()["items"]
        except Exception:
            return ""
        notes = [
            f"{run['workflow_name']}/{task['task_id']}: {task['status']}"
            + (f" ({task['status_reason']})" if task.get("status_reason") else "")
            for run in runs
            for task in run["task_runs"]
            if task["status"] != TaskRunStatus.SUCCEEDED
        ]
        if not runs:
            return "; cxloop has no run for the demo survey"
        return ("; cxloop's runs: " + "; ".join(notes[:5])) if notes else ""


@dataclass
class Step:
    """One step of the headless loop."""

    name: str
    ok: bool
    detail: str
    seconds: float


def _shown(value: Any) -> str:
    """A Salesforce field value as Salesforce's JSON writes it: 9 (not 9.0), true, "text"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _title_of(page: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    return _text_of(found.group(1)) if found else ""
