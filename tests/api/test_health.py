"""Liveness and readiness: /readyz tells an unmigrated or unreachable database apart."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hotline.app import create_app
from hotline.db import Database
from tests.conftest import settings_for


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_readyz_reports_pending_migrations(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'empty.db'}")
    db = Database.from_settings(settings)
    try:
        with TestClient(create_app(settings, db)) as client:
            r = client.get("/readyz")
            assert r.status_code == 503 and r.json()["code"] == "migrations_pending"
            assert client.get("/healthz").status_code == 200
    finally:
        db.dispose()


def test_readyz_reports_unreachable_database() -> None:
    settings = settings_for("postgresql+psycopg://nobody@127.0.0.1:1/none")
    db = Database.from_settings(settings)
    try:
        with TestClient(create_app(settings, db)) as client:
            r = client.get("/readyz")
            assert r.status_code == 503 and r.json()["code"] == "database_unreachable"
    finally:
        db.dispose()


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}/transitions",
        "/api/v1/cities",
        "/api/v1/services",
    ):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 200
