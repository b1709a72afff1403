"""The doctor's task checks and their fixes, on describes written by hand (no I/O)."""

from __future__ import annotations

from typing import Any

from cxloop.domain.salesforce_task import SalesforceTaskSpec
from cxloop.salesforce.client import DescribeCache
from cxloop.salesforce.doctor import check_task
from cxloop.salesforce.remedies import Remedies

CASE = {
    "name": "Case",
    "createable": False,
    "updateable": True,
    "deletable": False,
    "queryable": True,
    "fields": [
        {"name": "Id", "type": "id", "createable": False, "updateable": False},
        {"name": "Description", "type": "textarea", "createable": True, "updateable": True},
        {"name": "Priority", "type": "picklist", "createable": False, "updateable": False,
         "picklistValues": [{"value": "High", "active": True}]},
        {"name": "Score__c", "type": "double", "createable": True, "updateable": True},
    ],
}  # fmt: skip
ORG = Remedies.for_connection(
    "production", username="int@acme.example", instance_url="https://acme.my.salesforce.com"
)
EMULATOR = Remedies.for_connection(
    "emulator",
    username="integration@example.com",
    instance_url="http://127.0.0.1:8701",
    org_id="00D5g00000SfEmUEAV",
    profile="cxloop Integration",
)


def errors(task: dict[str, Any], remedies: Remedies = ORG) -> dict[str, Any]:
    spec = SalesforceTaskSpec.model_validate(task)
    return {f.check: f for f in check_task(spec, CASE, remedies) if f.level == "error"}


def update(*fields: str) -> dict[str, Any]:
    return {"object": "Case", "action": "update",
            "mappings": [{"field": f, "value": "x"} for f in fields]}  # fmt: skip


def test_a_misspelled_custom_field_gets_the_near_name_and_no_double_suffix() -> None:
    finding = errors(update("Descripton__c"))["field_missing"]
    assert finding.field == "Descripton__c"
    assert finding.fix == (
        "Did you mean Description? Check the spelling of the API name; if Case.Descripton__c "
        "exists, make it visible and editable for the profile of int@acme.example (or a "
        "permission set assigned to that user) in Setup → Object Manager → Case → Fields & "
        "Relationships → Descripton__c → Set Field-Level Security."
    )


def test_an_unknown_custom_field_without_a_near_name_is_not_suffixed_again() -> None:
    fix = errors(update("Wholly_Unrelated__c"))["field_missing"].fix
    assert fix.startswith("Check the spelling of the API name; if Case.Wholly_Unrelated__c")
    assert "__c__c" not in fix


def test_a_standard_looking_name_is_told_custom_fields_end_in_c() -> None:
    fix = errors(update("Sentiment"))["field_missing"].fix
    assert fix.startswith(
        "Check the spelling of the API name (a custom field's ends in __c: Sentiment__c);"
    )


def test_a_missing_object_right_names_setup_for_an_org_and_the_org_file_for_the_emulator() -> None:
    task = {"object": "Case", "action": "insert",
            "mappings": [{"field": "Description", "value": "x"}]}  # fmt: skip
    org = errors(task)["object_permission"].fix
    assert org == (
        "In Setup → Users → Profiles, open the profile of int@acme.example (or a permission set "
        "assigned to that user) → Object Settings → Case → Edit, and tick Create."
    )
    emulator = errors(task, EMULATOR)["object_permission"].fix
    assert emulator.startswith(
        "In the emulator's org file, add create under profiles: 'cxloop Integration' → objects "
        "→ Case (`Case: [read, create, edit]`); then restart the emulator"
    )


def test_fields_do_not_repeat_a_right_the_object_lacks() -> None:
    task = {"object": "Case", "action": "insert",
            "mappings": [{"field": "Priority", "value": "High"}]}  # fmt: skip
    assert set(errors(task)) == {"object_permission"}


def test_a_read_only_field_fix_names_field_level_security_or_the_org_file() -> None:
    assert (
        "Set Field-Level Security, untick Read-Only"
        in errors(update("Priority"))["field_not_writable"].fix
    )
    fix = errors(update("Priority"), EMULATOR)["field_not_writable"].fix
    assert "`Priority: edit`" in fix and "profiles: 'cxloop Integration' → fields → Case" in fix
    assert "Setup" not in fix


def test_the_emulator_api_fix_is_its_control_api_call() -> None:
    assert EMULATOR.api_enabled() == (
        "Switch it on: `curl -X PATCH http://127.0.0.1:8701/__emulator__/users/"
        """integration@example.com -d '{"api_enabled": true}'`."""
    )


def test_the_describe_cache_is_bounded_and_forgets_the_oldest() -> None:
    cache = DescribeCache(60, max_entries=2)
    for name in ("Case", "Contact", "Account"):
        cache.put(("CN_1", name.lower()), {"name": name})
    assert cache.get(("CN_1", "case")) is None
    assert cache.get(("CN_1", "contact")) == {"name": "Contact"}
    assert cache.get(("CN_1", "account")) == {"name": "Account"}
    cache.put(("CN_1", "contact"), {"name": "Contact"})  # refreshed: the newest again
    cache.put(("CN_1", "lead"), {"name": "Lead"})
    assert cache.get(("CN_1", "account")) is None
    assert cache.get(("CN_1", "contact")) is not None
