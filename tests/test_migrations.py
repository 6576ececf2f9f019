"""One Alembic history for both databases: it applies cleanly and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from hotline import migrate
from hotline.db import Database
from tests.conftest import PG_URL, pg_schema_url, settings_for


def _check(db: Database) -> None:
    migrate.upgrade(db.engine)
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    assert migrate.drift(db.engine) == []
    migrate.upgrade(db.engine)  # running it again is a no-op
    assert migrate.current_revision(db.engine) == migrate.head_revision()


def test_sqlite_upgrade_head_has_no_drift(tmp_path: Path) -> None:
    db = Database.from_settings(settings_for(f"sqlite:///{tmp_path / 'fresh.db'}"))
    try:
        _check(db)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        db.dispose()


def test_postgresql_upgrade_head_has_no_drift() -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL run: set HOTLINE_TEST_DATABASE_URL (CI does)")
    schema = "hl_migration_check"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    db = Database.from_settings(settings_for(pg_schema_url(PG_URL, schema)))
    try:
        _check(db)
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_drift_is_detected(tmp_path: Path) -> None:
    """The check can fail: a column the migrations do not know shows up as drift."""
    db = Database.from_settings(settings_for(f"sqlite:///{tmp_path / 'drift.db'}"))
    try:
        migrate.upgrade(db.engine)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE city ADD COLUMN stray INTEGER")
        assert migrate.drift(db.engine) != []
    finally:
        db.dispose()
