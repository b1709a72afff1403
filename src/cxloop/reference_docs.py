"""Reference documents generated from the code, so that they cannot drift from it:
`docs/piped-text.md` (from `cxloop.domain.piped_text.REFERENCE`, each example rendered by the
real renderer) and `docs/configuration.md` (from the `Settings` model).

`python -m cxloop.reference_docs [DOCS_DIR]` writes both; a test fails when the committed files
differ from what this module generates.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from cxloop.domain import piped_text
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import INVITATION_TEMPLATE_PATHS, PIPED_TEXT_NAMESPACES
from cxloop.settings import Settings, settings_by_area

# -- piped text ---------------------------------------------------------------------------------

EXAMPLE_SURVEY: Mapping[str, Any] = MappingProxyType({
    "format_version": 1,
    "embedded_data": [{"name": "CaseId", "default": "none"}],
    "questions": [
        {"qid": "QID1", "type": "nps", "text": "How likely are you to <b>recommend</b> us?"},
        {"qid": "QID2", "type": "rating", "scale_min": 1, "scale_max": 5,
         "text": "How satisfied are you with the support you got?"},
        {"qid": "QID3", "type": "single_choice", "text": "How did you contact us?",
         "choices": [{"id": "1", "text": "Phone"}, {"id": "2", "text": "Chat"},
                     {"id": "3", "text": "Other", "allow_text_entry": True}]},
        {"qid": "QID4", "type": "multiple_choice", "text": "What went well?",
         "choices": [{"id": "1", "text": "Speed", "recode": 10},
                     {"id": "2", "text": "Friendliness", "recode": 20},
                     {"id": "3", "text": "Something else", "allow_text_entry": True}]},
        {"qid": "QID5", "type": "text_entry", "multiline": True,
         "text": "What could we do better?"},
        {"qid": "QID6", "type": "text_entry", "validation": "number",
         "text": "How many times did you contact us?"},
        {"qid": "QID7", "type": "matrix", "text": "How was our answer?",
         "rows": [{"id": "1", "text": "Fast"}, {"id": "2", "text": "Clear"},
                  {"id": "3", "text": "Other", "allow_text_entry": True}],
         "scale": [{"id": "1", "text": "Poor"}, {"id": "2", "text": "Fair"},
                   {"id": "3", "text": "Good"}]},
        {"qid": "QID8", "type": "descriptive", "text": "Thank you for your time."},
    ],
})  # fmt: skip

EXAMPLE_ANSWERS: Mapping[str, Any] = MappingProxyType(
    {
        "QID1": 9,
        "QID2": 4,
        "QID3": "3",
        "QID3_3_TEXT": "A letter",
        "QID4": ["1", "3"],
        "QID4_3_TEXT": "The follow-up",
        "QID5": "Answer on weekends too.",
        "QID6": "2",
        "QID7": {"1": "3", "2": "3", "3": "2"},
        "QID7_3_TEXT": "Polite",
    }
)

_NOW = datetime(2024, 11, 28, 14, 5, 9, tzinfo=timezone(timedelta(hours=1)))


def example_context() -> piped_text.PipedTextContext:
    """The example response every example of the reference is rendered against."""
    return piped_text.PipedTextContext(
        survey_content=SurveyContent.from_document(dict(EXAMPLE_SURVEY)),
        answers=EXAMPLE_ANSWERS,
        embedded_data={"CaseId": "00001026"},
        metadata={
            "ResponseID": "R_8fK2mQ0sLx1aB9c", "SurveyID": "SV_3nV7pQ2wYt5uZ1a",
            "StartDate": datetime(2024, 11, 28, 13, 58, 2),
            "EndDate": datetime(2024, 11, 28, 14, 1, 40),
            "RecordedDate": datetime(2024, 11, 28, 14, 1, 40), "Finished": True,
            "Duration": 218, "Q_TotalDuration": 218,
            "Q_URL": "https://cxloop.example.com/s/SV_3nV7pQ2wYt5uZ1a",
            "DistributionChannel": "email", "UserLanguage": "en",
        },
        recipient={"FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.com",
                   "ExternalDataReference": "C-1001", "Language": "en"},
        links={"SurveyLink": "https://cxloop.example.com/s/SV_3nV7pQ2wYt5uZ1a?t=...",
               "OptOutLink": "https://cxloop.example.com/optout/..."},
        event_fields={"Id": "5005e00000AbCdEAAV", "CaseNumber": "00001026"},
        task_outputs={
            "response": {"Id": "a015e00000XyZ12AAB", "created": True},
            "alert": {"Id": "", "message_id": "<173280.1@cxloop.example.com>"},
            "invite": {"Id": "CT_4hJ8kL2mN6pQ", "ContactID": "CT_4hJ8kL2mN6pQ",
                       "Email": "ann@example.com", "DirectoryID": "DR_1aB2cD3eF4gH",
                       "DistributionID": "DS_5iJ6kL7mN8oP", "InvitationID": "IV_9qR0sT1uV2wX",
                       "MessageID": "<173281.2@cxloop.example.com>"},
        },
        now=_NOW,
    )  # fmt: skip


def example_output(reference: str, *, html: bool = False) -> str:
    """What a reference renders as against the example response."""
    return piped_text.render(reference, example_context(), html=html)


_NAMESPACE_TITLES = MappingProxyType(
    {
        "q": "`q://`: answers",
        "e": "`e://`: embedded data and the response's fields",
        "rm": "`rm://`: the response's own fields",
        "m": "`m://`: the contact the survey was sent to",
        "l": "`l://`: links of an invitation",
        "date": "`date://`: dates",
        "event": "`event://`: the Salesforce outbound message",
        "task": "`task://`: outputs of earlier tasks",
    }
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def piped_text_markdown() -> str:
    """docs/piped-text.md."""
    survey_yaml = SurveyContent.from_document(dict(EXAMPLE_SURVEY)).to_yaml()
    lines = [
        "# Piped text reference",
        "",
        "<!-- Generated by `python -m cxloop.reference_docs docs` from",
        "     cxloop.domain.piped_text.REFERENCE; edit that table, not this file. -->",
        "",
        "Piped text puts values into texts: `${namespace://path}`. Question, choice and scale",
        "texts, workflow task fields (Salesforce mappings and lookups, `key_value`, email fields,",
        "directory contacts) and invitations use it. Path parts are separated by `/` and may be",
        "URL-encoded (`${e://Field/Team%20Member}`, a slash in a date format as `%2F`). Whatever",
        "cannot be resolved (an unanswered or hidden question, a missing field) renders empty; a",
        "save of a workflow checks every reference and names the task, field and character of",
        "each problem.",
        "",
        "Every example below is rendered by cxloop itself against the example survey and",
        "response at the end of this page (answered on 2024-11-28 at 14:05:09, UTC+1).",
        "",
        "## Where each namespace may be used",
        "",
        "| place | namespaces |",
        "| --- | --- |",
    ]
    for event, namespaces in PIPED_TEXT_NAMESPACES.items():
        usable = ", ".join(f"`{n}`" for n in namespaces)
        lines.append(f"| tasks of a `{event}` workflow | {usable} |")
    invitation = ", ".join(f"`{path}`" for path in INVITATION_TEMPLATE_PATHS)
    lines.append(f"| a directory task's invitation ({invitation}) | the task's, and `m`, `l` |")
    lines.append(
        "| survey texts (questions, choices, scale points) | `q` (answers given so far), `e`, "
        "`date` |"
    )
    lines.append("")
    lines.append(
        "Not supported (a save says so): "
        + ", ".join(f"`{ns}://` ({what})" for ns, what in piped_text.UNSUPPORTED_NAMESPACES.items())
        + "."
    )
    for namespace, title in _NAMESPACE_TITLES.items():
        lines += ["", f"## {title}", ""]
        if namespace == "q":
            lines += [
                "By question type; `QID1` ... are the example survey's questions. "
                "`ChoiceGroup/` may be left out (`${q://QID3/SelectedChoices}`).",
                "",
                "| question type | reference | example output | what |",
                "| --- | --- | --- | --- |",
            ]
        else:
            lines += ["| reference | example output | what |", "| --- | --- | --- |"]
        for entry in piped_text.REFERENCE:
            if entry.namespace != namespace:
                continue
            output = example_output(entry.reference)
            shown = _code(output) if output else "(empty)"
            row = f"| {_code(entry.reference)} | {_cell(shown)} | {_cell(entry.meaning)} |"
            if namespace == "q":
                row = f"| `{entry.applies_to}` {row}"
            lines.append(row)
        if namespace == "l":
            html = example_output("${l://SurveyLink?d=Take%20the%20survey}", html=True)
            lines += ["", f"In an HTML mail the first one renders as {_code(html)}."]
        if namespace == "date":
            presets = ", ".join(f"`{k}` = `{v}`" for k, v in piped_text.DATE_PRESETS.items())
            lines += [
                "",
                f"Presets: {presets}. `date://OtherDate/<format>/<offset>` moves the date by an "
                "offset such as `-1 day`, `+2 weeks`, `+1 month` or `-1 year` (seconds, minutes, "
                "hours, days, weeks, months, years).",
                "",
                "Format characters (PHP's `date()`, which the reference product follows):",
                "",
                inspect.getdoc(piped_text.format_date).split("\n\n", 1)[1].replace("``", "`"),
            ]
    lines += [
        "",
        "## The example survey",
        "",
        "```yaml",
        survey_yaml.rstrip("\n"),
        "```",
        "",
        "The example response answers: "
        + ", ".join(f"`{k}`: `{v}`" for k, v in EXAMPLE_ANSWERS.items())
        + "; embedded data `CaseId` is `00001026`.",
        "",
    ]
    return "\n".join(lines)


# -- configuration ------------------------------------------------------------------------------


def _default(name: str, field: FieldInfo) -> str:
    if name == "data_dir":
        return "per-user data directory"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is None:
        return "(none)"
    if isinstance(value, SecretStr):
        return "(secret)"
    if value == "" or value == {} or value == []:
        return "(empty)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def configuration_markdown() -> str:
    """docs/configuration.md."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m cxloop.reference_docs docs` from cxloop.settings.Settings;",
        "     edit the settings model, not this file. -->",
        "",
        "Every setting can be given three ways; the first one found wins:",
        "",
        "1. an environment variable `CXLOOP_<NAME>` (`CXLOOP_BASE_URL=https://cx.example.com`);",
        '2. a key in the config file `cxloop.toml` (`base_url = "https://cx.example.com"`): the',
        "   file named by `CXLOOP_CONFIG`, else the first `cxloop.toml` in the current directory",
        "   or one of its parents;",
        "3. the default.",
        "",
        "`cxloop config show` prints the effective settings (secrets redacted); `--json` for a",
        "script.",
        "",
        "## The data directory",
        "",
        "The server and every CLI command find the same data directory, wherever they are",
        "started: `CXLOOP_DATA_DIR` (or `cxloop --data-dir DIR ...`), else `data_dir` in the",
        "config file (a relative path is relative to the file), else the per-user data directory:",
        "`$XDG_DATA_HOME/cxloop`, by default `~/.local/share/cxloop` (macOS:",
        "`~/Library/Application Support/cxloop`, Windows: `%LOCALAPPDATA%\\cxloop`). It holds the",
        "SQLite database (unless `CXLOOP_DATABASE_URL` names another), the SQLite queue and the",
        "generated keys.",
        "",
        "`cxloop serve` (and `cxloop db upgrade`) create the database there. Other commands refuse",
        "to start a new, empty one, so that a command run with other settings never succeeds",
        "silently in a database no server uses: they say where they looked. Point them at the",
        "server's data directory, or pass `cxloop --init ...` to create one on purpose.",
        "`cxloop demo` uses a temporary directory of its own.",
        "",
        "## Every setting, by area",
    ]
    for area, names in settings_by_area():
        lines += [
            "",
            f"### {area}",
            "",
            "| environment variable | `cxloop.toml` key | default | what |",
            "| --- | --- | --- | --- |",
        ]
        for name in names:
            field = Settings.model_fields[name]
            description = field.description or _UNDESCRIBED.get(name, "")
            lines.append(
                f"| `CXLOOP_{name.upper()}` | `{name}` | {_cell(_default(name, field))} | "
                f"{_cell(description)} |"
            )
    lines += [
        "",
        "A list in an environment variable is comma-separated values or a JSON array: "
        "`CXLOOP_TRUSTED_PROXIES=10.0.0.1,10.1.0.0/16`, "
        "`CXLOOP_SALESFORCE_EXTRA_HOSTS='[\"127.0.0.1:8701\"]'`; a mapping "
        "(`CXLOOP_SALESFORCE_APPS`) is JSON. A value in neither form stops every command with "
        "one line naming the variable and the form it expects. In `cxloop.toml`:",
        "",
        "```toml",
        'data_dir = "/var/lib/cxloop"',
        'base_url = "https://cx.example.com"',
        'salesforce_client_id = "3MVG9..."',
        'salesforce_extra_hosts = ["127.0.0.1:8701"]',
        "",
        '[salesforce_apps."login.example.my.salesforce.com"]',
        'client_id = "3MVG9..."',
        'client_secret = "..."',
        "```",
        "",
    ]
    return "\n".join(lines)


