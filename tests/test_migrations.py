"""One Alembic history for both databases: it applies cleanly and matches the models."""

from __future__ import annotations

from pathlib import Path

from hotline import migrate
from hotline.db import Database
from tests.conftest import empty_pg_schema, settings_for


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
    with empty_pg_schema("hl_migration_check") as db:
        _check(db)


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
