"""The org file: the packaged default and the errors a person editing one gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sfemu import ids
from sfemu.orgfile import OrgFileError, default_org_file_text, load_org_file, parse_org_file
from sfemu.schema import FieldType


def default_data() -> dict[str, Any]:
    return yaml.safe_load(default_org_file_text())


def test_default_org_file_has_two_orgs_with_valid_18_character_ids() -> None:
    org_file = load_org_file()
    kinds = {org.alias: org.kind for org in org_file.orgs}
    assert kinds == {"acme": "production", "acme-sandbox": "sandbox"}
    for org in org_file.orgs:
        assert len(org.id) == 18 and org.id.startswith("00D")
        assert ids.normalize(org.id) == org.id


def test_default_org_has_the_standard_objects_and_survey_response() -> None:
    org = load_org_file().orgs[0]
    for name in (
        "Account",
        "Contact",
        "Lead",
        "Case",
        "Opportunity",
        "Task",
        "User",
        "Survey_Response__c",
    ):
        assert org.sobject(name) is not None, name
    survey = org.sobject("survey_response__c")
    assert survey is not None
    key = survey.field("Response_ID__c")
    assert key is not None and key.external_id and key.unique
    assert survey.field("Contact__c").reference_to == ("Contact",)
    assert survey.field("Contact__c").relationship_name == "Contact__r"
    assert survey.field("Case__c").reference_to == ("Case",)
    assert {
        survey.field(n).type
        for n in ("NPS_Score__c", "Survey_Name__c", "Sentiment__c", "Response_Date__c")
    } == {FieldType.DOUBLE, FieldType.STRING, FieldType.PICKLIST, FieldType.DATE}


def test_default_org_users_profiles_and_connected_app() -> None:
    org_file = load_org_file()
    acme = org_file.orgs[0]
    assert acme.user("ADMIN@example.com").profile.name == "System Administrator"
    integration = acme.user("integration@example.com")
    assert integration.profile.name == "cxloop Integration"
    assert integration.profile.api_enabled
    assert org_file.apps[0].name == "cxloop"
    assert org_file.apps[0].client_id.startswith("3MVG9")
    case = acme.sobject("Case")
    internal = next(rt for rt in case.record_types if rt.developer_name == "Internal")
    assert not internal.is_available_to("cxloop Integration")
    assert internal.is_available_to("System Administrator")


def test_each_org_gets_its_own_record_type_ids() -> None:
    first, second = load_org_file().orgs
    ids_first = {rt.id for rt in first.sobject("Case").record_types if not rt.master}
    ids_second = {rt.id for rt in second.sobject("Case").record_types if not rt.master}
    assert ids_first.isdisjoint(ids_second)


def mutate(change: Any) -> dict[str, Any]:
    data = default_data()
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["orgs"][0]["users"][0].update(profile="Nope"),
            "orgs[0].users[0].profile: unknown profile 'Nope'",
        ),
        (
            lambda d: d["objects"]["Account"]["fields"]["Name"].update(type="text"),
            "objects.Account.fields.Name.type",
        ),
        (
            lambda d: d["objects"]["Contact"].update(key_prefix="001"),
            "001 is already used by Account",
        ),
        (
            lambda d: d["orgs"][1]["users"][0].update(username="admin@example.com"),
            "admin@example.com is used in two orgs",
        ),
        (lambda d: d["orgs"][0].update(id="00D123"), "orgs[0].id"),
        (lambda d: d["orgs"][0].update(id="001000000000000AAA"), "an org id starts with 00D"),
        (
            lambda d: d["objects"]["Case"]["fields"]["ContactId"].update(reference_to="Nope"),
            "reference to unknown object",
        ),
        (
            lambda d: d["profiles"]["cxloop Integration"]["objects"].update(Case=["read", "fly"]),
            "unknown object permission",
        ),
        (lambda d: d["orgs"][0].update(colour="blue"), "unknown key(s) colour"),
        (
            lambda d: d["orgs"][0]["outbound_messages"][0].update(field="Nope"),
            "field 'Nope' does not exist on Case",
        ),
        (
            lambda d: d["connected_apps"][0]["policy"].update(permitted_users="everyone"),
            "permitted_users must be",
        ),
        (
            lambda d: d["connected_apps"][0]["policy"].update(
                refresh_token_policy={"kind": "expire_after"}
            ),
            "needs 'seconds'",
        ),
        (lambda d: d.update(orgs=[]), "define at least one org"),
    ],
)
def test_mistakes_are_reported_with_where_and_why(change: Any, message: str) -> None:
    with pytest.raises(OrgFileError) as caught:
        parse_org_file(mutate(change), "my.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("my.yaml: ")


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(OrgFileError, match="cannot read org file"):
        load_org_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("orgs: [\n", encoding="utf-8")
    with pytest.raises(OrgFileError, match="not valid YAML"):
        load_org_file(broken)


def test_an_org_may_extend_the_schema_and_set_app_policies(tmp_path: Path) -> None:
    data = default_data()
    data["orgs"][1]["objects"] = {
        "Account": {"fields": {"Tier__c": {"type": "picklist", "values": ["Gold", "Silver"]}}},
        "Widget__c": {"fields": {"Size__c": {"type": "int"}}},
    }
    data["orgs"][1]["connected_app_policies"] = {
        "cxloop": {
            "refresh_token_policy": {"kind": "expire_if_unused", "seconds": 60},
            "client_credentials_user": "integration@example.com.dev",
        }
    }
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    production, sandbox = load_org_file(path).orgs
    assert sandbox.sobject("Account").field("Tier__c") is not None
    assert production.sobject("Account").field("Tier__c") is None
    assert sandbox.sobject("Widget__c").key_prefix.startswith("a0")
    policy = sandbox.app_policies["cxloop"]
    assert policy.refresh_token.kind == "expire_if_unused" and policy.refresh_token.seconds == 60
    assert policy.client_credentials_user == "integration@example.com.dev"
