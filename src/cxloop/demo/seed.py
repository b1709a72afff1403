"""The demo's seed data: YAML files in `seed/`, shipped in the package (hatchling takes
package data under src/ into the wheel)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import yaml


def load(name: str) -> Any:
    """One seed file (`seed/<name>.yaml`), read afresh: callers may change what they get."""
    return yaml.safe_load(files("cxloop.demo").joinpath("seed", f"{name}.yaml").read_text("utf-8"))


_NAMES: dict[str, Any] = load("demo")
ORG: str = _NAMES["org"]
SF_USER: str = _NAMES["salesforce_user"]
RULE: str = _NAMES["outbound_rule"]
CASE_SUBJECT: str = _NAMES["case_subject"]
CONNECTION: str = _NAMES["connection"]
ADMIN_EMAIL: str = _NAMES["admin_email"]
SURVEY_NAME: str = _NAMES["survey_name"]
# What the headless run answers (and the browser test): QID -> answer.
ANSWERS: dict[str, str] = _NAMES["answers"]
# The survey's content document (docs/survey-content.md).
SURVEY_CONTENT: dict[str, Any] = load("survey")


def outbound_workflow() -> dict[str, Any]:
    """Case closed in Salesforce -> the customer in the directory, invited by email."""
    return load("outbound_workflow")


def response_workflow() -> dict[str, Any]:
    """A response that carries a CaseId and came through a personal link -> the Case updated,
    a Survey_Response__c upserted."""
    return load("response_workflow")
