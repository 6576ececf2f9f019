"""Response times of the board's inbox (and ticket page) at 1,000,000 tickets, SQLite and PostgreSQL.

Fills a fresh database (a SQLite file in a temporary folder; a throw-away schema on the
PostgreSQL server of HOTLINE_BENCH_DATABASE_URL, default postgresql+psycopg://postgres@
127.0.0.1:5432/test, when it answers) with tickets across three cities, logs an agent in through
the board's login form (TestClient, in process) and times the pages.

    python -m benchmarks.bench_board [TICKETS]      # default 1,000,000; env HOTLINE_BENCH_TICKETS
    HOTLINE_BENCH_REQUESTS=200 HOTLINE_BENCH_DB=sqlite,postgresql python -m benchmarks board
"""

from __future__ import annotations

import io
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import col

from hotline import migrate
from hotline.app import create_app
from hotline.db import Database
from hotline.models import City, Message, Service, StaffUser, Ticket
from hotline.services.auth import hash_password
from hotline.settings import Settings

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "benchmark password"
CITIES = (("muenchen", "München"), ("augsburg", "Augsburg"), ("nuernberg", "Nürnberg"))
N_SERVICES = 40
AGENTS_PER_CITY = 8
BATCH = 20_000
SUBJECTS = (
    "BayernID-Konto gesperrt",
    "Zahlung abgebrochen, Geld abgebucht",
    "Transport-PIN nicht auffindbar",
    "Keine freien Termine für Reisepass",
    "Upload der Wohnungsgeberbestätigung bricht ab",
    "Hundesteuer online abmelden",
    "Formular lässt sich nicht absenden",
    "Gewerbeanmeldung: Fehlermeldung beim Login",
    "Bewohnerparkausweis verlängern",
    "Führungszeugnis online – Ausweis wird nicht erkannt",
)
ACTIVE = ("new", "open", "waiting", "reopened")
CHANNELS = ("web", "telegram", "api", "email", "board")


@dataclass
class Seed:
    city_ids: dict[str, int]
    service_ids: list[int]
    agents: dict[int, list[int]]  # city id → staff ids


def _settings(url: str) -> Settings:
    return Settings(database_url=url, env="test")  # type: ignore[arg-type]


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


# --- filling -------------------------------------------------------------------------------------


def seed_catalogue(db: Database) -> Seed:
    password_hash = hash_password(PASSWORD)
    with db.write() as session:
        cities = [City(key=key, name=name, state="BY") for key, name in CITIES]
        session.add_all(cities)
        session.flush()
        city_ids = {c.key: c.id or 0 for c in cities}
        services = [
            Service(key=f"dienst-{i:02d}", name=f"Onlinedienst {i:02d}", topic=f"thema{i % 7}")
            for i in range(N_SERVICES)
        ]
        session.add_all(services)
        agents: dict[int, list[int]] = {}
        for key, city_id in city_ids.items():
            users = [
                StaffUser(
                    username=f"agent{n}.{key}",
                    display_name=f"Agent {n} {key}",
                    role="agent",  # type: ignore[arg-type]
                    city_id=city_id,
                    password_hash=password_hash,
                )
                for n in range(1, AGENTS_PER_CITY + 1)
            ]
            session.add_all(users)
            session.flush()
            agents[city_id] = [u.id or 0 for u in users]
        session.flush()
        return Seed(city_ids, [s.id or 0 for s in services], agents)


