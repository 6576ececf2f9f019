"""Crash safety: `hotline serve` is killed (SIGKILL) while clients create tickets and post
replies with Idempotency-Keys and retry until they succeed; afterwards every request made
exactly one ticket or message and every reply exactly one outbox delivery."""

from __future__ import annotations

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
from tests.processes import ServeProcess

pytestmark = pytest.mark.db

TICKETS = 40  # each ticket gets one reply: 80 requests in all
CLIENTS = 4
KILL_AFTER = (25, 55)  # SIGKILL the server after this many completed requests
DEADLINE_SECONDS = 120


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
