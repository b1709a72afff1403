"""The emulator's state and the operations every entry point shares.

One ``Emulator`` holds the orgs (from the org file), their records (store.py), tokens, API
usage, faults, query cursors and the outbound queue. One re-entrant lock guards all of it:
requests are short (a 200-record Collections call takes about a millisecond), so a single lock
is simpler than finer ones and cannot deadlock. HTTP handlers (rest.py, oauth.py, control.py)
call into it; so can Python code (``sfemu.testing``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from . import ids
from .auth import Session, TokenStore
from .bulk2 import BulkJobs
from .dml import Caller, Dml, RecordFailure, Transaction
from .errors import SalesforceError, api_disabled_for_user, invalid_session, request_limit_exceeded
from .faults import FaultBoard
from .latency import InFlight
from .limits import ApiUsage
from .orgfile import OrgFile, build_outbound_rule, load_org_file
from .orgs import AppPolicy, ConnectedApp, Org, RefreshPolicy, User
from .outbound import OutboundService
from .schema import FieldDef, SObjectDef
from .settings import EmulatorSettings
from .soql import QueryEngine
from .store import Database, Table
from .validation import now_iso

log = logging.getLogger("sfemu")

SANDBOX_PREFIX = "/sandbox"
DOMAIN_PREFIX = "/domain"


class Emulator:
    """A running set of Salesforce orgs."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self.lock = threading.RLock()
        self.org_file: OrgFile = load_org_file(self.settings.org_file)
        self.apps: list[ConnectedApp] = self.org_file.apps
        self.orgs: dict[str, Org] = {org.id: org for org in self.org_file.orgs}
        self.db = Database(self.settings.database)
        self.tokens = TokenStore(self.db)
        self.faults = FaultBoard(self.settings.random_seed)
        self.queries = QueryEngine(self)
        self.outbound = OutboundService(self)
        self.usage: dict[str, ApiUsage] = {org_id: ApiUsage() for org_id in self.orgs}
        self.in_flight = InFlight()
        self.bulk = BulkJobs(self)
        self.auto_login: str | None = self.settings.auto_login
        self._seen_base_url: str | None = None
        self._tables: dict[str, dict[str, Table]] = {}
        self._prefixes: dict[str, dict[str, SObjectDef]] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._auto_numbers: dict[tuple[str, str, str], int] = {}
        self._usage_saved_at = 0.0
        # Interactive OAuth: consent already given (org, user, client id), pending consent pages.
        self.approvals: set[tuple[str, str, str]] = set()
        self.tickets: dict[str, tuple[float, dict[str, str], str, str]] = {}
        with self.lock:
            self._index_orgs()
            self._apply_start_latency(list(self.orgs.values()))
            if self.auto_login and self.find_user(self.auto_login) is None:
                raise ValueError(f"--auto-login: no user {self.auto_login!r} in the org file")
            if self._has_persisted_records():
                self._load_persisted()
            else:
                for org in self.orgs.values():
                    self._seed_org(org)

    # -- lookups --------------------------------------------------------------------------

    def _index_orgs(self) -> None:
        for org in self.orgs.values():
            self._tables.setdefault(org.id, {})
            self._prefixes[org.id] = {s.key_prefix: s for s in org.sobjects.values()}

    def _apply_start_latency(self, orgs: list[Org]) -> None:
        # The start settings (--latency-ms, --per-record-ms) apply to every org the org file
        # defines, again after a reset; the control API changes them per org.
        for org in orgs:
            org.latency.latency_ms = float(self.settings.latency_ms)
            org.latency.per_record_ms = float(self.settings.per_record_ms)

    def org(self, key: str | None) -> Org | None:
        """An org by alias or 15/18-character id (None: the first org)."""
        if key is None:
            return next(iter(self.orgs.values()))
        for org in self.orgs.values():
            if key in (org.alias, org.id, org.id15):
                return org
        normalized = ids.try_normalize(key)
        return self.orgs.get(normalized) if normalized else None

    def find_user(self, username: str) -> tuple[Org, User] | None:
        """The org and user of a username (usernames are unique across orgs)."""
        for org in self.orgs.values():
            user = org.user(username)
            if user is not None:
                return org, user
        return None

    def app(self, client_id_or_name: str) -> ConnectedApp | None:
        """A connected app by client id or name."""
        return self.org_file.app(client_id_or_name)

    def table(self, org: Org, sobject: SObjectDef) -> Table:
        """The records of one object in one org."""
        tables = self._tables[org.id]
        table = tables.get(sobject.name)
        if table is None or table.sobject is not sobject:
            table = tables[sobject.name] = Table(sobject)
        return table

    def sobject_for_id(self, org: Org, record_id: str) -> SObjectDef | None:
        """The object an Id belongs to, from its key prefix."""
        return self._prefixes[org.id].get(record_id[:3])

    def find_record(self, org: Org, record_id: str) -> tuple[SObjectDef, dict[str, Any]] | None:
        """Any record of an org by Id (15 or 18 characters)."""
        normalized = ids.try_normalize(record_id)
        if normalized is None:
            return None
        sobject = self.sobject_for_id(org, normalized)
        if sobject is None:
            return None
        record = self.table(org, sobject).get(normalized)
        return (sobject, record) if record is not None else None

    def new_id(self, org: Org, prefix: str) -> str:
        """A fresh 18-character Id with this key prefix in this org."""
        key = (org.id, prefix)
        counter = self._counters.get(key, 0) + 1
        self._counters[key] = counter
        return ids.make_id(prefix, org.pod, counter)

    def next_auto_number(self, org: Org, sobject: SObjectDef, fdef: FieldDef) -> int:
        """The next value of an auto-number field."""
        key = (org.id, sobject.name, fdef.name)
        number = self._auto_numbers.get(key, 0) + 1
        self._auto_numbers[key] = number
        return number

    # -- URLs -----------------------------------------------------------------------------

    def note_base_url(self, base_url: str) -> None:
        """Remember the base URL requests arrive at (for outbound messages sent later)."""
        if self._seen_base_url is None:
            self._seen_base_url = base_url.rstrip("/")

    def public_base_url(self, request_base: str | None = None) -> str:
        """The base URL clients use: the setting, else the request's, else the last seen."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        if request_base:
            return request_base.rstrip("/")
        return self._seen_base_url or "http://127.0.0.1:8701"

    def login_url(self, org: Org, base: str | None = None) -> str:
        """Where the org's users log in: the base URL (production) or base/sandbox."""
        root = self.public_base_url(base)
        return root + SANDBOX_PREFIX if org.is_sandbox else root

    def my_domain_url(self, org: Org, base: str | None = None) -> str:
        """The org's own login URL (like a My Domain): only its users, client credentials too."""
        return f"{self.public_base_url(base)}{DOMAIN_PREFIX}/{org.alias}"

    # -- sessions -------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> tuple[Org, User, Session]:
        """The org, user and session of a REST call's Authorization header (401 otherwise)."""
        if not authorization:
            raise invalid_session()
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token.strip():
            raise SalesforceError(401, "INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE")
        token = token.strip()
        found = self.tokens.sessions.get(token)
        org = self.orgs.get(found.org_id) if found else None
        if found is None or org is None:
            raise invalid_session()
        session = self.tokens.session(token, org.session_timeout_s)
        user = org.users_by_id.get(found.user_id)
        if session is None or user is None or not user.active:
            raise invalid_session()
        if not user.api_enabled:
            raise api_disabled_for_user()
        return org, user, session

    def caller(self, org: Org, user: User, api_version: str = "62.0") -> Caller:
        """A caller for a user."""
        return Caller(org, user, api_version)

    def system_caller(self, org: Org, api_version: str = "62.0") -> Caller:
        """A caller that bypasses permissions, acting as the org's first administrator."""
        admin = next((u for u in org.users.values() if u.profile.modify_all_data), None)
        return Caller(org, admin or next(iter(org.users.values())), api_version, system=True)

    def issue_session(
        self, username: str, client_id: str | None = None
    ) -> tuple[Org, User, Session]:
        """An access token for a user without the OAuth dance (tests, the control API)."""
        found = self.find_user(username)
        if found is None:
            raise KeyError(username)
        org, user = found
        session = self.tokens.issue_session(
            org.id, user.id, client_id, ["api", "refresh_token"], self.login_url(org)
        )
        return org, user, session

    # -- API usage ------------------------------------------------------------------------

    def count_call(self, org: Org) -> int:
        """Count one API call against the org's allocation (403 when it is spent)."""
        usage = self.usage[org.id]
        if usage.used() >= org.daily_api_limit:
            raise request_limit_exceeded()
        used = usage.add()
        if not self.db.is_memory and time.time() - self._usage_saved_at > 5:
            self.save_usage()
        return used

    def save_usage(self) -> None:
        """Persist API usage counters."""
        self._usage_saved_at = time.time()
        self.db.put_json(
            "state", "usage", {org_id: u.snapshot() for org_id, u in self.usage.items()}
        )

    # -- writes for the control API and seeding -------------------------------------------

    def transaction(self) -> Transaction:
        """A new transaction (commit() persists and fires outbound rules)."""
        return Transaction(self)

    def seed(self, org: Org, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Insert records as the system (no permission checks, validation still applies).

        Each record is ``{"attributes": {"type": T, "referenceId": R}, field: value}``; a value
        ``"@{R}"`` is replaced by the Id of the record with referenceId R. All or nothing.
        """
        with self.lock:
            caller = self.system_caller(org)
            txn = self.transaction()
            dml = Dml(self, caller, txn)
            refs: dict[str, str] = {}
            created = []
            try:
                for index, raw in enumerate(records):
                    if not isinstance(raw, dict):
                        raise SalesforceError(
                            400, "JSON_PARSER_ERROR", f"records[{index}] is not an object"
                        )
                    attributes = raw.get("attributes") or {}
                    sobject = org.sobject(str(attributes.get("type", "")))
                    if sobject is None:
                        raise SalesforceError(
                            400,
                            "INVALID_TYPE",
                            f"records[{index}]: unknown type {attributes.get('type')!r}",
                        )
                    body = {
                        k: _substitute_refs(v, refs) for k, v in raw.items() if k != "attributes"
                    }
                    try:
                        record_id = dml.create(sobject, dml.read_body(sobject, body))
                    except RecordFailure as failure:
                        raise SalesforceError(
                            400,
                            failure.error.code,
                            f"records[{index}]: {failure.error.message}",
                            failure.error.fields,
                        ) from None
                    if attributes.get("referenceId"):
                        refs[str(attributes["referenceId"])] = record_id
                    created.append(
                        {
                            "type": sobject.name,
                            "id": record_id,
                            "referenceId": attributes.get("referenceId"),
                        }
                    )
            except Exception:
                txn.rollback()
                raise
            txn.commit()
            return {"records": created, "refs": refs}

    # -- reset, persistence ---------------------------------------------------------------

    def _system_records(self, org: Org) -> None:
        """Organization, Profile and User records from the org file."""
        now = now_iso()
        admin_id = self.system_caller(org).user.id
        rows = []

        def put(sobject_name: str, record: dict[str, Any]) -> None:
            sobject = org.sobject(sobject_name)
            if sobject is None:
                return
            full = {f: None for f in sobject.fields}
            full.update(record)
            full.update(
                {
                    "IsDeleted": False,
                    "CreatedDate": now,
                    "LastModifiedDate": now,
                    "SystemModstamp": now,
                    "CreatedById": admin_id,
                    "LastModifiedById": admin_id,
                }
            )
            for fdef in sobject.derived_fields:
                full[fdef.name] = fdef.derived.compute(full)  # type: ignore[union-attr]
            self.table(org, sobject).put(full)
            rows.append((org.id, full["Id"], sobject.name, full))

        put(
            "Organization",
            {
                "Id": org.id,
                "Name": org.name,
                "IsSandbox": org.is_sandbox,
                "OrganizationType": org.edition,
                "InstanceName": "EMU1",
            },
        )
        for profile in org.profiles.values():
            put("Profile", {"Id": profile.id, "Name": profile.name})
        for user in org.users.values():
            put(
                "User",
                {
                    "Id": user.id,
                    "Username": user.username,
                    "FirstName": user.first_name or None,
                    "LastName": user.last_name,
                    "Email": user.email,
                    "Alias": user.alias,
                    "IsActive": user.active,
                    "ProfileId": user.profile.id,
                },
            )
        self.db.write_records(rows)

    def _seed_org(self, org: Org) -> None:
        self._system_records(org)
        if org.seed:
            self.seed(org, org.seed)

    def _has_persisted_records(self) -> bool:
        return any(True for _ in self.db.load_records())

    def _load_persisted(self) -> None:
        for org_id, sobject_name, record in self.db.load_records():
            org = self.orgs.get(org_id)
            sobject = org.sobject(sobject_name) if org else None
            if org is None or sobject is None:
                continue  # the org file no longer has it
            self.table(org, sobject).put(record)
            counter = ids.counter_of(record["Id"])
            if counter is not None and record["Id"][3:5] == org.pod:
                key = (org.id, record["Id"][:3])
                self._counters[key] = max(self._counters.get(key, 0), counter)
            for fdef in sobject.fields.values():
                if fdef.auto_number and record.get(fdef.name):
                    digits = re.sub(r"\D", "", str(record[fdef.name]))
                    if digits:
                        key3 = (org.id, sobject.name, fdef.name)
                        self._auto_numbers[key3] = max(self._auto_numbers.get(key3, 0), int(digits))
        for org in self.orgs.values():
            self._system_records(org)  # the org file stays the truth for users and profiles
        self.tokens.load()
        state = dict(self.db.load_json("state"))
        for org_id, buckets in (state.get("usage") or {}).items():
            if org_id in self.usage:
                self.usage[org_id].restore(buckets)
        runtime = state.get("runtime")
        if runtime:
            self.apply_runtime_state(runtime)
        self.outbound.load()

    def runtime_state(self) -> dict[str, Any]:
        """Everything the control API can change, for persistence."""
        return {
            "auto_login": self.auto_login,
            "apps": {app.name: {"callback_urls": app.callback_urls} for app in self.apps},
            "orgs": {
                org.id: {
                    "daily_api_limit": org.daily_api_limit,
                    "session_timeout_s": org.session_timeout_s,
                    "latency": org.latency.as_dict(),
                    "app_policies": {
                        name: policy.as_dict() for name, policy in org.app_policies.items()
                    },
                    "users": {
                        u.username: {
                            "active": u.active,
                            "api_enabled_override": u.api_enabled_override,
                        }
                        for u in org.users.values()
                    },
                    "outbound_rules": [rule.as_dict() for rule in org.outbound_rules],
                }
                for org in self.orgs.values()
            },
        }

    def apply_runtime_state(self, state: dict[str, Any]) -> None:
        """Restore what runtime_state() saved."""
        self.auto_login = state.get("auto_login", self.auto_login)
        for app in self.apps:
            saved = (state.get("apps") or {}).get(app.name)
            if saved:
                app.callback_urls = list(saved.get("callback_urls", app.callback_urls))
        for org_id, saved in (state.get("orgs") or {}).items():
            org = self.orgs.get(org_id)
            if org is None:
                continue
            org.daily_api_limit = saved.get("daily_api_limit", org.daily_api_limit)
            org.session_timeout_s = saved.get("session_timeout_s", org.session_timeout_s)
            try:
                org.latency.update(saved.get("latency") or {})
            except ValueError as exc:
                log.warning("ignoring the saved latency model of org %s: %s", org.alias, exc)
            for name, policy in (saved.get("app_policies") or {}).items():
                org.app_policies[name] = policy_from_dict(policy, AppPolicy())
            for username, flags in (saved.get("users") or {}).items():
                user = org.user(username)
                if user is not None:
                    user.active = flags.get("active", True)
                    user.api_enabled_override = flags.get("api_enabled_override")
            if "outbound_rules" in saved:
                org.outbound_rules = []
                for spec in saved["outbound_rules"]:
                    try:
                        org.outbound_rules.append(
                            build_outbound_rule(dict(spec), org, spec.get("id"))
                        )
                    except ValueError as exc:  # the org file changed under a saved rule
                        log.warning("dropping saved outbound rule %s: %s", spec.get("name"), exc)

    def save_state(self) -> None:
        """Persist the runtime state (after a control API change)."""
        self.db.put_json("state", "runtime", self.runtime_state())

    def reset(self, org_key: str | None = None) -> list[str]:
        """Back to the org file: records re-seeded; tokens, usage, faults, queue and runtime
        changes forgotten. Re-reads the org file. Returns the ids of the orgs reset."""
        with self.lock:
            fresh = load_org_file(self.settings.org_file)
            wanted = self.org(org_key) if org_key is not None else None
            targets = [o for o in fresh.orgs if wanted is None or o.id == wanted.id]
            if org_key is not None and not targets:
                raise KeyError(org_key)
            if org_key is None:
                self.org_file = fresh
                self.apps = fresh.apps
                self.orgs = {o.id: o for o in fresh.orgs}
                self.usage = {org_id: ApiUsage() for org_id in self.orgs}
                self.auto_login = self.settings.auto_login
                self.faults.clear()
                self.tokens.clear()
                self.outbound.clear()
                self.queries.cursors.clear()
                self.bulk.clear()
                self.approvals.clear()
                self.tickets.clear()
                self.db.clear_table("records")
                self.db.clear_table("state")
                self._tables = {}
                self._counters = {}
                self._auto_numbers = {}
            else:
                for org in targets:
                    self.orgs[org.id] = org
                    self.usage[org.id] = ApiUsage()
                    self.faults.clear(org.id)
                    self.tokens.clear(org.id)
                    self.outbound.clear(org.id)
                    self.bulk.clear(org.id)
                    self.db.clear_org(org.id)
                    self._tables[org.id] = {}
                    self._counters = {k: v for k, v in self._counters.items() if k[0] != org.id}
                    self._auto_numbers = {
                        k: v for k, v in self._auto_numbers.items() if k[0] != org.id
                    }
            self._index_orgs()
            self._apply_start_latency(targets)
            for org in targets:
                self._seed_org(org)
            self.save_state()
            return [org.id for org in targets]

    def close(self) -> None:
        """Stop the outbound and Bulk API threads and close the database."""
        self.outbound.stop()
        self.bulk.stop()
        with self.lock:
            if not self.db.is_memory:
                self.save_usage()
                self.save_state()
            self.db.close()


def policy_from_dict(data: dict[str, Any], base: AppPolicy) -> AppPolicy:
    """An AppPolicy from its JSON form (as_dict), missing keys taken from base."""
    refresh = data.get("refresh_token_policy")
    return AppPolicy(
        permitted_users=data.get("permitted_users", base.permitted_users),
        admin_approved_profiles=frozenset(
            data.get("admin_approved_profiles", base.admin_approved_profiles)
        ),
        refresh_token=RefreshPolicy(
            refresh.get("kind", "valid_until_revoked"), refresh.get("seconds")
        )
        if isinstance(refresh, dict)
        else base.refresh_token,
        rotate_refresh_tokens=bool(data.get("rotate_refresh_tokens", base.rotate_refresh_tokens)),
        client_credentials_user=data.get("client_credentials_user", base.client_credentials_user),
    )


def _substitute_refs(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@{") and value.endswith("}"):
        name = value[2:-1].removesuffix(".id")
        if name not in refs:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"unknown reference {value} (referenceIds are set by earlier records)",
            )
        return refs[name]
    return value
