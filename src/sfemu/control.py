"""The control API under /__emulator__: JSON endpoints for tests and scripts.

Everything a test needs to arrange Salesforce's behaviour: org info, reset and seed, records,
API usage, fault injection, per-org OAuth/session settings, users' tokens and API access,
outbound rules and the queue. docs/emulator.md documents every endpoint with an example.
Errors answer ``{"error": code, "detail": text}`` with 400 or 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from .dml import Dml, RecordFailure, render_record, update_as_administrator
from .emulator import Emulator, policy_from_dict
from .errors import SalesforceError
from .faults import FaultSpecError
from .httputil import json_response, request_base_url
from .latency import LatencyModel
from .oauth import token_response
from .orgfile import build_outbound_rule
from .orgs import Org, RefreshPolicy


class ControlError(Exception):
    """A control API request that cannot be done."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    def response(self) -> Response:
        """The JSON error."""
        return json_response({"error": self.error, "detail": self.detail}, self.status)


async def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


async def _json(request: Request, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ControlError(400, "bad_request", "a JSON object body is required")
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ControlError(400, "bad_request", "the body must be a JSON object")
    return data


def _org(emulator: Emulator, key: str | None, *, required: bool = False) -> Org | None:
    if key is None:
        if required:
            raise ControlError(400, "bad_request", 'say which org: "org" (alias or id)')
        return None
    org = emulator.org(str(key))
    if org is None:
        raise ControlError(
            404,
            "unknown_org",
            f"no org {key!r}; known: {', '.join(o.alias for o in emulator.orgs.values())}",
        )
    return org


class _ControlRoute(APIRoute):
    """A control endpoint: a ControlError or SalesforceError (from the endpoint or what it
    depends on: the org, the body) becomes its JSON answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ControlError as exc:
                return exc.response()
            except SalesforceError as exc:
                return json_response(
                    {"error": exc.code, "detail": exc.message, "fields": exc.fields}, 400
                )

        return handle


router = APIRouter(prefix="/__emulator__", route_class=_ControlRoute)
_T = TypeVar("_T")


async def _body(request: Request) -> dict[str, Any]:
    return await _json(request)


async def _optional_body(request: Request) -> dict[str, Any]:
    return await _json(request, required=False)


# What control endpoints take: the emulator, the JSON object body (required or not), the org
# named in the path (`org_key`) or by the query parameter `org` (none: every org). All async:
# none blocks, so none needs a worker thread.
EmulatorDep = Annotated[Emulator, Depends(_emulator)]


async def _org_in_path(emulator: EmulatorDep, org_key: str) -> Org:
    org = _org(emulator, org_key)
    assert org is not None  # a path always names one
    return org


async def _org_in_query(request: Request, emulator: EmulatorDep) -> Org | None:
    return _org(emulator, request.query_params.get("org"))


Body = Annotated[dict[str, Any], Depends(_body)]
OptionalBody = Annotated[dict[str, Any], Depends(_optional_body)]
OrgInPath = Annotated[Org, Depends(_org_in_path)]
OrgInQuery = Annotated[Org | None, Depends(_org_in_query)]


def info(emulator: Emulator, base: str) -> dict[str, Any]:
    """Orgs with ids, login URLs and users; connected apps with credentials and callbacks."""
    with emulator.lock:
        return {
            "base_url": base,
            "instance_url": base,
            "auto_login": emulator.auto_login,
            "api_versions": emulator.settings.api_versions,
            "orgs": [
                {
                    "alias": org.alias,
                    "id": org.id,
                    "name": org.name,
                    "kind": org.kind,
                    "edition": org.edition,
                    "login_url": emulator.login_url(org, base),
                    "my_domain_url": emulator.my_domain_url(org, base),
                    "instance_url": base,
                    "daily_api_limit": org.daily_api_limit,
                    "session_timeout_s": org.session_timeout_s,
                    "latency": org.latency.as_dict(),
                    "concurrent_requests": emulator.in_flight.running(org.id),
                    "users": [
                        {
                            "username": u.username,
                            "id": u.id,
                            "profile": u.profile.name,
                            "password": u.password,
                            "active": u.active,
                            "api_enabled": u.api_enabled,
                        }
                        for u in org.users.values()
                    ],
                    "connected_app_policies": {
                        app.name: org.policy_for(app).as_dict() for app in emulator.apps
                    },
                    "outbound_rules": [rule.as_dict() for rule in org.outbound_rules],
                }
                for org in emulator.orgs.values()
            ],
            "connected_apps": [
                {
                    "name": app.name,
                    "client_id": app.client_id,
                    "client_secret": app.client_secret,
                    "callback_urls": app.callback_urls,
                    "scopes": app.scopes,
                    "require_secret": app.require_secret,
                    "require_pkce": app.require_pkce,
                }
                for app in emulator.apps
            ],
        }


@router.get("/info")
async def get_info(request: Request, emulator: EmulatorDep) -> Response:
    """GET /__emulator__/info."""
    return json_response(info(emulator, emulator.public_base_url(request_base_url(request))))


@router.post("/reset")
async def reset(emulator: EmulatorDep, body: OptionalBody) -> Response:
    """POST /__emulator__/reset [{"org": alias}]: back to the org file."""
    org = _org(emulator, body.get("org"))
    reset_ids = emulator.reset(org.id if org else None)
    return json_response({"reset": reset_ids})


@router.post("/seed")
async def seed(emulator: EmulatorDep, body: Body) -> Response:
    """POST /__emulator__/seed {"org", "records": [...]}: insert records as the system."""
    org = _org(emulator, body.get("org") or next(iter(emulator.orgs.values())).alias)
    records = body.get("records")
    if not isinstance(records, list):
        raise ControlError(
            400, "bad_request", '"records" must be a list of records with attributes.type'
        )
    return json_response(emulator.seed(org, records), 201)


@router.get("/records")
async def list_records(request: Request, emulator: EmulatorDep) -> Response:
    """GET /__emulator__/records?org=&sobject=&limit=&include_deleted=: records as stored."""
    params = request.query_params
    org = _org(emulator, params.get("org") or next(iter(emulator.orgs.values())).alias)
    name = params.get("sobject")
    if not name:
        raise ControlError(400, "bad_request", "sobject is required (e.g. ?sobject=Case)")
    sobject = org.sobject(name)
    if sobject is None:
        raise ControlError(404, "unknown_sobject", f"no object {name!r} in org {org.alias}")
    limit = int(params.get("limit", "1000"))
    include_deleted = params.get("include_deleted", "false").lower() == "true"
    with emulator.lock:
        table = emulator.table(org, sobject)
        rows = list(table.all() if include_deleted else table.live())
        records = rows[-limit:] if limit else []
        return json_response({"totalSize": len(rows), "records": records})


def _found(found: _T | None, error: str, detail: str) -> _T:
    """What a lookup found, or a 404 that says what was not found."""
    if found is None:
        raise ControlError(404, error, detail)
    return found


def _find(emulator: Emulator, org: Org, record_id: str) -> tuple[Any, dict[str, Any]]:
    detail = f"no record {record_id} in org {org.alias}"
    return _found(emulator.find_record(org, record_id), "not_found", detail)


@router.get("/records/{org_key}/{record_id}")
async def get_record(emulator: EmulatorDep, org: OrgInPath, record_id: str) -> Response:
    """GET /__emulator__/records/{org}/{id}."""
    with emulator.lock:
        sobject, record = _find(emulator, org, record_id)
        caller = emulator.system_caller(org)
        return json_response(render_record(caller.view(sobject), record, caller.api_version))


@router.patch("/records/{org_key}/{record_id}")
async def update_record(
    emulator: EmulatorDep, org: OrgInPath, body: Body, record_id: str
) -> Response:
    """PATCH /__emulator__/records/{org}/{id} {fields}: update as the administrator (rules fire)."""
    with emulator.lock:
        sobject, _record = _find(emulator, org, record_id)
        try:
            caller = update_as_administrator(emulator, org, sobject, record_id, body)
        except RecordFailure as failure:
            raise ControlError(400, failure.error.code, failure.error.message) from None
        _sobject, record = _find(emulator, org, record_id)
        return json_response(render_record(caller.view(sobject), record, caller.api_version))


@router.delete("/records/{org_key}/{record_id}")
async def delete_record(emulator: EmulatorDep, org: OrgInPath, record_id: str) -> Response:
    """DELETE /__emulator__/records/{org}/{id}."""
    with emulator.lock:
        sobject, _record = _find(emulator, org, record_id)
        txn = emulator.transaction()
        try:
            Dml(emulator, emulator.system_caller(org), txn).delete(record_id, sobject)
        except RecordFailure as failure:
            txn.rollback()
            raise ControlError(400, failure.error.code, failure.error.message) from None
        txn.commit()
    return Response(status_code=204)


@router.get("/api_usage")
async def api_usage(emulator: EmulatorDep) -> Response:
    """GET /__emulator__/api_usage: calls counted per org in the rolling 24 hours."""
    with emulator.lock:
        return json_response(
            {
                org.alias: {
                    "org_id": org.id,
                    "used": emulator.usage[org.id].used(),
                    "allocation": org.daily_api_limit,
                }
                for org in emulator.orgs.values()
            }
        )


@router.delete("/api_usage")
async def reset_api_usage(emulator: EmulatorDep, org: OrgInQuery) -> Response:
    """DELETE /__emulator__/api_usage[?org=]: forget counted calls."""
    with emulator.lock:
        for org_id, usage in emulator.usage.items():
            if org is None or org.id == org_id:
                usage.reset()
        emulator.save_usage()
    return Response(status_code=204)


# -- faults ---------------------------------------------------------------------------------


@router.get("/faults")
async def list_faults(emulator: EmulatorDep) -> Response:
    """GET /__emulator__/faults."""
    with emulator.lock:
        return json_response({"faults": [f.as_dict() for f in emulator.faults.faults]})


@router.post("/faults")
async def add_fault(emulator: EmulatorDep, body: Body) -> Response:
    """POST /__emulator__/faults {org?, error|latency_ms|mode, count|fraction, ...}."""
    org = _org(emulator, body.get("org"))
    with emulator.lock:
        if (
            body.get("user")
            and (org is None or org.user(body["user"]) is None)
            and emulator.find_user(body["user"]) is None
        ):
            raise ControlError(404, "unknown_user", f"no user {body['user']!r}")
        try:
            fault = emulator.faults.add(body, org.id if org else None)
        except FaultSpecError as exc:
            raise ControlError(400, "bad_fault", str(exc)) from None
        return json_response(fault.as_dict(), 201)


@router.delete("/faults")
async def clear_faults(emulator: EmulatorDep, org: OrgInQuery) -> Response:
    """DELETE /__emulator__/faults[?org=]."""
    with emulator.lock:
        removed = emulator.faults.clear(org.id if org else None)
    return json_response({"removed": removed})


@router.delete("/faults/{fault_id}")
async def remove_fault(emulator: EmulatorDep, fault_id: str) -> Response:
    """DELETE /__emulator__/faults/{id}."""
    with emulator.lock:
        if not emulator.faults.remove(fault_id):
            raise ControlError(404, "not_found", f"no fault {fault_id}")
    return Response(status_code=204)


# -- orgs, apps, users, tokens --------------------------------------------------------------


@router.get("/orgs/{org_key}")
async def get_org(request: Request, emulator: EmulatorDep, org: OrgInPath) -> Response:
    """GET /__emulator__/orgs/{org}: the org's entry of info."""
    everything = info(emulator, emulator.public_base_url(request_base_url(request)))
    return json_response(next(o for o in everything["orgs"] if o["id"] == org.id))


@router.patch("/orgs/{org_key}")
async def patch_org(
    request: Request, emulator: EmulatorDep, org: OrgInPath, body: Body
) -> Response:
    """PATCH /__emulator__/orgs/{org}: session timeout, API allocation, connected app policy."""
    allowed = {
        "session_timeout_s",
        "daily_api_limit",
        "app",
        "permitted_users",
        "admin_approved_profiles",
        "refresh_token_policy",
        "rotate_refresh_tokens",
        "client_credentials_user",
        *LatencyModel.KEYS,
    }
    unknown = set(body) - allowed
    if unknown:
        raise ControlError(
            400,
            "bad_request",
            f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}",
        )
    # Check the latency model first so that a bad value changes nothing.
    latency = LatencyModel(**org.latency.as_dict())
    try:
        latency.update(body)
    except ValueError as exc:
        raise ControlError(400, "bad_request", str(exc)) from None
    with emulator.lock:
        if "session_timeout_s" in body:
            value = body["session_timeout_s"]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ControlError(
                    400, "bad_request", "session_timeout_s must be a number of seconds > 0"
                )
            org.session_timeout_s = float(value)
        if "daily_api_limit" in body:
            value = body["daily_api_limit"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ControlError(
                    400, "bad_request", "daily_api_limit must be a whole number >= 0"
                )
            org.daily_api_limit = value
        policy_keys = allowed - {"session_timeout_s", "daily_api_limit", "app", *LatencyModel.KEYS}
        if policy_keys & set(body):
            app = emulator.app(body.get("app") or emulator.apps[0].name) if emulator.apps else None
            if app is None:
                raise ControlError(404, "unknown_app", f"no connected app {body.get('app')!r}")
            current = org.policy_for(app)
            refresh = body.get("refresh_token_policy")
            try:
                if refresh is not None:
                    if not isinstance(refresh, dict):
                        raise ValueError('refresh_token_policy is {"kind": ..., "seconds": N}')
                    RefreshPolicy(
                        refresh.get("kind", "valid_until_revoked"), refresh.get("seconds")
                    )
                username = body.get("client_credentials_user", current.client_credentials_user)
                if username is not None and org.user(username) is None:
                    raise ValueError(f"no user {username!r} in org {org.alias}")
                for profile in body.get("admin_approved_profiles") or []:
                    if profile not in org.profiles:
                        raise ValueError(f"no profile {profile!r} in org {org.alias}")
                merged = current.as_dict()
                merged.update({k: v for k, v in body.items() if k in policy_keys})
                org.app_policies[app.name] = policy_from_dict(merged, current)
            except ValueError as exc:
                raise ControlError(400, "bad_request", str(exc)) from None
        org.latency = latency
        emulator.save_state()
    return await get_org(request, emulator, org)


@router.patch("/apps/{name}")
async def patch_app(emulator: EmulatorDep, body: Body, name: str) -> Response:
    """PATCH /__emulator__/apps/{name} {callback_urls | add_callback_urls}."""
    with emulator.lock:
        app = emulator.app(name)
        if app is None:
            raise ControlError(404, "unknown_app", f"no connected app {name!r}")
        if "callback_urls" in body:
            if not isinstance(body["callback_urls"], list):
                raise ControlError(400, "bad_request", "callback_urls must be a list of URLs")
            app.callback_urls = [str(u) for u in body["callback_urls"]]
        for url in body.get("add_callback_urls") or []:
            if str(url) not in app.callback_urls:
                app.callback_urls.append(str(url))
        for key in ("require_pkce", "require_secret"):
            if key in body:
                setattr(app, key, bool(body[key]))
        emulator.save_state()
        return json_response(
            {
                "name": app.name,
                "client_id": app.client_id,
                "callback_urls": app.callback_urls,
                "require_pkce": app.require_pkce,
                "require_secret": app.require_secret,
            }
        )


def _user(emulator: Emulator, username: str) -> tuple[Org, Any]:
    return _found(emulator.find_user(username), "unknown_user", f"no user {username!r}")


@router.patch("/users/{username}")
async def patch_user(emulator: EmulatorDep, body: Body, username: str) -> Response:
    """PATCH /__emulator__/users/{username} {api_enabled, active}."""
    with emulator.lock:
        org, user = _user(emulator, username)
        if "api_enabled" in body:
            user.api_enabled_override = None if body["api_enabled"] else False
        if "active" in body:
            user.active = bool(body["active"])
            record = emulator.find_record(org, user.id)
            if record is not None:
                record[1]["IsActive"] = user.active
        emulator.save_state()
        return json_response(
            {
                "username": user.username,
                "org": org.alias,
                "active": user.active,
                "api_enabled": user.api_enabled,
                **emulator.tokens.live_counts(org.id, user.id),
            }
        )


@router.post("/users/{username}/revoke_tokens")
async def revoke_user_tokens(emulator: EmulatorDep, username: str) -> Response:
    """POST /__emulator__/users/{username}/revoke_tokens: every access and refresh token."""
    with emulator.lock:
        org, user = _user(emulator, username)
        count = emulator.tokens.revoke_user(org.id, user.id)
    return json_response({"username": user.username, "revoked": count})


@router.post("/tokens")
async def issue_token(request: Request, emulator: EmulatorDep, body: Body) -> Response:
    """POST /__emulator__/tokens {"username", "app"?, "refresh_token"?}: a session without OAuth."""
    base = emulator.public_base_url(request_base_url(request))
    with emulator.lock:
        org, user = _user(emulator, str(body.get("username", "")))
        app = emulator.app(body.get("app") or (emulator.apps[0].name if emulator.apps else ""))
        client_id = app.client_id if app else None
        refresh = None
        scopes = list(app.scopes) if app else ["api", "refresh_token"]
        if body.get("refresh_token") and app is not None:
            refresh = emulator.tokens.issue_refresh(
                org.id, user.id, app.client_id, scopes, emulator.login_url(org, base)
            )
        session = emulator.tokens.issue_session(
            org.id,
            user.id,
            client_id,
            scopes,
            emulator.login_url(org, base),
            refresh.token if refresh else None,
        )
        return json_response(
            token_response(emulator, app, session, base, refresh.token if refresh else None), 201
        )


@router.patch("/settings")
async def patch_settings(emulator: EmulatorDep, body: Body) -> Response:
    """PATCH /__emulator__/settings {"auto_login": username | null}."""
    with emulator.lock:
        if "auto_login" in body:
            username = body["auto_login"]
            if username is not None and emulator.find_user(str(username)) is None:
                raise ControlError(404, "unknown_user", f"no user {username!r}")
            emulator.auto_login = username
        emulator.save_state()
        return json_response({"auto_login": emulator.auto_login})


# -- outbound -------------------------------------------------------------------------------


@router.get("/outbound")
async def outbound_queue(request: Request, emulator: EmulatorDep, org: OrgInQuery) -> Response:
    """GET /__emulator__/outbound[?org=&status=]: the queue."""
    messages = emulator.outbound.messages(
        org.id if org else None, request.query_params.get("status")
    )
    return json_response(
        {"notifications": messages, "delivery_thread": emulator.outbound.is_running}
    )


@router.post("/outbound/deliver")
async def outbound_deliver(emulator: EmulatorDep, body: OptionalBody) -> Response:
    """POST /__emulator__/outbound/deliver [{"org", "force": true}]: deliver now, synchronously."""
    org = _org(emulator, body.get("org"))
    results = await anyio.to_thread.run_sync(
        lambda: emulator.outbound.deliver_due(
            force=body.get("force", True), org_id=org.id if org else None
        )
    )
    return json_response({"messages": results})


@router.post("/outbound/{notification_id}/redeliver")
async def outbound_redeliver(emulator: EmulatorDep, notification_id: str) -> Response:
    """POST /__emulator__/outbound/{id}/redeliver: queue a notification again."""
    notification = emulator.outbound.redeliver(notification_id)
    if notification is None:
        raise ControlError(404, "not_found", f"no notification {notification_id}")
    return json_response(notification.as_dict())


@router.delete("/outbound")
async def outbound_clear(emulator: EmulatorDep, org: OrgInQuery) -> Response:
    """DELETE /__emulator__/outbound[?org=]: empty the queue."""
    emulator.outbound.clear(org.id if org else None)
    return Response(status_code=204)


@router.get("/outbound/rules")
async def outbound_rules(emulator: EmulatorDep, org: OrgInQuery) -> Response:
    """GET /__emulator__/outbound/rules[?org=]."""
    with emulator.lock:
        rules = [
            dict(rule.as_dict(), org=o.alias)
            for o in emulator.orgs.values()
            if org is None or o.id == org.id
            for rule in o.outbound_rules
        ]
    return json_response({"rules": rules})


@router.post("/outbound/rules")
async def add_outbound_rule(emulator: EmulatorDep, body: Body) -> Response:
    """POST /__emulator__/outbound/rules {"org", "name", "object", "field", "value", ...}."""
    org = _org(emulator, body.pop("org", None), required=True)
    with emulator.lock:
        try:
            rule = build_outbound_rule(body, org)
        except ValueError as exc:
            raise ControlError(400, "bad_rule", str(exc)) from None
        if any(r.id == rule.id or r.name == rule.name for r in org.outbound_rules):
            raise ControlError(
                400, "bad_rule", f"a rule named {rule.name} already exists in org {org.alias}"
            )
        org.outbound_rules.append(rule)
        emulator.save_state()
        return json_response(dict(rule.as_dict(), org=org.alias), 201)


def _rule(emulator: Emulator, rule_id: str) -> tuple[Org, Any]:
    for org in emulator.orgs.values():
        for rule in org.outbound_rules:
            if rule_id in (rule.id, rule.name):
                return org, rule
    raise ControlError(404, "not_found", f"no outbound rule {rule_id}")


@router.patch("/outbound/rules/{rule_id}")
async def patch_outbound_rule(emulator: EmulatorDep, body: Body, rule_id: str) -> Response:
    """PATCH /__emulator__/outbound/rules/{id or name} {any rule key}."""
    with emulator.lock:
        org, rule = _rule(emulator, rule_id)
        spec = rule.as_dict()
        spec.update(body)
        try:
            updated = build_outbound_rule(spec, org, rule.id)
        except ValueError as exc:
            raise ControlError(400, "bad_rule", str(exc)) from None
        org.outbound_rules[org.outbound_rules.index(rule)] = updated
        emulator.save_state()
        return json_response(dict(updated.as_dict(), org=org.alias))


@router.delete("/outbound/rules/{rule_id}")
async def delete_outbound_rule(emulator: EmulatorDep, rule_id: str) -> Response:
    """DELETE /__emulator__/outbound/rules/{id or name}."""
    with emulator.lock:
        org, rule = _rule(emulator, rule_id)
        org.outbound_rules.remove(rule)
        emulator.save_state()
    return Response(status_code=204)
