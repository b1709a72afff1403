"""Health endpoints, metrics and API docs."""

from pathlib import Path

from fastapi.testclient import TestClient

from cxloop.bootstrap import build_container
from cxloop.web.app import create_app
from tests.conftest import make_settings


def test_livez_and_readyz(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "queue": "ok"}}


def test_readyz_names_the_unreachable_queue(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, "redis://127.0.0.1:1/0")
    container = build_container(settings)
    with TestClient(create_app(container)) as client:
        reply = client.get("/readyz")
    container.close()
    assert reply.status_code == 503
    assert reply.json()["checks"]["database"] == "ok"
    assert reply.json()["checks"]["queue"].startswith("unreachable")


def test_readyz_names_a_database_behind_on_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    container = build_container(make_settings(tmp_path, url, f"sqlite:///{tmp_path / 'q.db'}"))
    with TestClient(create_app(container)) as client:
        reply = client.get("/readyz")
    container.close()
    assert reply.status_code == 503
    assert "cxloop db upgrade" in reply.json()["checks"]["database"]


def test_metrics_are_exposed_for_prometheus(client: TestClient) -> None:
    client.get("/livez")
    text = client.get("/metrics").text
    assert "cxloop_http_requests_total" in text
    assert "cxloop_queue_depth" in text


def test_docs_list_the_api(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/surveys", "/api/v1/surveys/{survey_id}", "/api/v1/tokens"} <= set(paths)


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/livez", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    made = client.get("/livez", headers={"X-Request-ID": "bad id\nwith newline"})
    assert made.headers["x-request-id"] != "bad id\nwith newline"
    assert len(made.headers["x-request-id"]) == 32
