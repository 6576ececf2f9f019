"""Load: a realistic request mix against `hotline serve`, and the same mix shape against a bare
FastAPI endpoint that inserts one row (the ceiling of the stack), on SQLite and PostgreSQL.

For each database (a SQLite file in a temporary folder; a throw-away schema on the PostgreSQL
server of HOTLINE_BENCH_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test,
when it answers) the benchmark migrates, loads the demo data (`hotline demo`), creates API
tokens (`hotline token create`), starts `hotline serve` as a subprocess and drives the mix with
httpx.AsyncClient at increasing concurrency:

    50 %  bot asks            POST /api/v1/kb/ask (German citizen questions, typos included)
    15 %  ticket creation     POST /api/v1/tickets (Idempotency-Key; for a citizen: web-chat
                              session or Telegram chat)
    25 %  inbox views         GET /api/v1/tickets?status=new (city token) and GET /board/inbox
                              (agent logged in through the login form), alternating
    10 %  replies             POST /api/v1/tickets/{ref}/messages kind reply

Then it starts the bare app of this module under uvicorn the same way (one process, no access
log) on the same database and sends the same mix shape, every request one row insert.

    python -m benchmarks load
    HOTLINE_BENCH_SECONDS=20 HOTLINE_BENCH_CONCURRENCY=1,4,16,32 HOTLINE_BENCH_DB=sqlite \\
        python -m benchmarks.bench_load
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
MIX = (("ask", 50), ("create", 15), ("inbox", 25), ("reply", 10))
CITIES = ("muenchen", "augsburg", "nuernberg")
QUESTIONS = (
    "Ich habe meinen Personalausweis verloren, was muss ich tun?",
    "Wo finde ich die Transport-PIN für den Online-Ausweis?",
    "Meine PIN ist gesperrt, wie bekomme ich eine PUK?",
    "Passwort für die BayernID vergessen",
    "bayernid konto gesperrt was tun",
    "Ich bekomme die Aktivierungsmail für mein Konto nicht",
    "Wie melde ich meinen Wohnsitz online um?",
    "Brauche eine Meldebescheinigung, geht das online?",
    "Zahlung wurde abgebucht aber der Antrag ist unbezahlt",
    "Kann ich mit PayPal bezahlen?",
    "Wie bekomme ich mein Geld zurück nach einer doppelten Zahlung",
    "Bewohnerparkausweis verlängern",
    "Ich habe ein neues Auto, muss ich den Parkausweis umschreiben?",
    "Termin im Bürgerbüro buchen für Reisepass",
    "Wie kann ich mein Gewerbe online anmelden und was kostet das?",
    "Hund abmelden weil er gestorben ist",
    "Hundesteuermarke verloren",
    "Führungszeugnis online beantragen, Ausweis wird nicht erkannt",
    "Die AusweisApp erkennt meinen Ausweis nicht am Handy",
    "Formular bricht beim Hochladen ab, Sitzung abgelaufen",
    "Wohnungsgeberbestätigung wo bekomme ich die",
    "Kann jemand anderes meinen Ausweis abholen?",
    "Perso abholen in Nürnberg",
    "Fahrzeug online abmelden ohne Termin",
    "Wie lange dauert es bis mein neuer Ausweis fertig ist?",
    "Mein Antrag hängt seit drei Tagen, niemand meldet sich",
)
SUBJECTS = (
    "Antrag lässt sich nicht absenden",
    "Zahlung abgebrochen, Geld trotzdem abgebucht",
    "BayernID: Login schlägt fehl",
    "Keine freien Termine für Reisepass",
    "Upload der Wohnungsgeberbestätigung bricht ab",
    "Bewohnerparkausweis: Bescheid nicht erhalten",
)


# --- the bare ceiling app ----------------------------------------------------------------------


class RowIn(BaseModel):
    op: str
    body: str


def bare_app_factory() -> FastAPI:
    """One endpoint that inserts one row with SQLAlchemy, on the database of
    HOTLINE_DATABASE_URL, with Hotline's engine settings (WAL, busy timeout and BEGIN IMMEDIATE
    on SQLite; the same pool on PostgreSQL), served by uvicorn like `hotline serve`."""
    from hotline.db import Database
    from hotline.settings import Settings

    db = Database.from_settings(Settings(database_url=os.environ["HOTLINE_DATABASE_URL"]))
    metadata = sa.MetaData()
    table = sa.Table(
        "bench_bare_row",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(db.engine)
    app = FastAPI()

    @app.post("/rows", status_code=201)
    def insert_row(row: RowIn) -> dict[str, int]:
        with db.write() as session:
            new_id = session.execute(
                sa.insert(table)
                .values(op=row.op, body=row.body, created_at=datetime.now(UTC))
                .returning(table.c.id)
            ).scalar_one()
        return {"id": new_id}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TELEGRAM_"))}
    env.update(
        HOTLINE_DATABASE_URL=database_url,
        HOTLINE_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    return env


def hotline(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"hotline {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Served:
    """A server subprocess on a free port, up when /healthz answers."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the mix -----------------------------------------------------------------------------------

