"""Load an org file (YAML) into orgs, profiles, users, schemas and connected apps.

Every mistake is reported with where it is (``orgs[0].users[1].profile: unknown profile``), so a
person editing the file can fix it without reading this code. docs/emulator.md describes the
format; the packaged default_org.yaml is a complete example.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import ids
from .orgs import AppPolicy, ConnectedApp, Org, OutboundRule, RefreshPolicy, User
from .permissions import FIELD_ACCESS, ObjectPerms, Profile
from .schema import (
    AUDIT_FIELDS,
    Derived,
    FieldDef,
    FieldType,
    PicklistValue,
    RecordTypeDef,
    SObjectDef,
)

MASTER_RECORD_TYPE_ID = "012000000000000AAA"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

_DEFAULT_LENGTHS = {
    FieldType.STRING: 255,
    FieldType.TEXTAREA: 255,
    FieldType.EMAIL: 80,
    FieldType.PHONE: 40,
    FieldType.URL: 255,
    FieldType.PICKLIST: 255,
    FieldType.MULTIPICKLIST: 4099,
    FieldType.COMBOBOX: 255,
    FieldType.ID: 18,
    FieldType.REFERENCE: 18,
}
_DEFAULT_PRECISION = {
    FieldType.DOUBLE: (18, 0),
    FieldType.CURRENCY: (18, 2),
    FieldType.PERCENT: (3, 0),
}


class OrgFileError(ValueError):
    """The org file is not valid; the message says where and why."""


@dataclass
class OrgFile:
    """Everything an org file defines."""

    apps: list[ConnectedApp]
    orgs: list[Org]
    source: str

    def app(self, name_or_client_id: str) -> ConnectedApp | None:
        """The app with this name or client id."""
        for app in self.apps:
            if name_or_client_id in (app.name, app.client_id):
                return app
        return None


def default_org_file_text() -> str:
    """The packaged default org file."""
    return resources.files("sfemu").joinpath("default_org.yaml").read_text(encoding="utf-8")


def load_org_file(path: str | Path | None = None) -> OrgFile:
    """Load and validate an org file; None loads the packaged default."""
    if path is None:
        text, source = default_org_file_text(), "default_org.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise OrgFileError(f"cannot read org file {path}: {exc.strerror}") from exc
        source = str(path)
    return parse_org_file(copy.deepcopy(_parse_yaml(text, source)), source)


@functools.lru_cache(maxsize=8)
def _parse_yaml(text: str, source: str) -> Any:
    # Cached: tests build many emulators from the same file. Callers get a deep copy.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise OrgFileError(f"{source}: not valid YAML: {exc}") from exc


def parse_org_file(data: Any, source: str = "<org file>") -> OrgFile:
    """Validate a parsed org file and build the runtime model."""
    return _Parser(source).parse(data)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> OrgFileError:
        return OrgFileError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def listing(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def known_keys(self, spec: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = set(spec) - allowed
        if unknown:
            raise self.fail(
                where,
                f"unknown key(s) {', '.join(sorted(map(str, unknown)))};"
                f" allowed: {', '.join(sorted(allowed))}",
            )

    # -- top level -------------------------------------------------------------------------

    def parse(self, data: Any) -> OrgFile:
        root = self.mapping(data, "top level")
        self.known_keys(
            root, {"version", "connected_apps", "profiles", "objects", "orgs"}, "top level"
        )
        if root.get("version", 1) != 1:
            raise self.fail("version", "only version 1 is understood")
        apps = [
            self.parse_app(spec, f"connected_apps[{i}]")
            for i, spec in enumerate(self.listing(root.get("connected_apps"), "connected_apps"))
        ]
        names = [app.name for app in apps]
        if len(set(names)) != len(names):
            raise self.fail("connected_apps", "app names must be unique")
        object_specs = self.mapping(root.get("objects"), "objects")
        profile_specs = self.mapping(root.get("profiles"), "profiles")
        org_specs = self.listing(root.get("orgs"), "orgs")
        if not org_specs:
            raise self.fail("orgs", "define at least one org")
        orgs = [
            self.parse_org(spec, f"orgs[{i}]", object_specs, profile_specs, apps)
            for i, spec in enumerate(org_specs)
        ]
        seen_ids: set[str] = set()
        seen_aliases: set[str] = set()
        seen_users: set[str] = set()
        for org in orgs:
            if org.id in seen_ids or org.alias in seen_aliases:
                raise self.fail("orgs", f"org {org.alias} ({org.id}) is defined twice")
            seen_ids.add(org.id)
            seen_aliases.add(org.alias)
            for username in org.users:
                # Usernames are unique across all of Salesforce: the login finds the org by it.
                if username in seen_users:
                    raise self.fail("orgs", f"username {username} is used in two orgs")
                seen_users.add(username)
        return OrgFile(apps=apps, orgs=orgs, source=self.source)

    # -- connected apps --------------------------------------------------------------------

    def parse_app(self, spec: Any, where: str) -> ConnectedApp:
        spec = self.mapping(spec, where)
        self.known_keys(
            spec,
            {
                "name",
                "client_id",
                "client_secret",
                "callback_urls",
                "scopes",
                "require_secret",
                "require_pkce",
                "policy",
            },
            where,
        )
        for key in ("name", "client_id", "client_secret"):
            if not isinstance(spec.get(key), str) or not spec[key]:
                raise self.fail(f"{where}.{key}", "required (a non-empty string)")
        callbacks = [
            str(url) for url in self.listing(spec.get("callback_urls"), f"{where}.callback_urls")
        ]
        return ConnectedApp(
            name=spec["name"],
            client_id=spec["client_id"],
            client_secret=spec["client_secret"],
            callback_urls=callbacks,
            scopes=[
                str(s)
                for s in self.listing(
                    spec.get("scopes", ["api", "refresh_token"]), f"{where}.scopes"
                )
            ],
            require_secret=bool(spec.get("require_secret", True)),
            require_pkce=bool(spec.get("require_pkce", False)),
            policy=self.parse_policy(spec.get("policy"), f"{where}.policy", AppPolicy()),
        )

    def parse_policy(self, spec: Any, where: str, base: AppPolicy) -> AppPolicy:
        spec = self.mapping(spec, where)
        self.known_keys(
            spec,
            {
                "permitted_users",
                "admin_approved_profiles",
                "refresh_token_policy",
                "rotate_refresh_tokens",
                "client_credentials_user",
            },
            where,
        )
        try:
            refresh = base.refresh_token
            if "refresh_token_policy" in spec:
                refresh_spec = self.mapping(
                    spec["refresh_token_policy"], f"{where}.refresh_token_policy"
                )
                refresh = RefreshPolicy(
                    kind=refresh_spec.get("kind", "valid_until_revoked"),
                    seconds=refresh_spec.get("seconds"),
                )
            return AppPolicy(
                permitted_users=spec.get("permitted_users", base.permitted_users),
                admin_approved_profiles=frozenset(
                    spec.get("admin_approved_profiles", base.admin_approved_profiles) or ()
                ),
                refresh_token=refresh,
                rotate_refresh_tokens=bool(
                    spec.get("rotate_refresh_tokens", base.rotate_refresh_tokens)
                ),
                client_credentials_user=spec.get(
                    "client_credentials_user", base.client_credentials_user
                ),
            )
        except ValueError as exc:
            raise self.fail(where, str(exc)) from exc

    # -- orgs ------------------------------------------------------------------------------

    def parse_org(
        self,
        spec: Any,
        where: str,
        global_objects: dict[str, Any],
        profile_specs: dict[str, Any],
        apps: list[ConnectedApp],
    ) -> Org:
        spec = self.mapping(spec, where)
        self.known_keys(
            spec,
            {
                "alias",
                "name",
                "id",
                "kind",
                "edition",
                "daily_api_limit",
                "session_timeout_s",
                "users",
                "records",
                "outbound_messages",
                "objects",
                "connected_app_policies",
            },
            where,
        )
        alias = spec.get("alias")
        if not isinstance(alias, str) or not re.match(r"^[a-z0-9][a-z0-9-]*$", alias):
            raise self.fail(f"{where}.alias", "required: lower-case letters, digits and dashes")
        kind = spec.get("kind", "production")
        if kind not in ("production", "sandbox"):
            raise self.fail(f"{where}.kind", "must be production or sandbox")
        org_id = spec.get("id") or ids.derived_id(ids.ORGANIZATION, "org", alias)
        try:
            org_id = ids.normalize(str(org_id))
        except ids.MalformedId as exc:
            raise self.fail(f"{where}.id", f"{org_id!r} is not a valid 15/18-character Id") from exc
        if not org_id.startswith(ids.ORGANIZATION):
            raise self.fail(f"{where}.id", "an org id starts with 00D")

        # Each org gets its own copy of the schema: record type Ids and overrides are per org.
        object_specs = copy.deepcopy(global_objects)
        for name, override in self.mapping(spec.get("objects"), f"{where}.objects").items():
            override = self.mapping(override, f"{where}.objects.{name}")
            if name in object_specs:
                merged = object_specs[name]
                merged_fields = dict(merged.get("fields") or {})
                merged_fields.update(override.get("fields") or {})
                merged.update({k: v for k, v in override.items() if k != "fields"})
                merged["fields"] = merged_fields
            else:
                object_specs[name] = override
        sobjects = self.build_sobjects(object_specs, org_id)

        profiles = {
            name: self.parse_profile(name, pspec, f"profiles.{name}", sobjects, org_id)
            for name, pspec in profile_specs.items()
        }
        users: dict[str, User] = {}
        for i, uspec in enumerate(self.listing(spec.get("users"), f"{where}.users")):
            user = self.parse_user(uspec, f"{where}.users[{i}]", profiles, org_id)
            if user.username.lower() in users:
                raise self.fail(f"{where}.users[{i}]", f"username {user.username} appears twice")
            users[user.username.lower()] = user
        if not users:
            raise self.fail(f"{where}.users", "define at least one user")

        policies: dict[str, AppPolicy] = {}
        for app_name, pspec in self.mapping(
            spec.get("connected_app_policies"), f"{where}.connected_app_policies"
        ).items():
            app = next((a for a in apps if a.name == app_name), None)
            if app is None:
                raise self.fail(
                    f"{where}.connected_app_policies", f"unknown connected app {app_name!r}"
                )
            policies[app_name] = self.parse_policy(
                pspec, f"{where}.connected_app_policies.{app_name}", app.policy
            )
        for app in apps:
            policy = policies.get(app.name, app.policy)
            for profile_name in policy.admin_approved_profiles:
                if profile_name not in profiles:
                    raise self.fail(
                        f"{where}",
                        f"app {app.name}: unknown admin approved profile {profile_name!r}",
                    )
            # A client credentials user named in the app's default policy may live in another org.
            if (
                app.name in policies
                and policy.client_credentials_user
                and policy.client_credentials_user.lower() not in users
            ):
                raise self.fail(
                    f"{where}.connected_app_policies.{app.name}",
                    f"unknown client credentials user {policy.client_credentials_user!r}",
                )

        daily_limit = spec.get("daily_api_limit", 15000)
        timeout = spec.get("session_timeout_s", 7200)
        if not isinstance(daily_limit, int) or daily_limit < 0:
            raise self.fail(f"{where}.daily_api_limit", "must be a whole number >= 0")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise self.fail(f"{where}.session_timeout_s", "must be a number of seconds > 0")

        org = Org(
            id=org_id,
            alias=alias,
            name=str(spec.get("name") or alias),
            kind=kind,
            edition=str(
                spec.get("edition")
                or ("Developer Edition" if kind == "sandbox" else "Enterprise Edition")
            ),
            pod=ids.pod_for(org_id),
            sobjects=sobjects,
            profiles=profiles,
            users=users,
            daily_api_limit=daily_limit,
            session_timeout_s=float(timeout),
            app_policies=policies,
        )
        for i, rspec in enumerate(
            self.listing(spec.get("outbound_messages"), f"{where}.outbound_messages")
        ):
            org.outbound_rules.append(
                self.parse_outbound_rule(rspec, f"{where}.outbound_messages[{i}]", org)
            )
        seed = self.listing(spec.get("records"), f"{where}.records")
        for i, record in enumerate(seed):
            record = self.mapping(record, f"{where}.records[{i}]")
            attributes = self.mapping(record.get("attributes"), f"{where}.records[{i}].attributes")
            if (
                not isinstance(attributes.get("type"), str)
                or org.sobject(attributes["type"]) is None
            ):
                raise self.fail(
                    f"{where}.records[{i}]", "attributes.type must name an object of the org"
                )
        org.seed = seed
        return org

    # -- objects ---------------------------------------------------------------------------

    def build_sobjects(self, object_specs: dict[str, Any], org_id: str) -> dict[str, SObjectDef]:
        sobjects: dict[str, SObjectDef] = {}
        prefixes: dict[str, str] = {}
        custom_index = 0
        for name, spec in object_specs.items():
            where = f"objects.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail(where, "object names are letters, digits and underscores")
            spec = self.mapping(spec, where)
            prefix = spec.get("key_prefix")
            if prefix is None:
                if not name.endswith("__c"):
                    raise self.fail(where, "a standard object needs its key_prefix")
                while True:
                    prefix = "a0" + ids.base62(custom_index, 1)
                    custom_index += 1
                    if prefix not in prefixes:
                        break
            prefix = str(prefix)
            if not re.match(r"^[0-9A-Za-z]{3}$", prefix):
                raise self.fail(f"{where}.key_prefix", "a key prefix is 3 letters or digits")
            if prefix in prefixes:
                raise self.fail(
                    f"{where}.key_prefix", f"{prefix} is already used by {prefixes[prefix]}"
                )
            prefixes[prefix] = name
            sobjects[name.lower()] = self.build_sobject(name, spec, prefix, org_id, where)
        # References must point at objects that exist.
        for sobject in sobjects.values():
            for fdef in sobject.fields.values():
                for target in fdef.reference_to:
                    if target.lower() not in sobjects and target not in ("RecordType", "Group"):
                        raise self.fail(
                            f"objects.{sobject.name}.fields.{fdef.name}",
                            f"reference to unknown object {target!r}",
                        )
        return sobjects

    def build_sobject(
        self, name: str, spec: dict[str, Any], prefix: str, org_id: str, where: str
    ) -> SObjectDef:
        self.known_keys(
            spec,
            {
                "label",
                "label_plural",
                "key_prefix",
                "name_field",
                "fields",
                "record_types",
                "ownable",
                "createable",
                "updateable",
                "deletable",
                "queryable",
                "sharing",
            },
            where,
        )
        label = str(spec.get("label") or name.removesuffix("__c").replace("_", " "))
        sharing = spec.get("sharing", "public_read_write")
        if sharing not in ("public_read_write", "public_read_only", "private"):
            raise self.fail(
                f"{where}.sharing", "must be public_read_write, public_read_only or private"
            )
        declared = self.mapping(spec.get("fields"), f"{where}.fields")
        name_field = spec.get("name_field")
        if name_field is not None and name_field not in declared:
            raise self.fail(f"{where}.name_field", f"{name_field!r} is not one of its fields")

        fields: dict[str, FieldDef] = {}

        def add(fdef: FieldDef) -> None:
            if fdef.name.lower() in {f.lower() for f in fields}:
                raise self.fail(
                    f"{where}.fields.{fdef.name}", "defined twice (names are case-insensitive)"
                )
            fields[fdef.name] = fdef

        add(
            FieldDef(
                "Id",
                f"{label} ID",
                FieldType.ID,
                length=18,
                nillable=False,
                createable=False,
                updateable=False,
                defaulted_on_create=True,
                id_lookup=True,
                system=True,
            )
        )
        if spec.get("ownable", True):
            add(
                FieldDef(
                    "OwnerId",
                    "Owner ID",
                    FieldType.REFERENCE,
                    length=18,
                    nillable=False,
                    defaulted_on_create=True,
                    reference_to=("Group", "User"),
                    relationship_name="Owner",
                )
            )
        add(
            FieldDef(
                "IsDeleted",
                "Deleted",
                FieldType.BOOLEAN,
                nillable=False,
                createable=False,
                updateable=False,
                defaulted_on_create=True,
                default_value=False,
                system=True,
            )
        )
        for field_name, field_spec in declared.items():
            add(
                self.parse_field(
                    str(field_name), field_spec, f"{where}.fields.{field_name}", name_field
                )
            )

        record_types: list[RecordTypeDef] = []
        rt_specs = self.listing(spec.get("record_types"), f"{where}.record_types")
        if rt_specs:
            add(
                FieldDef(
                    "RecordTypeId",
                    "Record Type ID",
                    FieldType.REFERENCE,
                    length=18,
                    reference_to=("RecordType",),
                )
            )
            record_types.append(
                RecordTypeDef("Master", "Master", MASTER_RECORD_TYPE_ID, None, master=True)
            )
            for i, rt in enumerate(rt_specs):
                rt = self.mapping(rt, f"{where}.record_types[{i}]")
                self.known_keys(
                    rt,
                    {"developer_name", "name", "profiles", "default_for", "active"},
                    f"{where}.record_types[{i}]",
                )
                dev = rt.get("developer_name")
                if not isinstance(dev, str) or not _NAME.match(dev):
                    raise self.fail(
                        f"{where}.record_types[{i}].developer_name", "required, a valid API name"
                    )
                profiles = rt.get("profiles", "*")
                record_types.append(
                    RecordTypeDef(
                        developer_name=dev,
                        name=str(rt.get("name") or dev.replace("_", " ")),
                        id=ids.derived_id(ids.RECORD_TYPE, org_id, name, dev),
                        profiles=None
                        if profiles == "*"
                        else frozenset(
                            self.listing(profiles, f"{where}.record_types[{i}].profiles")
                        ),
                        active=bool(rt.get("active", True)),
                        default_for=frozenset(
                            self.listing(
                                rt.get("default_for"), f"{where}.record_types[{i}].default_for"
                            )
                        ),
                    )
                )
        for audit in AUDIT_FIELDS:
            is_date = not audit.endswith("ById")
            add(
                FieldDef(
                    audit,
                    {
                        "CreatedDate": "Created Date",
                        "CreatedById": "Created By ID",
                        "LastModifiedDate": "Last Modified Date",
                        "LastModifiedById": "Last Modified By ID",
                        "SystemModstamp": "System Modstamp",
                    }[audit],
                    FieldType.DATETIME if is_date else FieldType.REFERENCE,
                    length=0 if is_date else 18,
                    nillable=False,
                    createable=False,
                    updateable=False,
                    defaulted_on_create=True,
                    system=True,
                    reference_to=() if is_date else ("User",),
                    relationship_name=None if is_date else audit[:-2],
                )
            )
        try:
            return SObjectDef(
                name=name,
                label=label,
                label_plural=str(spec.get("label_plural") or label + "s"),
                key_prefix=prefix,
                custom=name.endswith("__c"),
                fields=fields,
                record_types=record_types,
                createable=bool(spec.get("createable", True)),
                updateable=bool(spec.get("updateable", True)),
                deletable=bool(spec.get("deletable", True)),
                queryable=bool(spec.get("queryable", True)),
                sharing=sharing,
                name_field=name_field,
            )
        except ValueError as exc:
            raise self.fail(where, str(exc)) from exc

    def parse_field(self, name: str, spec: Any, where: str, name_field: str | None) -> FieldDef:
        spec = self.mapping(spec, where)
        self.known_keys(
            spec,
            {
                "type",
                "label",
                "length",
                "precision",
                "scale",
                "digits",
                "required",
                "default",
                "values",
                "restricted",
                "reference_to",
                "relationship_name",
                "external_id",
                "unique",
                "case_sensitive",
                "id_lookup",
                "auto_number",
                "derived",
                "createable",
                "updateable",
            },
            where,
        )
        if not _NAME.match(name):
            raise self.fail(where, "field names are letters, digits and underscores")
        try:
            ftype = FieldType(spec.get("type"))
        except ValueError as exc:
            raise self.fail(
                f"{where}.type", f"one of {', '.join(t.value for t in FieldType)}"
            ) from exc
        custom = name.endswith("__c")
        label = spec.get("label") or _label_from_name(name)
        length = int(spec.get("length", _DEFAULT_LENGTHS.get(ftype, 0)))
        precision, scale = _DEFAULT_PRECISION.get(ftype, (0, 0))
        precision = int(spec.get("precision", precision))
        scale = int(spec.get("scale", scale))
        digits = int(spec.get("digits", 9 if ftype == FieldType.INT else 0))
        required = bool(spec.get("required", False))
        createable = bool(spec.get("createable", True))
        updateable = bool(spec.get("updateable", True))
        default = spec.get("default")
        picklist: tuple[PicklistValue, ...] = ()
        if ftype in (FieldType.PICKLIST, FieldType.MULTIPICKLIST, FieldType.COMBOBOX):
            entries = []
            for i, value in enumerate(self.listing(spec.get("values"), f"{where}.values")):
                if isinstance(value, dict):
                    entries.append(
                        PicklistValue(
                            str(value["value"]),
                            str(value.get("label", value["value"])),
                            bool(value.get("default", False)),
                        )
                    )
                elif isinstance(value, str | int | float):
                    entries.append(PicklistValue(str(value), str(value), str(value) == default))
                else:
                    raise self.fail(f"{where}.values[{i}]", "a value or {value, label, default}")
            picklist = tuple(entries)
            if default is None:
                default = next((entry.value for entry in picklist if entry.default), None)
            elif default not in {entry.value for entry in picklist}:
                raise self.fail(f"{where}.default", f"{default!r} is not one of the values")
        elif spec.get("values") is not None:
            raise self.fail(f"{where}.values", "only picklists have values")
        reference_to: tuple[str, ...] = ()
        relationship_name = spec.get("relationship_name")
        if ftype == FieldType.REFERENCE:
            targets = spec.get("reference_to")
            if isinstance(targets, str):
                targets = [targets]
            if not targets:
                raise self.fail(
                    f"{where}.reference_to", "a reference names the object(s) it points to"
                )
            reference_to = tuple(str(t) for t in targets)
            if relationship_name is None:
                if custom:
                    relationship_name = name[:-3] + "__r"
                elif name.endswith("Id"):
                    relationship_name = name[:-2]
        auto_number = spec.get("auto_number")
        derived = None
        if "derived" in spec:
            derived = self.parse_derived(spec["derived"], f"{where}.derived")
        defaulted = default is not None or ftype == FieldType.BOOLEAN or auto_number is not None
        nillable = not required and ftype != FieldType.BOOLEAN and auto_number is None
        if auto_number is not None or derived is not None:
            createable = updateable = False
            if auto_number is not None and "length" not in spec:
                length = 30
        if ftype == FieldType.BOOLEAN and default is None:
            default = False
        external_id = bool(spec.get("external_id", False))
        unique = bool(spec.get("unique", False))
        return FieldDef(
            name=name,
            label=str(label),
            type=ftype,
            length=length,
            precision=precision,
            scale=scale,
            digits=digits,
            nillable=nillable,
            # Required means the caller must give it: not when a default or the system fills it.
            required=required and createable and default is None,
            createable=createable,
            updateable=updateable,
            defaulted_on_create=defaulted,
            default_value=default,
            picklist=picklist,
            restricted_picklist=bool(spec.get("restricted", False)),
            reference_to=reference_to,
            relationship_name=relationship_name,
            external_id=external_id,
            unique=unique,
            case_sensitive=bool(spec.get("case_sensitive", False)),
            id_lookup=bool(spec.get("id_lookup", external_id or unique or name == name_field)),
            name_field=name == name_field,
            auto_number=auto_number,
            derived=derived,
            custom=custom,
        )

    def parse_derived(self, spec: Any, where: str) -> Derived:
        spec = self.mapping(spec, where)
        if "full_name" in spec:
            return Derived(
                "full_name", tuple(self.listing(spec["full_name"], f"{where}.full_name"))
            )
        if "in" in spec:
            rule = self.mapping(spec["in"], f"{where}.in")
            return Derived(
                "in",
                (str(rule["field"]),),
                frozenset(self.listing(rule.get("values"), f"{where}.in.values")),
            )
        raise self.fail(where, "use {full_name: [fields]} or {in: {field: F, values: [...]}}")

    # -- profiles and users ----------------------------------------------------------------

    def parse_profile(
        self, name: str, spec: Any, where: str, sobjects: dict[str, SObjectDef], org_id: str
    ) -> Profile:
        spec = self.mapping(spec, where)
        self.known_keys(
            spec, {"api_enabled", "view_all_data", "modify_all_data", "objects", "fields"}, where
        )
        objects: dict[str, ObjectPerms] = {}
        for object_name, perms in self.mapping(spec.get("objects"), f"{where}.objects").items():
            if object_name != "*" and object_name.lower() not in sobjects:
                raise self.fail(f"{where}.objects", f"unknown object {object_name!r}")
            try:
                objects[object_name.lower()] = ObjectPerms.from_names(
                    self.listing(perms, f"{where}.objects.{object_name}")
                )
            except ValueError as exc:
                raise self.fail(f"{where}.objects.{object_name}", str(exc)) from exc
        fields: dict[str, dict[str, str]] = {}
        for object_name, field_specs in self.mapping(spec.get("fields"), f"{where}.fields").items():
            sobject = sobjects.get(object_name.lower())
            if sobject is None:
                raise self.fail(f"{where}.fields", f"unknown object {object_name!r}")
            entries: dict[str, str] = {}
            for field_name, access in self.mapping(
                field_specs, f"{where}.fields.{object_name}"
            ).items():
                fdef = sobject.field(field_name)
                if fdef is None:
                    raise self.fail(
                        f"{where}.fields.{object_name}", f"unknown field {field_name!r}"
                    )
                if access not in FIELD_ACCESS:
                    raise self.fail(
                        f"{where}.fields.{object_name}.{field_name}", "one of hidden, read, edit"
                    )
                if fdef.system or (fdef.required and access == "hidden"):
                    raise self.fail(
                        f"{where}.fields.{object_name}.{field_name}",
                        "system and required fields cannot be restricted",
                    )
                entries[fdef.name.lower()] = access
            fields[sobject.name.lower()] = entries
        return Profile(
            name=name,
            id=ids.derived_id(ids.PROFILE, org_id, name),
            api_enabled=bool(spec.get("api_enabled", True)),
            view_all_data=bool(spec.get("view_all_data", False)),
            modify_all_data=bool(spec.get("modify_all_data", False)),
            objects=objects,
            fields=fields,
        )

    def parse_user(self, spec: Any, where: str, profiles: dict[str, Profile], org_id: str) -> User:
        spec = self.mapping(spec, where)
        self.known_keys(
            spec,
            {
                "username",
                "first_name",
                "last_name",
                "email",
                "profile",
                "password",
                "alias",
                "active",
                "api_enabled",
                "timezone",
                "locale",
                "language",
            },
            where,
        )
        username = spec.get("username")
        if not isinstance(username, str) or "@" not in username:
            raise self.fail(f"{where}.username", "required, in the form of an email address")
        profile = profiles.get(spec.get("profile", ""))
        if profile is None:
            raise self.fail(
                f"{where}.profile",
                f"unknown profile {spec.get('profile')!r}; known: {', '.join(profiles)}",
            )
        last_name = str(spec.get("last_name") or username.split("@")[0])
        first_name = str(spec.get("first_name") or "")
        return User(
            id=ids.derived_id(ids.USER, org_id, username.lower()),
            username=username,
            first_name=first_name,
            last_name=last_name,
            email=str(spec.get("email") or username),
            profile=profile,
            password=str(spec.get("password") or "sfemu"),
            alias=str(spec.get("alias") or (first_name[:1] + last_name)[:8].lower()),
            active=bool(spec.get("active", True)),
            api_enabled_override=None if spec.get("api_enabled", True) else False,
            timezone=str(spec.get("timezone", "America/Los_Angeles")),
            locale=str(spec.get("locale", "en_US")),
            language=str(spec.get("language", "en_US")),
        )

    def parse_outbound_rule(self, spec: Any, where: str, org: Org) -> OutboundRule:
        spec = self.mapping(spec, where)
        try:
            return build_outbound_rule(spec, org)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from exc


def build_outbound_rule(spec: dict[str, Any], org: Org, rule_id: str | None = None) -> OutboundRule:
    """Validate an outbound message rule (org file or control API) against an org's schema."""
    allowed = {
        "name",
        "object",
        "events",
        "field",
        "value",
        "fields",
        "endpoint_url",
        "include_session_id",
        "user",
        "active",
        "api_version",
        "id",
    }
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("name is required: letters, digits and underscores")
    sobject = org.sobject(str(spec.get("object", "")))
    if sobject is None:
        raise ValueError(f"object {spec.get('object')!r} does not exist in org {org.alias}")
    url = spec.get("endpoint_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("endpoint_url must be an http:// or https:// URL")
    events = tuple(spec.get("events") or ("created", "updated"))
    if not events or set(events) - {"created", "updated"}:
        raise ValueError("events is a list of created and/or updated")
    trigger_field = spec.get("field")
    if trigger_field is not None:
        fdef = sobject.field(str(trigger_field))
        if fdef is None:
            raise ValueError(f"field {trigger_field!r} does not exist on {sobject.name}")
        trigger_field = fdef.name
    fields: list[str] = []
    for field_name in spec.get("fields") or ["Id"]:
        fdef = sobject.field(str(field_name))
        if fdef is None:
            raise ValueError(f"field {field_name!r} does not exist on {sobject.name}")
        if fdef.name not in fields:
            fields.append(fdef.name)
    if "Id" not in fields:
        fields.insert(0, "Id")
    username = spec.get("user")
    if username is not None and org.user(str(username)) is None:
        raise ValueError(f"user {username!r} does not exist in org {org.alias}")
    if username is None:
        username = next(iter(org.users.values())).username
    return OutboundRule(
        id=rule_id or spec.get("id") or ids.derived_id(ids.OUTBOUND_ACTION, org.id, name),
        name=name,
        sobject=sobject.name,
        endpoint_url=url,
        fields=fields,
        events=events,
        field=trigger_field,
        value=spec.get("value"),
        include_session_id=bool(spec.get("include_session_id", False)),
        user=org.user(str(username)).username if org.user(str(username)) else None,
        active=bool(spec.get("active", True)),
        api_version=str(spec.get("api_version", "62.0")),
    )


def _label_from_name(name: str) -> str:
    base = name.removesuffix("__c").replace("_", " ")
    if base.endswith("Id") and not name.endswith("__c"):
        base = base[:-2] + " ID"
    # Split CamelCase: "AnnualRevenue" -> "Annual Revenue".
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base)
