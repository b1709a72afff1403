"""`/docs` and `/redoc` come from the package: no CDN, no inline script (issue 13)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_files_of_this_server(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(url.startswith("/static/") for url in urls), urls
    assert "cdn" not in page.text.lower() and "//" not in "".join(urls)
    # every script is a file (a Content-Security-Policy of script-src 'self' allows it)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == []
    for url in urls:
        served = client.get(url)
        assert served.status_code == 200, url
        assert len(served.content) > 100, url


def test_vendored_assets_keep_their_licences(client: TestClient) -> None:
    for url in (
        "/static/vendor/swagger-ui-5.35.0/LICENSE",
        "/static/vendor/swagger-ui-5.35.0/NOTICE",
        "/static/vendor/redoc-2.5.2/LICENSE",
    ):
        assert client.get(url).status_code == 200, url


def test_redoc_bundle_loads_its_logo_from_here_not_from_a_cdn(client: TestClient) -> None:
    bundle = client.get("/static/vendor/redoc-2.5.2/redoc.standalone.js").text
    assert "cdn.redoc.ly" not in bundle
    assert client.get("/static/vendor/redoc-2.5.2/logo-mini.svg").status_code == 200


def test_docs_pages_are_not_in_the_api_description(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/docs" not in paths and "/redoc" not in paths


# 2xx bodies that are free-form by nature, each with its reason. Everything else must say its
# shape in the OpenAPI document (issue 15: reply models are declared where they are returned).
FREE_FORM_BODIES: dict[tuple[str, str, str], str] = {
    ("GET", "/api/v1/surveys/{survey_id}/workflows/{workflow_id}/export", "text/yaml"): (
        "the workflow document as saved: its shape is docs/workflows.md, checked by the domain"
    ),
}


def _untyped(schema: dict, components: dict) -> bool:
    """Whether a body schema says nothing of its shape: {} or an object without properties."""
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if schema.get("type") == "array":
        return _untyped(schema.get("items") or {}, components)
    if any(key in schema for key in ("anyOf", "oneOf", "allOf")):
        parts = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
        return any(_untyped(part, components) for part in parts)
    if not schema:
        return True
    if schema.get("type") == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        return not schema.get("properties") and not isinstance(extra, dict)
    return False


def test_every_success_body_says_its_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    components = spec.get("components", {}).get("schemas", {})
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, reply in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                for media_type, body in (reply.get("content") or {}).items():
                    key = (method.upper(), path, media_type)
                    if _untyped(body.get("schema", {}), components) and key not in FREE_FORM_BODIES:
                        untyped.append(f"{method.upper()} {path} {status} {media_type}")
    assert untyped == []
