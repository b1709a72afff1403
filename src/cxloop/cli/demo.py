"""`cxloop demo`: the whole closed loop on one machine.

It starts, in this process:
- the Salesforce emulator (sfemu) with its default org `acme`, logging in by itself as
  integration@example.com;
- the mail catcher (SMTP and a web view of what it caught);
- cxloop itself, on SQLite in a fresh data directory, with its worker and scheduler;

then seeds, through cxloop's services and API: a demo admin with an API token, an NPS + CSAT
survey, a connection "Acme (emulator)" linked by the real OAuth flow, the two workflows of the
loop (Case closed → directory task: contact + personal invitation; response → Case updated and
Survey_Response__c upserted) and the emulator's outbound rule pointing at the first workflow.

Without --headless it prints every URL and runs until Ctrl-C. With --headless it drives the loop
itself (close the Case → outbound message → mail → personal link → answers → Case updated) and
prints each step with ✔ or ✘ (or one JSON object with --json); exit 0 only when every step holds.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import typer
from rich.console import Console

from cxloop.bootstrap import Container, build_container
from cxloop.logs import configure_logging
from cxloop.mail.catcher import MailCatcher
from cxloop.services import directory, survey_content, surveys, users, workflows
from cxloop.services.access import Actor
from cxloop.settings import Settings
from cxloop.web.app import create_app
from cxloop.web.background import BackgroundServer, bind

T = TypeVar("T")

ORG = "acme"
SF_USER = "integration@example.com"
RULE = "Case_Closed_Survey"
CASE_SUBJECT = "Printer on fire"
CONNECTION = "Acme (emulator)"
ADMIN_EMAIL = "demo@example.com"
SURVEY_NAME = "Customer satisfaction (demo)"
ANSWERS = {"QID1": "9", "QID2": "5", "QID3": "Quick and friendly. Thank you!"}

SURVEY_CONTENT: dict[str, Any] = {
    "format_version": 1,
    # Both come from the invitation's personal link, never from the open link's query string.
    "embedded_data": [
        {"name": "CaseId", "source": "personal_link"},
        {"name": "Email", "source": "personal_link"},
    ],
    "questions": [
        {
            "qid": "QID1",
            "type": "nps",
            "text": "How likely are you to recommend Acme to a friend or colleague?",
            "required": True,
        },
        {
            "qid": "QID2",
            "type": "rating",
            "text": "How satisfied are you with how we handled your case?",
            "scale_min": 1,
            "scale_max": 5,
            "low_label": "Very dissatisfied",
            "high_label": "Very satisfied",
        },
        {
            "qid": "QID3",
            "type": "text_entry",
            "text": "What is the main reason for your answers?",
            "multiline": True,
        },
    ],
}

# The greeting uses the directory contact's first name (the Case's SuppliedName is a full name).
INVITATION_BODY = """Hello ${m://FirstName},

your case ${event://Field/CaseNumber} ("${event://Field/Subject}") is closed.
How did we do? Three quick questions, one minute:

${l://SurveyLink}

Thank you!
Acme Support

Don't want these emails? ${l://OptOutLink}
"""


def outbound_workflow() -> dict[str, Any]:
    """Case closed in Salesforce → the customer in the directory, invited by email."""
    return {
        "name": "Case closed: invite the customer",
        "event": {
            "type": "salesforce_outbound_message",
            "connection": CONNECTION,
            "object": "Case",
        },
        "tasks": [
            {
                "id": "invite",
                "type": "directory",
                "name": "Add the customer and send the survey",
                "contact": {
                    "email": "${event://Field/SuppliedEmail}",
                    "external_ref": "${event://Field/ContactId}",
                },
                "mailing_list": "Closed cases",
                "distribute": {
                    "subject": "How did we do on case ${event://Field/CaseNumber}?",
                    "body": INVITATION_BODY,
                    "from_name": "Acme Support",
                    "from_address": "support@example.com",
                    "embedded_data": {
                        "CaseId": "${event://Field/Id}",
                        "Email": "${event://Field/SuppliedEmail}",
                    },
                },
            }
        ],
    }


def response_workflow() -> dict[str, Any]:
    """A response that carries a CaseId and came through a personal link → the Case updated,
    a Survey_Response__c upserted."""
    return {
        "name": "Response: back onto the Case",
        "event": {"type": "survey_response", "when": ["created"]},
        "conditions": {
            "join": "and",
            "conditions": [
                {"field": "e://Field/CaseId", "operator": "is_not_empty"},
                # Only an invitation's personal link carries a CaseId we put there ourselves.
                {"field": "m://Channel", "operator": "equals", "value": "personal_link"},
            ],
        },
        "tasks": [
            {
                "id": "case",
                "type": "salesforce",
                "connection": CONNECTION,
                "object": "Case",
                "action": "update",
                "key_field": "Id",
                "key_value": "${e://Field/CaseId}",
                "mappings": [
                    {"field": "Survey_NPS_Score__c", "value": "${q://QID1/ChoiceGroup/SelectedChoices}"},
                    {"field": "Survey_Comment__c", "value": "${q://QID3/ChoiceTextEntryValue}"},
                    {"field": "Survey_Responded__c", "value": "true", "constant": True},
                ],
            },
            {
                "id": "response",
                "type": "salesforce",
                "connection": CONNECTION,
                "object": "Survey_Response__c",
                "action": "upsert",
                "key_field": "Response_ID__c",
                "mappings": [
                    {"field": "Response_ID__c", "value": "${e://Field/ResponseID}"},
                    {"field": "Case__c", "value": "${e://Field/CaseId}"},
                    {"field": "NPS_Score__c", "value": "${q://QID1/ChoiceGroup/SelectedChoices}"},
                    {"field": "Comment__c", "value": "${q://QID3/ChoiceTextEntryValue}"},
                ],
            },
        ],
    }  # fmt: skip


class DemoError(Exception):
    """Something the demo needs did not work; the message says what."""


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


class Demo:
    """The emulator, the mail catcher and cxloop, started in order and stopped in reverse."""

    def __init__(
        self,
        *,
        port: int,
        emulator_port: int,
        smtp_port: int,
        mail_port: int,
        data_dir: Path,
        step_timeout_s: float = 30.0,
        configure_logs: bool = True,
    ) -> None:
        self.configure_logs = configure_logs
        self.ports = {"port": port, "emulator": emulator_port, "smtp": smtp_port, "mail": mail_port}
        self.data_dir = data_dir
        self.timeout = step_timeout_s
        self.emulator_server: Any = None
        self.emulator_url = ""
        self.catcher: MailCatcher | None = None
        self.server: BackgroundServer | None = None
        self.container: Container | None = None
        self.seeded = Seeded()

    # -- starting and stopping -----------------------------------------------------------------

    def start(self) -> None:
        """Start the three servers; on failure, stop what had started and raise DemoError."""
        for what, option, port in (
            ("cxloop", "--port", self.ports["port"]),
            ("the emulator", "--emulator-port", self.ports["emulator"]),
            ("the mail catcher's SMTP server", "--smtp-port", self.ports["smtp"]),
            ("the mail catcher's web view", "--mail-port", self.ports["mail"]),
        ):
            _check_port_free(what, option, port)
        try:
            self._start_emulator()
            self._start_catcher()
            self._start_cxloop()
        except BaseException:
            self.stop()
            raise

    def _start_emulator(self) -> None:
        from sfemu.server import BackgroundServer as EmulatorServer
        from sfemu.server import plan_server
        from sfemu.settings import EmulatorSettings

        settings = EmulatorSettings(
            auto_login=SF_USER,
            outbound_time_scale=0.001,  # retries after 15 ms, 30 ms, ... instead of 15 s, 30 s
            outbound_timeout_s=10.0,
        )
        try:
            plan = plan_server(settings, port=self.ports["emulator"])
        except OSError as exc:
            raise DemoError(_port_problem("the emulator", self.ports["emulator"], exc)) from None
        self.emulator_server = EmulatorServer(plan)
        self.emulator_server.start()
        self.emulator_url = plan.base_url

    def _start_catcher(self) -> None:
        try:
            self.catcher = MailCatcher(
                smtp_port=self.ports["smtp"], web_port=self.ports["mail"]
            ).start()
        except OSError as exc:
            raise DemoError(
                _port_problem("the mail catcher", f"{self.ports['smtp']}/{self.ports['mail']}", exc)
            ) from None

    def _start_cxloop(self) -> None:
        try:
            self.server = BackgroundServer(port=self.ports["port"], name="cxloop-server")
        except OSError as exc:
            raise DemoError(_port_problem("cxloop", self.ports["port"], exc)) from None
        with self.emulator() as control:
            app = control.get("/info").raise_for_status().json()["connected_apps"][0]
        assert self.catcher is not None
        overrides: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": f"sqlite:///{self.data_dir / 'cxloop.db'}",
            "queue_url": f"sqlite:///{self.data_dir / 'queue.db'}",
            "base_url": self.server.url,
            "smtp_host": "127.0.0.1",
            "smtp_port": self.catcher.smtp_port,
            "smtp_username": None,
            "smtp_password": None,
            "smtp_starttls": False,
            "smtp_ssl": False,
            "salesforce_client_id": app["client_id"],
            "salesforce_client_secret": app["client_secret"],
            "salesforce_apps": {},
            "salesforce_extra_hosts": [urlsplit(self.emulator_url).netloc],
            # a demo should feel instant: no lingering for batches, quick retries
            "batch_linger_s": 0.0,
            "retry_base_s": 0.5,
            "retry_cap_s": 5.0,
        }
        if "CXLOOP_LOG_LEVEL" not in os.environ:
            overrides["log_level"] = "WARNING"
        settings = Settings(**overrides)
        if self.configure_logs:
            configure_logging(settings.log_level, settings.log_json)
        self.container = build_container(settings, upgrade_sqlite=True)
        self.server.start(create_app(self.container, embedded_worker=True), grace_s=5.0)

    def stop(self) -> None:
        """Stop cxloop (its worker finishes what runs), then the catcher, then the emulator."""
        for stop in (
            self.server.stop if self.server else None,
            self.container.close if self.container else None,
            self.catcher.stop if self.catcher else None,
            self.emulator_server.stop if self.emulator_server else None,
        ):
            if stop is not None:
                try:
                    stop()
                except Exception as exc:  # stopping the rest matters more
                    print(f"while stopping: {exc}", file=sys.stderr)
        self.server = self.container = self.catcher = self.emulator_server = None

    # -- clients ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def mail_url(self) -> str:
        assert self.catcher is not None and self.catcher.web_url is not None
        return self.catcher.web_url

    def emulator(self) -> httpx.Client:
        return _local_client(base_url=f"{self.emulator_url}/__emulator__", timeout=10)

    def api(self) -> httpx.Client:
        return _local_client(
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
        surveys.update_survey(db, actor, survey.id, {"status": "active"})
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
            with _local_client(base_url=self.base_url, timeout=30) as browser:
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
        if attempt.get("status") != "completed":
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
            with _local_client(timeout=10) as client:
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
        client = _local_client(timeout=30, follow_redirects=True)
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
            if task["status"] != "succeeded"
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


def _port_problem(what: str, port: int | str, exc: OSError) -> str:
    return f"{what} cannot listen on port {port} ({exc.strerror or exc}): pick another port"


def _check_port_free(what: str, option: str, port: int) -> None:
    """Say which option to change before anything starts, rather than half-way."""
    if port == 0:
        return
    try:
        bind("127.0.0.1", port).close()
    except OSError as exc:
        raise DemoError(
            f"{what} cannot listen on port {port} ({exc.strerror or exc}): "
            f"pick another with {option}"
        ) from None


def _local_client(**options: Any) -> httpx.Client:
    """An HTTP client for the demo's own servers: never through a proxy from the environment."""
    return httpx.Client(trust_env=False, **options)


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


# -- the command ---------------------------------------------------------------------------------


def demo(
    port: int = typer.Option(8000, help="cxloop's port (0: any free port, as for the others)."),
    emulator_port: int = typer.Option(8701, help="The Salesforce emulator's port."),
    smtp_port: int = typer.Option(8025, help="The mail catcher's SMTP port."),
    mail_port: int = typer.Option(8026, help="The mail catcher's web view port."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        file_okay=False,
        help="Where cxloop keeps its data (new or empty); default: a temporary directory, "
        "removed at the end.",
    ),
    headless: bool = typer.Option(
        False, "--headless", help="Run the closed loop by itself, print each step, then stop."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="With --headless: print one JSON object instead."
    ),
    step_timeout: float = typer.Option(
        30.0, "--step-timeout", min=1.0, help="With --headless: seconds each step may take."
    ),
) -> None:
    """Run the closed loop on this machine: cxloop, a Salesforce emulator and a mail catcher."""
    console = Console(stderr=json_output)
    if json_output and not headless:
        console.print("[bold red]error:[/] --json goes with --headless", highlight=False)
        raise typer.Exit(2)
    temporary = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="cxloop-demo-"))
    elif (data_dir / "cxloop.db").exists():
        console.print(
            f"[bold red]error:[/] {data_dir} already holds a cxloop database; the demo starts "
            "from scratch: give a new or empty --data-dir",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    running = Demo(
        port=port,
        emulator_port=emulator_port,
        smtp_port=smtp_port,
        mail_port=mail_port,
        data_dir=data_dir,
        step_timeout_s=step_timeout,
    )
    # SIGTERM stops the demo as Ctrl-C does: everything is shut down and temporary data removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if headless:
            ok = _headless(running, console, json_output)
            raise typer.Exit(0 if ok else 1)
        _interactive(running, console, temporary)
    finally:
        running.stop()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _setup_steps(running: Demo) -> list[tuple[str, Callable[[], str]]]:
    def start() -> str:
        running.start()
        return (
            f"cxloop {running.base_url}, emulator {running.emulator_url}, "
            f"mail catcher {running.mail_url} (SMTP :{running.catcher.smtp_port})"  # type: ignore[union-attr]
        )

    def seed() -> str:
        seeded = running.seed()
        return (
            f"admin {seeded.admin_email}, survey {seeded.survey_id}, connection "
            f"{CONNECTION!r}, 2 workflows, rule {RULE} → {seeded.outbound_url}"
        )

    return [
        ("Start the emulator, the mail catcher and cxloop", start),
        ("Seed the admin, survey, connection, workflows and outbound rule", seed),
    ]


def _headless(running: Demo, console: Console, json_output: bool) -> bool:
    steps: list[Step] = []

    def report(step: Step) -> None:
        steps.append(step)
        if not json_output:
            mark = "[green]✔[/]" if step.ok else "[bold red]✘[/]"
            console.print(
                f"{mark} {step.name} [dim]({step.seconds:.1f} s)[/]\n    {step.detail}",
                highlight=False,
                soft_wrap=True,
            )

    ready = True
    for name, action in _setup_steps(running):
        started = time.monotonic()
        try:
            step = Step(name, True, action(), 0.0)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, DemoError) else f"{type(exc).__name__}: {exc}"
            step = Step(name, False, detail, 0.0)
        step.seconds = round(time.monotonic() - started, 2)
        report(step)
        if not step.ok:
            ready = False
            break
    if ready:
        running.run_loop(report)
    ok = ready and all(s.ok for s in steps)
    if json_output:
        print(json.dumps({"ok": ok, "steps": [asdict(s) for s in steps]}, ensure_ascii=False))
    else:
        verdict = "[green]The loop is closed.[/]" if ok else "[bold red]The loop is not closed.[/]"
        console.print(verdict, highlight=False)
    return ok


def _interactive(running: Demo, console: Console, temporary: bool) -> None:
    try:
        running.start()
        seeded = running.seed()
    except Exception as exc:  # one line that says what, not a traceback
        reason = str(exc) if isinstance(exc, DemoError) else f"{type(exc).__name__}: {exc}"
        console.print(f"[bold red]error:[/] {reason}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    urls = running.urls()
    assert running.catcher is not None
    kept = " (removed at the end)" if temporary else ""
    console.print(
        f"""
[bold]cxloop demo[/]: everything runs in this process; cxloop's data is in {running.data_dir}{kept}

[bold]cxloop[/]                {urls["cxloop"]}
  API docs              {urls["api_docs"]}
  log in                {urls["login"]}  as {seeded.admin_email} / {seeded.admin_password}
  API token             {seeded.api_token}
  survey link           {urls["survey"]}
  outbound endpoint     {urls["outbound_endpoint"]}
[bold]Mail catcher[/]          {urls["mail_catcher"]}  (SMTP 127.0.0.1:{running.catcher.smtp_port})
[bold]Salesforce emulator[/]   {urls["emulator"]}  (org {ORG}, you are {SF_USER})
  records               {urls["emulator_records"]}
  the Case              {urls["emulator_case"]}
  outbound queue        {urls["emulator_outbound"]}

[bold]Try the loop[/]
  1. Open the Case {CASE_SUBJECT!r} ({seeded.case_number}) at the link above, set Status
     to Closed and save: Salesforce sends an outbound message to cxloop.
  2. Open the mail catcher: the invitation "How did we do on case {seeded.case_number}?" to
     jeraldine.black@example.com is there. Click the survey link in it.
  3. Answer and submit.
  4. Reload the Case: Survey NPS Score, Survey Comment and Survey Responded are filled in,
     and a Survey_Response__c points at it.
  Run history: curl -H "Authorization: Bearer {seeded.api_token}" {urls["cxloop"]}/api/v1/runs

Ctrl-C stops everything.""",
        highlight=False,
        soft_wrap=True,
    )
    _wait_for_interrupt()
    console.print("Stopping…", highlight=False)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
