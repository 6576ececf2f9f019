"""Crash safety: `hotline serve` is killed (SIGKILL) while clients create tickets and post
replies with Idempotency-Keys and retry until they succeed; afterwards every request made
exactly one ticket or message and every reply exactly one outbox delivery."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, func, select

from hotline.db import Database
from hotline.models import IdempotencyRecord, Message, MessageKind, OutboxDelivery, Ticket
from hotline.settings import Settings
from tests.conftest import World

pytestmark = pytest.mark.db

TICKETS = 40  # each ticket gets one reply: 80 requests in all
CLIENTS = 4
KILL_AFTER = (25, 55)  # SIGKILL the server after this many completed requests
DEADLINE_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# `hotline serve`, but with its imports (seconds of CPU, mostly aiogram) done before the go
# signal on stdin: warm stand-ins replace a killed server at once, as a supervisor would, and
# the test stays short. What runs after the signal is the real command.
STANDBY = """
import pathlib
import sys
import hotline.app
from hotline.cli import main
pathlib.Path(sys.argv[1]).touch()
sys.stdin.readline()
sys.argv = ["hotline", "serve", *sys.argv[2:]]
main()
"""


class ServeProcess:
    """`hotline serve` as a real process (in-process outbox worker on, no Telegram)."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "serve.log"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TELEGRAM_"))
        }
        self.env.update(
            HOTLINE_DATABASE_URL=database_url,
            HOTLINE_ENV="test",
            HOTLINE_WORKER_IN_PROCESS="true",
            HOTLINE_LOG_LEVEL="WARNING",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.standbys: list[subprocess.Popen[bytes]] = []
        self.starts = 0
        self.kills = 0
        self.start_seconds: list[float] = []

    def prepare(self, count: int) -> None:
        """Warm up `count` stand-ins (in parallel) and wait until each has imported the app."""
        ready = []
        for n in range(count):
            flag = self.workdir / f"standby-{n}.ready"
            ready.append(flag)
            with self.log_path.open("ab") as log:
                self.standbys.append(
                    subprocess.Popen(
                        [sys.executable, "-c", STANDBY, str(flag), "--port", str(self.port)],
                        env=self.env,
                        cwd=self.workdir,
                        stdin=subprocess.PIPE,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + 120
        while not all(flag.exists() for flag in ready):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.standbys):
                raise RuntimeError(f"stand-ins did not get ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def start(self) -> None:
        """Serve on the port: the next warm stand-in takes over."""
        proc = self.standbys.pop(0)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        self.proc = proc
        self.starts += 1
        began = time.monotonic()
        deadline = began + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hotline serve exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    self.start_seconds.append(time.monotonic() - began)
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"hotline serve did not answer within 60 s:\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        for proc in [self.proc, *self.standbys]:
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


class Clients:
    """Client threads that retry every request (same key, same body) until it is accepted."""

    def __init__(self, url: str, world: World) -> None:
        self.url = url
        self.world = world
        self.lock = threading.Lock()
        self.completed = 0
        self.retries = 0
        self.replayed = 0
        self.errors: list[str] = []
        self.tickets: dict[int, dict[str, Any]] = {}  # ticket number → first response
        self.replies: dict[int, dict[str, Any]] = {}

    def send(self, client: httpx.Client, path: str, body: dict[str, Any], headers: Any) -> Any:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                response = client.post(path, json=body, headers=headers)
            except httpx.TransportError:  # killed mid-request, or not listening yet
                with self.lock:
                    self.retries += 1
                time.sleep(0.05)
                continue
            if response.status_code >= 500:
                with self.lock:
                    self.retries += 1
                time.sleep(0.05)
                continue
            if response.status_code != 201:
                raise AssertionError(f"{path}: {response.status_code} {response.text[:300]}")
            with self.lock:
                self.completed += 1
                self.replayed += response.headers.get("Idempotent-Replayed") == "true"
            return response.json()
        raise AssertionError(f"{path}: no success within {DEADLINE_SECONDS} s")

    def ticket_request(self, n: int) -> tuple[dict[str, Any], dict[str, str]]:
        body = {
            "subject": f"Absturztest {n}",
            "body": "Mein Antrag hängt seit gestern.",
            "channel": "web",
            "origin_city": "muenchen",
            "requester": {"web_session": f"crash-session-{n:04d}"},
        }
        return body, {**self.world.headers("network"), "Idempotency-Key": f"crash-ticket-{n}"}

    def reply_request(self, n: int) -> tuple[dict[str, Any], dict[str, str]]:
        body = {"kind": "reply", "body": f"Antwort auf Anliegen {n}: bitte neu laden."}
        return body, {**self.world.headers("muenchen"), "Idempotency-Key": f"crash-reply-{n}"}

    def run(self, numbers: list[int]) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=20) as client:
                for n in numbers:
                    ticket = self.send(client, "/api/v1/tickets", *self.ticket_request(n))
                    self.tickets[n] = ticket
                    path = f"/api/v1/tickets/{ticket['reference']}/messages"
                    self.replies[n] = self.send(client, path, *self.reply_request(n))
        except BaseException as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def test_killed_server_loses_and_doubles_nothing(
    settings: Settings, db: Database, world: World, tmp_path: Path
) -> None:
    server = ServeProcess(settings.database_url, tmp_path)
    clients = Clients(server.url, world)
    threads = [
        threading.Thread(target=clients.run, args=(list(range(t, TICKETS, CLIENTS)),))
        for t in range(CLIENTS)
    ]
    try:
        server.prepare(1 + len(KILL_AFTER))
        server.start()
        for thread in threads:
            thread.start()
        for threshold in KILL_AFTER:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while clients.completed < threshold and time.monotonic() < deadline:
                if not any(t.is_alive() for t in threads):
                    break
                time.sleep(0.005)
            server.kill()
            server.start()
        for thread in threads:
            thread.join(timeout=DEADLINE_SECONDS)
        assert not clients.errors, clients.errors
        assert server.kills == len(KILL_AFTER)
        assert len(clients.tickets) == TICKETS and len(clients.replies) == TICKETS

        # Every response may have been lost in a crash: after the last restart the clients send
        # every request once more, and each one is answered with its first result.
        with httpx.Client(base_url=server.url, timeout=20) as client:
            for n in range(TICKETS):
                again = client.post("/api/v1/tickets", **_kw(clients.ticket_request(n)))
                assert again.status_code == 201, again.text
                assert again.headers.get("Idempotent-Replayed") == "true"
                assert again.json()["id"] == clients.tickets[n]["id"]
                path = f"/api/v1/tickets/{clients.tickets[n]['reference']}/messages"
                again = client.post(path, **_kw(clients.reply_request(n)))
                assert again.status_code == 201, again.text
                assert again.headers.get("Idempotent-Replayed") == "true"
                assert again.json()["id"] == clients.replies[n]["id"]
    finally:
        server.stop()
        for thread in threads:
            thread.join(timeout=5)

    references = [t["reference"] for t in clients.tickets.values()]
    reply_ids = {r["id"] for r in clients.replies.values()}
    with db.read() as s:
        stored = s.exec(select(Ticket.id, Ticket.reference)).all()
        assert len(stored) == TICKETS, f"{len(stored)} tickets for {TICKETS} requests"
        assert len({ref for _, ref in stored}) == TICKETS  # no reference twice
        assert sorted(ref for _, ref in stored) == sorted(references)
        keys = Counter(s.exec(select(IdempotencyRecord.operation)).all())
        assert keys == {"create_ticket": TICKETS, "add_message": TICKETS}
        replies = s.exec(
            select(Message.id, Message.ticket_id).where(Message.kind == MessageKind.reply)
        ).all()
        assert {mid for mid, _ in replies} == reply_ids
        assert Counter(tid for _, tid in replies) == Counter({tid: 1 for tid, _ in stored})
        citizen = s.exec(
            select(func.count()).select_from(Message).where(Message.kind == MessageKind.citizen)
        ).one()
        assert citizen == TICKETS
        outbox = s.exec(select(OutboxDelivery)).all()
        # One delivery per reply: none lost, none queued twice; nothing could send it (web chat
        # collects its messages, Telegram is not configured), so it is still pending.
        assert sorted(o.message_id or 0 for o in outbox) == sorted(reply_ids)
        assert {(str(o.channel), str(o.status)) for o in outbox} == {("web", "pending")}
        assert len({o.recipient for o in outbox}) == TICKETS
        assert s.exec(select(func.max(col(Ticket.version)))).one() == 2
    print(
        f"\ncrash test: {server.kills} kills, {server.starts} starts, {clients.retries} retried "
        f"attempts, {clients.replayed} replayed answers during the run; starts took "
        f"{', '.join(f'{t:.1f}' for t in server.start_seconds)} s"
    )


def _kw(request: tuple[dict[str, Any], dict[str, str]]) -> dict[str, Any]:
    body, headers = request
    return {"json": body, "headers": headers}
