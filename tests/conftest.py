"""Shared fixtures: a fresh database per test on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
import uvicorn
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlmodel import SQLModel, select

from hotline import migrate
from hotline.app import create_app
from hotline.db import Database
from hotline.models import City, Role, Service, StaffUser
from hotline.services.auth import create_token
from hotline.settings import Settings

PG_URL = os.environ.get("HOTLINE_TEST_DATABASE_URL", "").strip()
CITY_HOURS = {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def settings_for(url: str, **overrides: object) -> Settings:
    return Settings(database_url=url, env="test", **overrides)  # type: ignore[arg-type]


def pg_schema_url(base: str, schema: str) -> str:
    """The base URL with a search_path, so every connection (and subprocess) uses `schema`."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def empty_pg_schema(schema: str) -> Iterator[Database]:
    """A Database on a fresh, empty PostgreSQL schema (not migrated), dropped afterwards."""
    if not PG_URL:
        pytest.skip("PostgreSQL run: set HOTLINE_TEST_DATABASE_URL (CI does)")
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    db = Database.from_settings(settings_for(pg_schema_url(PG_URL, schema)))
    try:
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database.from_settings(settings_for(f"sqlite:///{path}"))
    migrate.upgrade(db.engine)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_base() -> Iterator[str]:
    """One migrated schema per test session on the PostgreSQL server; dropped at the end."""
    if not PG_URL:
        pytest.skip("PostgreSQL run: set HOTLINE_TEST_DATABASE_URL (CI does)")
    schema = f"hl_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = pg_schema_url(PG_URL, schema)
    db = Database.from_settings(settings_for(url))
    migrate.upgrade(db.engine)
    db.dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _truncate_pg(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "hotline.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_base")
    db = Database.from_settings(settings_for(url))
    _truncate_pg(db)
    db.dispose()
    yield url


@pytest.fixture
def settings(db_url: str) -> Settings:
    return settings_for(db_url)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings)
    yield database
    database.dispose()


TEST_PASSWORD = "correct horse battery"


@functools.cache
def test_password_hash() -> str:
    # A real argon2id hash with the cheapest parameters: the tests log in thousands of times,
    # and verification reads the parameters from the hash itself. Production hashes use the
    # library defaults (hash_password).
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(TEST_PASSWORD)


@dataclass
class World:
    """The cities, services, staff and tokens most tests start from."""

    network_token: str
    city_tokens: dict[str, str]

    def headers(self, who: str = "network") -> dict[str, str]:
        token = self.network_token if who == "network" else self.city_tokens[who]
        return {"Authorization": f"Bearer {token}"}


def seed_world(db: Database) -> World:
    with db.write() as session:
        for key, name, ags in (
            ("muenchen", "München", "09162000"),
            ("augsburg", "Augsburg", "09761000"),
            ("nuernberg", "Nürnberg", "09564000"),
            ("dresden", "Dresden", "14612000"),
        ):
            session.add(
                City(
                    key=key,
                    name=name,
                    ags=ags,
                    state="BY",
                    service_hours=CITY_HOURS,
                    active=key != "dresden",
                )
            )
        session.flush()
        city_ids = {c.key: c.id for c in session.exec(select(City)).all()}
        session.add(Service(key="bayernid", name="BayernID", topic="konto"))
        session.add(
            Service(
                key="epayment", name="ePayment", topic="zahlung", owner_city_id=city_ids["augsburg"]
            )
        )
        session.add(
            Service(key="gewerbe-online", name="Gewerbe online", leika_key="99050012104000")
        )
        for username, role, city in (
            ("agent.muc", Role.agent, "muenchen"),
            ("agent2.muc", Role.agent, "muenchen"),
            ("agent.aux", Role.agent, "augsburg"),
            ("admin.muc", Role.city_admin, "muenchen"),
            ("admin.aux", Role.city_admin, "augsburg"),
            ("koordination", Role.coordinator, None),
        ):
            # argon2 is slow on purpose; hash once per test run, not per user and test.
            session.add(
                StaffUser(
                    username=username,
                    display_name=username,
                    role=role,
                    city_id=city_ids[city] if city else None,
                    password_hash=test_password_hash(),
                )
            )
        network = create_token(session, name="test network", network=True).secret
        cities = {
            key: create_token(session, name=f"test {key}", city_key=key).secret
            for key in ("muenchen", "augsburg", "nuernberg")
        }
    return World(network_token=network, city_tokens=cities)


@pytest.fixture
def world(db: Database) -> World:
    return seed_world(db)


@pytest.fixture
def demo_kb_world(world: World, db: Database) -> World:
    """The world plus the demo's digital services and its whole knowledge base (kb/demo)."""
    from hotline.demo.loader import add_digital_services
    from hotline.services.kb import import_dir

    with db.write() as session:
        add_digital_services(session)
        import_dir(session, Path(__file__).resolve().parents[1] / "kb" / "demo")
    return world


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as test_client:
        yield test_client


class LiveServer:
    """The real app under uvicorn on 127.0.0.1 in a thread (no mocked network)."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server
