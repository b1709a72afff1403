"""OAuth 2.0: authorize (login, consent, auto-login), token (code + PKCE, refresh, client
credentials), revoke, identity URL, userinfo, policies, session timeout. In process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs

import pytest

from sfemu.testing import InProcessEmulator, in_process

from .conftest import Api, error_of
from .oauth_helpers import CALLBACK, authorize_params, log_in, new_pkce, redirect_params


@pytest.fixture
def app_info(client: Any) -> dict[str, Any]:
    return client.get("/__emulator__/info").json()["connected_apps"][0]


def exchange(
    client: Any,
    app: dict[str, Any],
    code: str,
    verifier: str | None = None,
    prefix: str = "",
    redirect_uri: str = CALLBACK,
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "redirect_uri": redirect_uri,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return client.post(f"{prefix}/services/oauth2/token", data=data)


def code_for(
    client: Any,
    app: dict[str, Any],
    username: str = "admin@example.com",
    password: str = "sfemu-admin",
    prefix: str = "",
    **kwargs: Any,
) -> tuple[str, Any]:
    pkce = new_pkce()
    response = log_in(
        client, prefix, authorize_params(app["client_id"], pkce=pkce, **kwargs), username, password
    )
    return redirect_params(response)["code"], pkce


def test_web_server_flow_with_login_consent_and_pkce(client: Any, app_info: dict[str, Any]) -> None:
    pkce = new_pkce()
    response = log_in(
        client,
        "",
        authorize_params(app_info["client_id"], pkce=pkce, state="xyz"),
        "admin@example.com",
        "sfemu-admin",
    )
    params = redirect_params(response)
    assert params["state"] == "xyz" and params["code"]
    token = exchange(client, app_info, params["code"], pkce.verifier)
    assert token.status_code == 200
    body = token.json()
    assert list(body) == [
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert "expires_in" not in body
    assert body["token_type"] == "Bearer" and body["instance_url"] == "http://sfemu.test"
    assert body["access_token"].startswith("00D5g00000SfEmU!")
    assert body["id"].startswith("http://sfemu.test/id/00D5g00000SfEmUEAV/005")
    issued_ms = int(body["issued_at"])
    assert abs(issued_ms / 1000 - time.time()) < 60
    expected = base64.b64encode(
        hmac.new(
            app_info["client_secret"].encode(),
            (body["id"] + body["issued_at"]).encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    assert body["signature"] == expected
    assert token.headers["cache-control"].startswith("no-cache")
    api = Api(client, body["access_token"])
    assert api.get("/limits").status_code == 200


def test_wrong_password_shows_the_form_again(client: Any, app_info: dict[str, Any]) -> None:
    response = log_in(
        client, "", authorize_params(app_info["client_id"]), "admin@example.com", "wrong"
    )
    assert response.status_code == 200
    assert "Please check your username and password" in response.text
    assert 'action="authorize/login"' in response.text


def test_deny_redirects_with_access_denied(client: Any, app_info: dict[str, Any]) -> None:
    response = log_in(
        client,
        "",
        authorize_params(app_info["client_id"], state="s9"),
        "admin@example.com",
        "sfemu-admin",
        allow=False,
    )
    assert redirect_params(response) == {
        "error": "access_denied",
        "error_description": "end-user denied authorization",
        "state": "s9",
    }


def test_consent_is_remembered(client: Any, app_info: dict[str, Any]) -> None:
    code_for(client, app_info)
    params = authorize_params(app_info["client_id"])
    client.get("/services/oauth2/authorize", params=params)
    again = client.post(
        "/services/oauth2/authorize/login",
        data={**params, "username": "admin@example.com", "password": "sfemu-admin"},
        follow_redirects=False,
    )
    assert "code" in redirect_params(again)


def test_unknown_client_and_wrong_redirect_uri_show_an_error_page(
    client: Any, app_info: dict[str, Any]
) -> None:
    unknown = client.get(
        "/services/oauth2/authorize", params=authorize_params("nope"), follow_redirects=False
    )
    assert unknown.status_code == 400 and "error=invalid_client_id" in unknown.text
    wrong = client.get(
        "/services/oauth2/authorize",
        params=authorize_params(app_info["client_id"], redirect_uri="http://evil.example/cb"),
        follow_redirects=False,
    )
    assert wrong.status_code == 400 and "redirect_uri_mismatch" in wrong.text
    # Exact match: a trailing slash is a different URI.
    slash = client.get(
        "/services/oauth2/authorize",
        params=authorize_params(app_info["client_id"], redirect_uri=CALLBACK + "/"),
        follow_redirects=False,
    )
    assert slash.status_code == 400


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": "abc", "code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "api chatter_api"}, "invalid_scope"),
    ],
)
def test_bad_authorize_parameters_redirect_with_an_error(
    client: Any, app_info: dict[str, Any], extra: dict[str, str], error: str
) -> None:
    response = client.get(
        "/services/oauth2/authorize",
        params=authorize_params(app_info["client_id"], **extra),
        follow_redirects=False,
    )
    params = redirect_params(response)
    assert params["error"] == error and params["state"] == "st-1"


def test_pkce_required_by_the_app(client: Any, app_info: dict[str, Any]) -> None:
    client.patch("/__emulator__/apps/cxloop", json={"require_pkce": True})
    response = client.get(
        "/services/oauth2/authorize",
        params=authorize_params(app_info["client_id"]),
        follow_redirects=False,
    )
    assert redirect_params(response)["error_description"] == "missing required code challenge"


def test_wrong_or_missing_verifier(client: Any, app_info: dict[str, Any]) -> None:
    code, _pkce = code_for(client, app_info)
    wrong = exchange(client, app_info, code, "not-the-verifier")
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "invalid code verifier"}
    code, _pkce = code_for(client, app_info)
    assert exchange(client, app_info, code).json()["error_description"] == "invalid code verifier"


def test_wrong_redirect_uri_at_the_token_endpoint(client: Any, app_info: dict[str, Any]) -> None:
    code, pkce = code_for(client, app_info)
    response = exchange(
        client,
        app_info,
        code,
        pkce.verifier,
        redirect_uri="http://localhost:8000/oauth/salesforce/callback",
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "redirect_uri_mismatch",
        "error_description": "redirect_uri must match configuration",
    }


def test_a_code_works_once(client: Any, app_info: dict[str, Any]) -> None:
    code, pkce = code_for(client, app_info)
    assert exchange(client, app_info, code, pkce.verifier).status_code == 200
    again = exchange(client, app_info, code, pkce.verifier)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "invalid authorization code",
    }


def test_client_authentication_errors(client: Any, app_info: dict[str, Any]) -> None:
    code, pkce = code_for(client, app_info)
    bad_secret = client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": app_info["client_id"],
            "client_secret": "wrong",
            "redirect_uri": CALLBACK,
            "code_verifier": pkce.verifier,
        },
    )
    assert bad_secret.json() == {
        "error": "invalid_client",
        "error_description": "invalid client credentials",
    }
    no_secret = client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": app_info["client_id"],
            "redirect_uri": CALLBACK,
            "code_verifier": pkce.verifier,
        },
    )
    assert no_secret.json()["error"] == "invalid_client"
    bad_id = client.post(
        "/services/oauth2/token",
        data={"grant_type": "authorization_code", "client_id": "x", "code": code},
    )
    assert bad_id.json() == {
        "error": "invalid_client_id",
        "error_description": "client identifier invalid",
    }
    basic = base64.b64encode(
        f"{app_info['client_id']}:{app_info['client_secret']}".encode()
    ).decode()
    with_basic = client.post(
        "/services/oauth2/token",
        headers={"Authorization": f"Basic {basic}"},
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": pkce.verifier,
        },
    )
    assert with_basic.status_code == 200


def test_unsupported_grant_type(client: Any, app_info: dict[str, Any]) -> None:
    for grant in ("password", ""):
        response = client.post(
            "/services/oauth2/token", data={"grant_type": grant, "client_id": app_info["client_id"]}
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "unsupported_grant_type",
            "error_description": "grant type not supported",
        }


def tokens_for(client: Any, app: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    code, pkce = code_for(client, app, **kwargs)
    response = exchange(client, app, code, pkce.verifier, prefix=kwargs.get("prefix", ""))
    assert response.status_code == 200, response.text
    return response.json()


def refresh(client: Any, app: dict[str, Any], refresh_token: str, **extra: str) -> Any:
    return client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            **extra,
        },
    )


def test_refresh_gives_a_new_access_token_without_a_refresh_token(
    client: Any, app_info: dict[str, Any]
) -> None:
    first = tokens_for(client, app_info)
    response = refresh(client, app_info, first["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body and "expires_in" not in body
    assert body["access_token"] != first["access_token"] and body["id"] == first["id"]
    assert Api(client, body["access_token"]).get("/limits").status_code == 200
    assert Api(client, first["access_token"]).get("/limits").status_code == 200


def test_refresh_token_rotation(client: Any, app_info: dict[str, Any]) -> None:
    client.patch("/__emulator__/orgs/acme", json={"rotate_refresh_tokens": True})
    first = tokens_for(client, app_info)
    rotated = refresh(client, app_info, first["refresh_token"]).json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert refresh(client, app_info, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(client, app_info, rotated["refresh_token"]).status_code == 200


def test_revoking_a_refresh_token_kills_its_access_tokens(
    client: Any, app_info: dict[str, Any]
) -> None:
    first = tokens_for(client, app_info)
    second_access = refresh(client, app_info, first["refresh_token"]).json()["access_token"]
    assert (
        client.post("/services/oauth2/revoke", data={"token": first["refresh_token"]}).status_code
        == 200
    )
    for access in (first["access_token"], second_access):
        response = Api(client, access).get("/limits")
        assert response.status_code == 401
        assert error_of(response) == {
            "message": "Session expired or invalid",
            "errorCode": "INVALID_SESSION_ID",
        }
    dead = refresh(client, app_info, first["refresh_token"])
    assert dead.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


def test_revoking_an_access_token_leaves_the_refresh_token(
    client: Any, app_info: dict[str, Any]
) -> None:
    first = tokens_for(client, app_info)
    assert (
        client.get("/services/oauth2/revoke", params={"token": first["access_token"]}).status_code
        == 200
    )
    assert Api(client, first["access_token"]).get("/limits").status_code == 401
    assert refresh(client, app_info, first["refresh_token"]).status_code == 200


def test_revoke_errors(client: Any) -> None:
    missing = client.post("/services/oauth2/revoke", data={})
    assert missing.status_code == 400
    assert parse_qs(missing.text)["error"] == ["unsupported_token_type"]
    unknown = client.post("/services/oauth2/revoke", data={"token": "nope"})
    assert unknown.status_code == 400 and parse_qs(unknown.text) == {
        "error": ["invalid_token"],
        "error_description": ["invalid token"],
    }


@pytest.mark.parametrize(
    "policy",
    [{"kind": "expire_after", "seconds": 0.2}, {"kind": "expire_if_unused", "seconds": 0.2}],
)
def test_refresh_token_policies_expire_tokens(
    client: Any, app_info: dict[str, Any], policy: dict[str, Any]
) -> None:
    assert (
        client.patch("/__emulator__/orgs/acme", json={"refresh_token_policy": policy}).status_code
        == 200
    )
    first = tokens_for(client, app_info)
    assert refresh(client, app_info, first["refresh_token"]).status_code == 200
    time.sleep(0.3)
    expired = refresh(client, app_info, first["refresh_token"])
    assert expired.status_code == 400
    assert expired.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


def test_expire_if_unused_stays_alive_while_used(client: Any, app_info: dict[str, Any]) -> None:
    client.patch(
        "/__emulator__/orgs/acme",
        json={"refresh_token_policy": {"kind": "expire_if_unused", "seconds": 0.4}},
    )
    first = tokens_for(client, app_info)
    for _ in range(3):
        time.sleep(0.2)
        assert refresh(client, app_info, first["refresh_token"]).status_code == 200


def test_session_timeout_then_refresh(client: Any, app_info: dict[str, Any]) -> None:
    client.patch("/__emulator__/orgs/acme", json={"session_timeout_s": 0.2})
    first = tokens_for(client, app_info)
    api = Api(client, first["access_token"])
    assert api.get("/limits").status_code == 200
    time.sleep(0.3)
    assert error_of(api.get("/limits"))["errorCode"] == "INVALID_SESSION_ID"
    fresh = refresh(client, app_info, first["refresh_token"]).json()["access_token"]
    assert Api(client, fresh).get("/limits").status_code == 200


def test_admin_approved_apps_refuse_unapproved_users(client: Any, app_info: dict[str, Any]) -> None:
    integration = tokens_for(
        client, app_info, username="integration@example.com", password="sfemu-integration"
    )
    client.patch(
        "/__emulator__/orgs/acme",
        json={
            "permitted_users": "admin_approved",
            "admin_approved_profiles": ["System Administrator"],
        },
    )
    params = authorize_params(app_info["client_id"])
    client.get("/services/oauth2/authorize", params=params)
    response = client.post(
        "/services/oauth2/authorize/login",
        data={**params, "username": "integration@example.com", "password": "sfemu-integration"},
        follow_redirects=False,
    )
    assert redirect_params(response)["error"] == "OAUTH_APP_ACCESS_DENIED"
    assert refresh(client, app_info, integration["refresh_token"]).json() == {
        "error": "invalid_grant",
        "error_description": "user hasn't approved this consumer",
    }
    assert tokens_for(client, app_info)["access_token"]  # the administrator is approved


def test_sandbox_users_log_in_at_the_sandbox_host(client: Any, app_info: dict[str, Any]) -> None:
    params = authorize_params(app_info["client_id"])
    wrong_host = log_in(client, "", params, "admin@example.com.dev", "sfemu-admin")
    assert "Please check your username and password" in wrong_host.text
    body = tokens_for(client, app_info, username="admin@example.com.dev", prefix="/sandbox")
    assert body["id"].startswith("http://sfemu.test/sandbox/id/00D5g00000SfEmSEAV/")
    records = Api(client, body["access_token"]).query("SELECT Id FROM Contact").json()
    assert records["totalSize"] == 0  # the sandbox has its own data


def test_auto_login_skips_login_and_consent() -> None:
    with in_process(auto_login="integration@example.com") as emu, emu.client() as client:
        app = client.get("/__emulator__/info").json()["connected_apps"][0]
        pkce = new_pkce()
        response = client.get(
            "/services/oauth2/authorize",
            params=authorize_params(app["client_id"], pkce=pkce),
            follow_redirects=False,
        )
        params = redirect_params(response)
        token = exchange(client, app, params["code"], pkce.verifier).json()
        identity = client.get(
            token["id"].replace("http://sfemu.test", ""),
            headers={"Authorization": f"Bearer {token['access_token']}"},
        ).json()
        assert identity["username"] == "integration@example.com"
        client.patch("/__emulator__/settings", json={"auto_login": None})
        form = client.get(
            "/services/oauth2/authorize",
            params=authorize_params(app["client_id"]),
            follow_redirects=False,
        )
        assert form.status_code == 200 and "password" in form.text


def test_auto_login_of_an_unknown_user_is_refused_at_start() -> None:
    with (
        pytest.raises(ValueError, match=r"no user 'ghost@example\.com'"),
        in_process(auto_login="ghost@example.com"),
    ):
        pass


def test_client_credentials(client: Any, app_info: dict[str, Any]) -> None:
    data = {
        "grant_type": "client_credentials",
        "client_id": app_info["client_id"],
        "client_secret": app_info["client_secret"],
    }
    refused = client.post("/services/oauth2/token", data=data)
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "no client credentials user enabled",
    }
    client.patch(
        "/__emulator__/orgs/acme", json={"client_credentials_user": "integration@example.com"}
    )
    response = client.post("/domain/acme/services/oauth2/token", data=data)
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body
    assert body["id"].startswith("http://sfemu.test/domain/acme/id/")
    assert Api(client, body["access_token"]).get("/limits").status_code == 200
    no_secret = client.post("/services/oauth2/token", data={**data, "client_secret": ""})
    assert no_secret.json()["error"] == "invalid_client"


def test_identity_url_and_userinfo(client: Any, app_info: dict[str, Any]) -> None:
    body = tokens_for(client, app_info)
    path = body["id"].replace("http://sfemu.test", "")
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    identity = client.get(path, headers=headers)
    assert identity.status_code == 200
    doc = identity.json()
    assert doc["id"] == body["id"] and doc["username"] == "admin@example.com"
    assert doc["urls"]["rest"] == "http://sfemu.test/services/data/v{version}/"
    assert client.get(path, params={"oauth_token": body["access_token"]}).status_code == 200
    assert client.get(path).text == "Missing_OAuth_Token"
    bad = client.get(path, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403 and bad.text == "Bad_OAuth_Token"
    other_user = path.rsplit("/", 1)[0] + "/005000000000001AAA"
    assert client.get(other_user, headers=headers).text == "Bad_Id"
    info = client.get("/services/oauth2/userinfo", headers=headers).json()
    assert info["preferred_username"] == "admin@example.com" and info["sub"] == body["id"]
    assert client.get("/services/oauth2/userinfo").status_code == 403


def test_inactive_users_cannot_get_or_use_tokens(client: Any, app_info: dict[str, Any]) -> None:
    body = tokens_for(
        client, app_info, username="integration@example.com", password="sfemu-integration"
    )
    client.patch("/__emulator__/users/integration@example.com", json={"active": False})
    assert Api(client, body["access_token"]).get("/limits").status_code == 401
    assert refresh(client, app_info, body["refresh_token"]).json()["error"] == "inactive_user"


def test_discovery_document(client: Any) -> None:
    doc = client.get("/sandbox/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == "http://sfemu.test/sandbox/services/oauth2/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]


def test_rest_auth_header_errors(emu: InProcessEmulator, client: Any) -> None:
    missing = client.get("/services/data/v62.0/limits")
    assert missing.status_code == 401 and error_of(missing)["errorCode"] == "INVALID_SESSION_ID"
    basic = client.get("/services/data/v62.0/limits", headers={"Authorization": "Basic abc"})
    assert error_of(basic) == {"message": "INVALID_HEADER_TYPE", "errorCode": "INVALID_AUTH_HEADER"}
    oauth_scheme = client.get(
        "/services/data/v62.0/limits", headers={"Authorization": f"OAuth {emu.token()}"}
    )
    assert oauth_scheme.status_code == 200