def ticket_rows(n: int, seed: Seed, rng: random.Random) -> Iterator[list[dict[str, Any]]]:
    """Tickets over the last two years, oldest first (ids grow with created_at, as in real
    life); most old ones are closed, the newest few percent are still being worked on."""
    now = datetime.now(UTC)
    start = now - timedelta(days=730)
    step = (now - start) / n
    city_list = list(seed.city_ids.values())
    batch: list[dict[str, Any]] = []
    for i in range(n):
        created = start + step * i
        city = city_list[i % len(city_list)] if rng.random() < 0.9 else rng.choice(city_list)
        recent = i > n * 0.97
        if recent or rng.random() < 0.01:
            status = rng.choice(ACTIVE)
        else:
            status = "closed" if rng.random() < 0.85 else "resolved"
        responded = None if status == "new" else created + timedelta(hours=rng.uniform(0.5, 30))
        done = status in ("resolved", "closed")
        batch.append(
            {
                "reference": f"HL-{created.year}-{i + 1:07d}",
                "subject": f"{rng.choice(SUBJECTS)} ({i})",
                "audience": "internal" if rng.random() < 0.1 else "external",
                "channel": rng.choice(CHANNELS),
                "status": status,
                "priority": "normal",
                "origin_city_id": rng.choice(city_list),
                "service_id": rng.choice(seed.service_ids) if rng.random() < 0.9 else None,
                "topic": None,
                "responsible_city_id": city,
                "assignee_id": rng.choice(seed.agents[city]) if rng.random() < 0.7 else None,
                "routing": {"city": city, "rule": "bench", "via": "rule"},
                "first_response_due": created + timedelta(hours=24),
                "resolution_due": created + timedelta(hours=120),
                "first_responded_at": responded,
                "resolved_at": created + timedelta(hours=40) if done else None,
                "closed_at": created + timedelta(hours=80) if status == "closed" else None,
                "created_at": created,
                "updated_at": created,
                "version": 1,
            }
        )
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_value(value: Any) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        import json

        return json.dumps(value).replace("\\", "\\\\")
    return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def fill(db: Database, n: int, seed: Seed) -> None:
    rng = random.Random(6)
    table = Ticket.__table__  # type: ignore[attr-defined]
    columns: list[str] = []
    for batch in ticket_rows(n, seed, rng):
        columns = list(batch[0])
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                with raw.cursor() as cur:  # type: ignore[attr-defined]
                    buffer = io.StringIO()
                    for row in batch:
                        buffer.write("\t".join(_copy_value(row[c]) for c in columns) + "\n")
                    with cur.copy(f"COPY ticket ({', '.join(columns)}) FROM STDIN") as copy:
                        copy.write(buffer.getvalue())
        else:
            with db.write() as session:
                session.execute(sa.insert(table), batch)
    # Messages for a sample (what the full-text search looks through besides the subject).
    with db.read() as session:
        ids = [
            row[0]
            for row in session.execute(
                sa.select(col(Ticket.id)).where(sa.text("id % 50 = 0"))
            ).all()
        ]
    now = datetime.now(UTC)
    messages = []
    for ticket_id in ids:
        messages.append(
            {
                "ticket_id": ticket_id,
                "kind": "citizen",
                "body": f"Guten Tag, {rng.choice(SUBJECTS)} – bitte um Hilfe, Vorgang {ticket_id}.",
                "created_at": now,
            }
        )
        messages.append(
            {
                "ticket_id": ticket_id,
                "kind": "reply",
                "body": "Vielen Dank für Ihre Nachricht, wir kümmern uns darum.",
                "created_at": now,
            }
        )
    for start in range(0, len(messages), BATCH):
        with db.write() as session:
            session.execute(sa.insert(Message), messages[start : start + BATCH])
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE ticket"))
            conn.execute(sa.text("VACUUM ANALYZE message"))


# --- measuring -----------------------------------------------------------------------------------


