"""The web edge's hardening (issue 12): browser security headers, nulls in changes, 405's
Allow, a contact import's format, the outbound listener's 413, the OpenAPI document, private
data files, and secrets kept out of the logged path."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cxloop.bootstrap import Container, build_container
from cxloop.logs import redact_text
from cxloop.settings import Settings
from cxloop.web.app import create_app
from cxloop.web.middleware import loggable_path
from tests.conftest import Person, make_settings
from tests.integration.survey_helpers import make_survey
from tests.integration.test_auth_api import assert_error

API = "/api/v1"


# --- finding 6: security headers ---------------------------------------------------------------


def _csp(response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {
        part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2]
        for part in policy.split(";")
        if part.strip()
    }


def test_every_page_and_reply_forbids_framing_inline_script_and_sniffing(
    client: TestClient, alice: Person
) -> None:
    survey_id = make_survey(client, alice)
    for path in ("/login", "/", "/optout/not-a-token", f"/s/{survey_id}", f"{API}/surveys"):
        reply = client.get(path, headers=alice.headers if path.startswith(API) else None)
        csp = _csp(reply)
        assert csp["default-src"] == "'self'", path
        assert csp["script-src"] == "'self'" and "unsafe-inline" not in str(csp), path
        assert csp["frame-ancestors"] == "'none'", path
        assert reply.headers["x-content-type-options"] == "nosniff", path
        assert reply.headers["x-frame-options"] == "DENY", path
        assert reply.headers["referrer-policy"] in ("no-referrer", "same-origin"), path
        assert "strict-transport-security" not in reply.headers, path  # plain http
    # Even a refusal made before any route (a NUL in the address) carries them.
    assert "frame-ancestors 'none'" in client.get("/login%00").headers["content-security-policy"]


def test_named_origins_may_frame_survey_pages_only_and_https_gets_hsts(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, f"sqlite:///{tmp_path / 'queue.db'}",
        frame_ancestors=["https://intranet.example.com", "https://*.example.org"],
        base_url="https://cx.example.com",
    )  # fmt: skip
    built = build_container(settings)
    try:
        with TestClient(create_app(built)) as web:
            survey = web.get("/s/SV_unknown00000000")
            assert _csp(survey)["frame-ancestors"] == (
                "https://intranet.example.com https://*.example.org"
            )
            assert "x-frame-options" not in survey.headers
            login = web.get("/login")
            assert _csp(login)["frame-ancestors"] == "'none'"
            for reply in (survey, login):
                assert reply.headers["strict-transport-security"].startswith("max-age=")
    finally:
        built.close()


@pytest.mark.parametrize(
    "origin", ["intranet.example.com", "https://x.example.com; script-src *", "https://a b"]
)
def test_frame_ancestors_accepts_only_origins(origin: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frame_ancestors"):
        Settings(data_dir=tmp_path, frame_ancestors=[origin])


def test_frame_ancestors_is_a_comma_separated_list_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXLOOP_FRAME_ANCESTORS", "https://a.example.com, https://*.b.org:8443")
    assert Settings(data_dir=tmp_path).frame_ancestors == [
        "https://a.example.com",
        "https://*.b.org:8443",
    ]


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    templates = Path(__file__).parents[2] / "src" / "cxloop" / "web" / "templates"
    for page in templates.rglob("*.html"):
        text = page.read_text()
        assert "<script>" not in text and "<style" not in text, page
        assert " style=" not in text and " onclick=" not in text, page


# --- finding 8: null for a field that cannot be null ---------------------------------------------


@pytest.mark.parametrize("field", ["name", "description", "language", "status"])
def test_patching_a_survey_field_to_null_is_422_naming_the_field(
    client: TestClient, alice: Person, field: str
) -> None:
    created = client.post(f"{API}/surveys", json={"name": "NPS"}, headers=alice.headers).json()
    path = f"{API}/surveys/{created['id']}"
    error = assert_error(client.patch(path, json={field: None}, headers=alice.headers), 422)
    assert [d["field"] for d in error["details"]] == [field]
    assert client.get(path, headers=alice.headers).json()[field] == created[field]


def test_patching_a_directory_name_to_null_is_422_but_its_rule_can_be_cleared(
    client: TestClient, alice: Person
) -> None:
    made = client.post(
        f"{API}/directories",
        json={"name": "Customers", "frequency_limit": 2, "frequency_days": 30},
        headers=alice.headers,
    ).json()
    path = f"{API}/directories/{made['id']}"
    error = assert_error(client.patch(path, json={"name": None}, headers=alice.headers), 422)
    assert error["details"][0]["field"] == "name"
    no_rule = {"frequency_limit": None, "frequency_days": None}
    cleared = client.patch(path, json=no_rule, headers=alice.headers)
    assert cleared.status_code == 200 and cleared.json()["frequency_limit"] is None


def test_ids_beyond_what_a_database_integer_holds_are_422_not_500(
    client: TestClient, admin: Person
) -> None:
    huge = 2**64
    assert_error(client.get(f"{API}/audit", params={"before_id": huge}, headers=admin.headers), 422)
    assert_error(client.delete(f"{API}/tokens/{huge}", headers=admin.headers), 422)
    assert (
        client.get(
            f"{API}/audit", params={"before_id": 2**63 - 1}, headers=admin.headers
        ).status_code
        == 200
    )


# --- finding 10: 405, contact import format, the listener's 413, OpenAPI -----------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/surveys", "GET, POST"),
        ("POST", "/api/v1/surveys/SV_x", "DELETE, GET, PATCH"),
        ("DELETE", "/login", "GET, POST"),
        ("GET", "/hooks/salesforce/outbound/abc", "POST"),
        ("PATCH", "/api/v1/directories/DR_x/contacts", "GET, POST"),
        ("POST", "/static/cxloop.css", "GET, HEAD"),
    ],
)
def test_405_names_every_method_the_address_accepts(
    client: TestClient, alice: Person, method: str, path: str, allowed: str
) -> None:
    reply = client.request(method, path, headers=alice.headers)
    error = assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == allowed
    assert method in error["message"]


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [("text/csv", "jsonl"), ("application/x-ndjson", "csv"), ("image/png", "csv")],
)
def test_contact_import_refuses_a_format_that_contradicts_the_content_type(
    client: TestClient, alice: Person, content_type: str, fmt: str
) -> None:
    made = client.post(f"{API}/directories", json={"name": "C"}, headers=alice.headers).json()
    url = f"{API}/directories/{made['id']}/contacts/import"
    reply = client.post(
        url,
        content=b'{"email": "a@example.com"}\n',
        params={"format": fmt},
        headers={**alice.headers, "Content-Type": content_type},
    )
    error = assert_error(reply, 415, "unsupported_media_type")
    assert f"?format={fmt}" in error["message"]
    # Agreeing, or a body that says nothing of its format, is read as asked.
    for agreeing in ("application/x-ndjson", "text/plain"):
        fine = client.post(
            url,
            content=b'{"email": "a@example.com"}\n',
            params={"format": "jsonl"},
            headers={**alice.headers, "Content-Type": agreeing},
        )
        assert fine.status_code == 200, fine.text


def test_outbound_listener_answers_413_with_a_soap_fault_over_the_server_limit(
    client: TestClient, container: Container
) -> None:
    body = b"x" * (container.settings.max_request_bytes + 1)
    reply = client.post("/hooks/salesforce/outbound/anything", content=body)
    assert reply.status_code == 413
    assert reply.headers["content-type"].startswith("text/xml")
    assert b"<faultstring>" in reply.content


def test_openapi_documents_the_bulk_reply_and_every_error_in_our_shape(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/api/v1/surveys/{survey_id}/responses"]["post"]["responses"]
    created = post["201"]["content"]["application/json"]["schema"]["anyOf"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in created} == {"ResponseOut", "BulkOut"}
    assert post["207"]["content"]["application/json"]["schema"]["$ref"].endswith("/BulkOut")
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            for status in ("401", "404", "422"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorOut"), (method, path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


# --- finding 9: private files ----------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_data_directory_and_its_files_are_private(
    tmp_path: Path, permissive_umask: None
) -> None:
    data = tmp_path / "data"
    built = build_container(Settings(data_dir=data).with_secrets(), upgrade_sqlite=True)
    try:
        with built.db.uow() as uow:  # a write, so that the WAL exists
            uow.session.execute(text("CREATE TABLE scratch (x INTEGER)"))
            uow.commit()
    finally:
        built.close()
    assert _mode(data) == 0o700
    files = [p for p in data.iterdir() if p.is_file()]
    names = {p.name for p in files}
    assert {"cxloop.db", "queue.db", "secret_key", "encryption_keys"} <= names
    assert {p.name: _mode(p) for p in files} == {name: 0o600 for name in names}


def test_an_existing_readable_data_directory_is_made_private_at_start(
    tmp_path: Path, permissive_umask: None
) -> None:
    data = tmp_path / "data"
    build_container(Settings(data_dir=data).with_secrets(), upgrade_sqlite=True).close()
    # As an earlier version left it: readable by everyone.
    data.chmod(0o755)
    (data / "metrics-8000").mkdir(mode=0o755)
    (data / "metrics-8000" / "counter_1.db").write_bytes(b"")
    for path in data.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for extra in ("cxloop.db-wal", "cxloop.db-shm", "cxloop.db-writer.lock"):
        (data / extra).touch(mode=0o644)
    build_container(Settings(data_dir=data).with_secrets()).close()
    assert _mode(data) == 0o700
    for path in data.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path


# --- finding 5: secrets in logged paths (the e2e test greps real server logs) -----------------


@pytest.mark.parametrize(
    ("path", "route", "params", "shown"),
    [
        ("/hooks/salesforce/outbound/s3cr3tT0k3n", "/hooks/salesforce/outbound/{token}",
         {"token": "s3cr3tT0k3n"}, "/hooks/salesforce/outbound/**********"),
        ("/optout/s3cr3tT0k3n", "/optout/{token}", {"token": "s3cr3tT0k3n"},
         "/optout/**********"),
        ("/hooks/salesforce/outbound/s3cr3tT0k3n/x", None, {},
         "/hooks/salesforce/outbound/**********/x"),
        ("/optout/s3cr3tT0k3n/", None, {}, "/optout/**********/"),
        ("/api/v1/surveys/SV_1", "/api/v1/surveys/{survey_id}", {"survey_id": "SV_1"},
         "/api/v1/surveys/SV_1"),
    ],
)  # fmt: skip
def test_logged_paths_mask_secret_segments(
    path: str, route: str | None, params: dict, shown: str
) -> None:
    class Route:
        pass

    scope: dict = {"path": path, "path_params": params}
    if route:
        scope["route"] = Route()
        scope["route"].path = route
    assert loggable_path(scope) == shown
    assert "s3cr3t" not in loggable_path(scope)


def test_secrets_in_free_text_are_masked() -> None:
    text = (
        "GET http://h/s/SV_1?t=perso&x=1 code=abc /cb?code=c0de&state=st4te "
        "Bearer b34rer cxl_ap1t0k3n /hooks/salesforce/outbound/0utb0und "
        "/optout/0pt0ut?token=t0k3n&refresh_token=r3fr3sh"
    )
    masked = redact_text(text)
    for secret in ("perso", "c0de", "st4te", "b34rer", "ap1t0k3n", "0utb0und", "0pt0ut",
                   "t0k3n", "r3fr3sh"):  # fmt: skip
        assert secret not in masked, secret
    assert "x=1" in masked and "SV_1" in masked
