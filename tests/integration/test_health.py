"""Health endpoints, metrics and API docs."""

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from cxloop.bootstrap import Container, build_container
from cxloop.db.base import utcnow
from cxloop.db.operations_models import ProcessHeartbeat
from cxloop.services.heartbeats import Heartbeat
from cxloop.web.app import create_app
from tests.conftest import make_settings


def test_livez_and_readyz_with_the_embedded_worker(container: Container) -> None:
    with TestClient(create_app(container, embedded_worker=True)) as client:
        assert client.get("/livez").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "queue": "ok", "workers": "ok", "scheduler": "ok"},
    }


def test_readyz_without_any_worker_or_scheduler_is_degraded_not_unavailable(
    client: TestClient,
) -> None:
    reply = client.get("/readyz")
    # 200: the web tier keeps taking responses in (the ledger keeps them for a worker)
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["workers", "scheduler"]
    assert body["checks"]["workers"] == "no worker has sent a heartbeat: is one running?"
    assert body["checks"]["scheduler"] == "no scheduler has sent a heartbeat: is one running?"
    # monitors that want a red light for it ask strictly
    assert client.get("/readyz?strict=true").status_code == 503


def test_readyz_names_a_silent_worker_and_since_when(
    container: Container, client: TestClient
) -> None:
    container.settings.process_silent_after_s = 30
    worker = Heartbeat(container.db, "worker", period_s=60)
    scheduler = Heartbeat(container.db, "scheduler", period_s=60)
    worker.beat()
    scheduler.beat()
    assert client.get("/readyz").json()["status"] == "ready"
    long_ago = utcnow() - timedelta(seconds=95)
    with container.db.uow() as uow:
        uow.session.execute(
            update(ProcessHeartbeat)
            .where(ProcessHeartbeat.id == worker.id)
            .values(beat_at=long_ago)
        )
        uow.commit()
    body = client.get("/readyz").json()
    assert body["status"] == "degraded" and body["degraded"] == ["workers"]
    assert body["checks"]["scheduler"] == "ok"
    assert body["checks"]["workers"].startswith(
        f"silent: no worker heartbeat since {long_ago.isoformat()} ("
    )
    # a worker stopped on purpose takes its row away: gone, not silent
    worker.stop()
    assert client.get("/readyz").json()["checks"]["workers"].startswith("no worker")


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