def login(client: TestClient, username: str) -> None:
    page = client.get("/board/login")
    token = re.search(r'name="csrf" value="([^"]*)"', page.text)
    assert token, "login form without token"
    response = client.post(
        "/board/login",
        data={"username": username, "password": PASSWORD, "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]


def timed(client: TestClient, path: str, count: int) -> tuple[list[float], int]:
    client.get(path)  # warm up (caches, prepared plans)
    times = []
    status = 0
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        status = response.status_code
    return times, status


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(db: Database, settings: Settings, seed: Seed, count: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    city = seed.city_ids["muenchen"]
    with TestClient(create_app(settings, db)) as client:
        login(client, "agent1.muenchen")
        first = client.get("/board/inbox")
        assert first.status_code == 200, first.text[:1000]
        cursor = re.search(r'href="(/board/inbox\?[^"]*cursor=[^"]+)"', first.text)
        page2 = cursor.group(1).replace("&amp;", "&") if cursor else "/board/inbox"
        poll = re.search(r'hx-get="(/board/inbox/new\?[^"]+)"', first.text)
        poll_url = poll.group(1).replace("&amp;", "&") if poll else "/board/inbox/new"
        with db.read() as session:
            reference = session.execute(
                sa.select(col(Ticket.reference))
                .where(col(Ticket.responsible_city_id) == city)
                .order_by(col(Ticket.id).desc())
                .limit(1)
            ).scalar_one()
        cases: list[tuple[str, str, int]] = [
            ("baseline GET /healthz", "/healthz", count),
            ("inbox default (newest)", "/board/inbox", count),
            ("inbox status=open", "/board/inbox?status=open", count),
            ("inbox page 2 (cursor)", page2, count),
            ("inbox mine + SLA breached", "/board/inbox?assigned=mine&breached=1", count),
            ("inbox sort=due", "/board/inbox?sort=due", count),
            ("inbox new-count poll", poll_url, count),
            ("inbox search 'Reisepass'", "/board/inbox?q=Reisepass", max(20, count // 10)),
            ("ticket page", f"/board/tickets/{reference}", count),
        ]
        for label, path, n in cases:
            times, status = timed(client, path, n)
            if label == "ticket page" and status == 404:
                rows.append((label, "ticket page not available (404)"))
                continue
            if status != 200:
                rows.append((label, f"HTTP {status}"))
                continue
            rows.append(
                (
                    label,
                    f"n={n:4d}  median {statistics.median(times):7.1f} ms  "
                    f"p95 {pct(times, 0.95):7.1f} ms  p99 {pct(times, 0.99):7.1f} ms",
                )
            )
    return rows


def run_one(kind: str, url: str, n: int, count: int) -> None:
    settings = _settings(url)
    db = Database.from_settings(settings)
    try:
        migrate.upgrade(db.engine)
        seed = seed_catalogue(db)
        start = time.perf_counter()
        fill(db, n, seed)
        filled = time.perf_counter() - start
        print(f"\n{kind}: {n:,} tickets filled in {filled:.0f} s", flush=True)
        for label, figures in measure(db, settings, seed, count):
            print(f"  {label:<30} {figures}", flush=True)
    finally:
        db.dispose()


def pg_reachable(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@contextmanager
def pg_bench_schema(prefix: str) -> Iterator[str | None]:
    """A throw-away schema on the benchmark's PostgreSQL server (HOTLINE_BENCH_DATABASE_URL):
    yields its URL, or None (after saying so) when the server does not answer; dropped after."""
    base = os.environ.get("HOTLINE_BENCH_DATABASE_URL", DEFAULT_PG)
    if not pg_reachable(base):
        print(f"\nPostgreSQL: not reachable at {base.split('@')[-1]}; skipped")
        yield None
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(argv) if argv is not None else []
    n = int(args[0] if args else os.environ.get("HOTLINE_BENCH_TICKETS", "1000000"))
    count = int(os.environ.get("HOTLINE_BENCH_REQUESTS", "200"))
    kinds = os.environ.get("HOTLINE_BENCH_DB", "sqlite,postgresql").split(",")
    print(
        f"Board benchmark: {n:,} tickets in 3 cities, {count} requests per page, agent of München"
    )
    if "sqlite" in kinds:
        with tempfile.TemporaryDirectory(prefix="hl-bench-") as tmp:
            path = Path(tmp) / "bench.db"
            run_one("SQLite", f"sqlite:///{path}", n, count)
    if "postgresql" in kinds:
        with pg_bench_schema("hl_bench") as url:
            if url is not None:
                run_one("PostgreSQL", url, n, count)


if __name__ == "__main__":
    main(sys.argv[1:])