# What a setting without a description in the model is for.
_UNDESCRIBED = MappingProxyType(
    {
        "secret_key": "Signs session cookies. Default: generated once into the data directory.",
        "max_request_bytes": "Larger request bodies get 413.",
        "session_max_age_s": "How long a page login lasts.",
        "sqlite_busy_timeout_ms": "How long an SQLite writer waits for the lock.",
        "worker_threads": "Worker threads inside `cxloop serve`.",
        "smtp_host": "Outgoing mail server.",
        "smtp_port": "Its port.",
        "smtp_username": "Its login, if it needs one.",
        "smtp_password": "Its password.",
        "smtp_starttls": "Upgrade the connection with STARTTLS.",
        "smtp_ssl": "Connect with TLS from the start.",
        "smtp_timeout_s": "How long to wait for the mail server.",
        "mail_from": "Sender of emails.",
        "max_connections_per_user": "Linked Salesforce accounts per user.",
        "salesforce_client_secret": "The connected app's consumer secret.",
        "salesforce_api_version": "Salesforce REST API version.",
        "salesforce_timeout_s": "How long to wait for Salesforce.",
        "salesforce_describe_ttl_s": "How long an object's describe is cached.",
        "oauth_attempt_ttl_s": "How long a login link stays valid.",
        "log_level": "DEBUG, INFO, WARNING or ERROR.",
    }
)

GENERATED = MappingProxyType(
    {"piped-text.md": piped_text_markdown, "configuration.md": configuration_markdown}
)


def main(argv: list[str]) -> int:
    """Write the generated documents into DOCS_DIR (default: ./docs)."""
    target = Path(argv[0]) if argv else Path("docs")
    for name, make in GENERATED.items():
        (target / name).write_text(make(), encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