Op = Callable[[httpx.AsyncClient, random.Random], Awaitable[httpx.Response]]


@dataclass
class Target:
    name: str
    url: str
    ops: dict[str, Op]
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class Step:
    concurrency: int
    seconds: float
    latencies: dict[str, list[float]]
    errors: dict[str, int]
    error_samples: list[str]

    @property
    def done(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.done / self.seconds


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hotline_ops(network: str, city: str, refs: list[str]) -> dict[str, Op]:
    net = {"Authorization": f"Bearer {network}"}
    muc = {"Authorization": f"Bearer {city}"}
    inbox_turn = [0]

    async def ask(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        body = {
            "question": rng.choice(QUESTIONS),
            "city": rng.choice(CITIES),
            "channel": "telegram",
            "client": f"bench-{rng.randrange(10_000)}",
        }
        return await client.post("/api/v1/kb/ask", json=body, headers=net)

    async def create(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        # Every ticket is filed for a citizen (web chat session or Telegram chat), as the
        # channels do; the per-client rate limits count each citizen on their own.
        body: dict[str, Any] = {
            "subject": rng.choice(SUBJECTS),
            "body": "Guten Tag, " + rng.choice(QUESTIONS) + " Vielen Dank.",
            "origin_city": rng.choice(CITIES),
        }
        if rng.random() < 0.5:
            body["channel"] = "web"
            body["requester"] = {"web_session": f"bench-{uuid.uuid4().hex[:16]}"}
        else:
            body["channel"] = "telegram"
            body["requester"] = {"telegram_chat_id": str(rng.randrange(10**8, 10**10))}
        headers = {**net, "Idempotency-Key": uuid.uuid4().hex}
        response = await client.post("/api/v1/tickets", json=body, headers=headers)
        if response.status_code == 201:
            refs.append(response.json()["reference"])
        return response

    async def inbox(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        inbox_turn[0] += 1
        if inbox_turn[0] % 2:
            return await client.get("/api/v1/tickets", params={"status": "new"}, headers=muc)
        return await client.get("/board/inbox")

    async def reply(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        ref = rng.choice(refs[-500:])
        body = {"kind": "reply", "body": "Vielen Dank, wir haben Ihr Anliegen geprüft."}
        return await client.post(f"/api/v1/tickets/{ref}/messages", json=body, headers=net)

    return {"ask": ask, "create": create, "inbox": inbox, "reply": reply}


def bare_ops() -> dict[str, Op]:
    def op(name: str) -> Op:
        async def run(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
            return await client.post("/rows", json={"op": name, "body": rng.choice(QUESTIONS)})

        return run

    return {name: op(name) for name, _ in MIX}


async def run_step(target: Target, concurrency: int, seconds: float, seed: int) -> Step:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    samples: list[str] = []
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=target.url, cookies=target.cookies, limits=limits, timeout=60
    ) as client:
        end = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            while time.perf_counter() < end:
                name = rng.choices(names, weights)[0]
                began = time.perf_counter()
                try:
                    response = await target.ops[name](client, rng)
                    ok = response.status_code < 400
                    problem = f"{name}: HTTP {response.status_code} {response.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, problem = False, f"{name}: {type(exc).__name__}"
                if ok:
                    latencies[name].append((time.perf_counter() - began) * 1000)
                else:
                    errors[name] += 1
                    if len(samples) < 5:
                        samples.append(problem)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Step(concurrency, elapsed, dict(latencies), dict(errors), samples)


def print_step(step: Step) -> None:
    every = [v for values in step.latencies.values() for v in values]
    print(
        f"  c={step.concurrency:3d}  {step.rate:7.1f} req/s  errors {step.error_count:4d}  "
        f"all p50 {pct(every, 0.5):6.1f}  p95 {pct(every, 0.95):6.1f}  "
        f"p99 {pct(every, 0.99):6.1f} ms",
        flush=True,
    )
    for name, _ in MIX:
        values = step.latencies.get(name, [])
        print(
            f"        {name:<7} n={len(values):5d}  p50 {pct(values, 0.5):6.1f}  "
            f"p95 {pct(values, 0.95):6.1f}  p99 {pct(values, 0.99):6.1f} ms"
            f"  errors {step.errors.get(name, 0)}",
            flush=True,
        )
    for sample in step.error_samples:
        print(f"        ! {sample}", flush=True)


def drive(target: Target, levels: Sequence[int], seconds: float) -> list[Step]:
    print(f"\n{target.name}", flush=True)
    asyncio.run(run_step(target, 4, min(5.0, seconds), seed=0))  # warm-up, not counted
    steps = []
    for i, level in enumerate(levels, start=1):
        step = asyncio.run(run_step(target, level, seconds, seed=i))
        print_step(step)
        steps.append(step)
    return steps


def sustained(steps: Sequence[Step]) -> Step | None:
    clean = [s for s in steps if s.error_count == 0]
    return max(clean, key=lambda s: s.rate) if clean else None


def board_login(url: str, username: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/board/login")
        token = re.search(r'name="csrf" value="([^"]*)"', page.text)
        assert token, "login form without CSRF token"
        response = client.post(
            "/board/login",
            data={"username": username, "password": password, "csrf": token.group(1)},
            follow_redirects=False,
        )
        assert response.status_code == 303, f"board login failed: {response.status_code}"
        return {name: value for name, value in client.cookies.items()}


def run_database(kind: str, url: str, levels: Sequence[int], seconds: float) -> None:
    from hotline.demo.loader import DEMO_PASSWORD

    with tempfile.TemporaryDirectory(prefix="hl-load-") as tmp:
        work = Path(tmp)
        env = base_env(url)
        hotline(["db", "upgrade"], env, work)
        hotline(["demo"], env, work)
        network = hotline(["token", "create", "--network", "--name", "Last"], env, work)
        city = hotline(["token", "create", "--city", "muenchen", "--name", "Last"], env, work)
        network, city = network.strip().splitlines()[-1], city.strip().splitlines()[-1]
        serve_env = {**env, "HOTLINE_ENV": "production", "HOTLINE_SECRET_KEY": uuid.uuid4().hex * 2}

        server = Served([sys.executable, "-m", "hotline.cli", "serve"], serve_env, work)
        try:
            listed = httpx.get(
                f"{server.url}/api/v1/tickets",
                params={"status": ["new", "open"], "limit": 100},
                headers={"Authorization": f"Bearer {network}"},
            ).json()
            refs = [t["reference"] for t in listed["items"]]
            cookies = board_login(server.url, "agent1.muenchen", DEMO_PASSWORD)
            ours = drive(
                Target(
                    f"{kind}: hotline serve", server.url, hotline_ops(network, city, refs), cookies
                ),
                levels,
                seconds,
            )
        finally:
            server.stop()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.bench_load:bare_app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        bare_server = Served(command, env, work)
        try:
            bare = drive(
                Target(f"{kind}: bare FastAPI, one INSERT", bare_server.url, bare_ops()),
                levels,
                seconds,
            )
        finally:
            bare_server.stop()
    summarise(kind, ours, bare)


def summarise(kind: str, ours: Sequence[Step], bare: Sequence[Step]) -> None:
    print(f"\n{kind}: summary (sustained = highest rate with 0 errors)")
    print("  concurrency  hotline req/s  bare req/s  share  hotline errors  bare errors")
    for a, b in zip(ours, bare, strict=True):
        print(
            f"  {a.concurrency:11d}  {a.rate:13.1f}  {b.rate:10.1f}  {a.rate / b.rate:5.0%}"
            f"  {a.error_count:14d}  {b.error_count:11d}"
        )
    best, ceiling = sustained(ours), sustained(bare)
    if best and ceiling:
        print(
            f"  sustained: hotline {best.rate:.1f} req/s at c={best.concurrency}, bare "
            f"{ceiling.rate:.1f} req/s at c={ceiling.concurrency}: "
            f"{best.rate / ceiling.rate:.0%} of the ceiling",
            flush=True,
        )
    else:
        print("  sustained: no step without errors", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    seconds = float(os.environ.get("HOTLINE_BENCH_SECONDS", "20"))
    levels = [int(v) for v in os.environ.get("HOTLINE_BENCH_CONCURRENCY", "1,4,16,32").split(",")]
    kinds = os.environ.get("HOTLINE_BENCH_DB", "sqlite,postgresql").split(",")
    print(
        f"Load benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {seconds:.0f} s per step, concurrency "
        f"{', '.join(map(str, levels))}; mix " + ", ".join(f"{n} {w} %" for n, w in MIX),
        flush=True,
    )
    if "sqlite" in kinds:
        with tempfile.TemporaryDirectory(prefix="hl-load-db-") as tmp:
            run_database("SQLite", f"sqlite:///{Path(tmp) / 'load.db'}", levels, seconds)
    if "postgresql" in kinds:
        # Imported here: bench_board is the heavier module and only this branch needs it.
        from benchmarks.bench_board import pg_bench_schema

        with pg_bench_schema("hl_load") as url:
            if url is not None:
                run_database("PostgreSQL", url, levels, seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
