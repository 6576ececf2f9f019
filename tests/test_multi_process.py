"""Two `hotline serve` processes against one PostgreSQL database behave as one backend.

Clients drive both processes alternately and concurrently: ticket references stay unique and
gapless, a stale version never overwrites a colleague's change, every staff reply reaches the
citizen's Telegram chat exactly once although both processes run an outbox worker, and the
API rate limits count across both processes through Redis.

PostgreSQL only (SQLite is one file on one machine, not shared by several hosts); the test runs
whenever HOTLINE_TEST_DATABASE_URL is set, as in CI.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlmodel import col, select

from hotline.db import Database
from hotline.models import ApiToken, OutboxDelivery, Ticket, TicketEvent
from hotline.services.asking import client_hash
from hotline.settings import Settings
from tests.bot.fake_telegram import FakeTelegram
from tests.conftest import World
from tests.processes import ServeProcess, redis_for_tests

pytestmark = [pytest.mark.db, pytest.mark.slow]

TICKETS = 40
CLIENTS = 4
# Replies come in a burst, so both workers find due messages at the same moments.
REPLY_CLIENTS = 8
UPDATE_ROUNDS = 6
ASK_LIMIT = 10
SEND_DELAY_SECONDS = 0.005
DELIVERY_DEADLINE_SECONDS = 30
# After the last expected delivery, keep watching this long for a second one (many worker
# polls of both processes).
QUIET_SECONDS = 1.5


class SlowTelegram(FakeTelegram):
    """The stand-in Bot API with a little network latency on sendMessage: a worker busy
    sending leaves the next due messages to the other process's worker."""

    async def _m_sendMessage(self, params: dict[str, Any]) -> Any:
        await asyncio.sleep(SEND_DELAY_SECONDS)
        return await super()._m_sendMessage(params)


class TelegramStandIns:
    """One stand-in Bot API server per backend process (each process has its own bot token,
    so the stand-in a message arrives at tells which process's worker sent it), served from a
    thread of their own while the test's client threads block on HTTP."""

    def __init__(self, tokens: list[str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers = [SlowTelegram(token) for token in tokens]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=15)

    def __enter__(self) -> TelegramStandIns:
        self.thread.start()
        for server in self.servers:
            self._run(server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            self._run(server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=15)
        self.loop.close()

    def sent(self) -> list[list[dict[str, Any]]]:
        """The sendMessage calls each stand-in has received so far."""
        return [list(server.sent()) for server in self.servers]


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


def run_clients(count: int, work: Callable[[int], None]) -> None:
    """Run `work(n)` in `count` threads at once; re-raise the first failure."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_serve_processes_on_one_postgresql_behave_as_one(
    settings: Settings, db: Database, world: World, redis_url: str, tmp_path: Path
) -> None:
    assert db.dialect == "postgresql"
    secret = f"multi-process-test-{uuid.uuid4().hex}"  # shared by both, unique to this run
    tokens = ["100001:server-a-token", "100002:server-b-token"]
    with TelegramStandIns(tokens) as telegram:
        servers = [
            ServeProcess(
                settings.database_url,
                tmp_path,
                name=f"serve-{name}",
                env={
                    "HOTLINE_SECRET_KEY": secret,
                    "HOTLINE_REDIS_URL": redis_url,
                    "HOTLINE_ASK_RATE_PER_MINUTE": str(ASK_LIMIT),
                    "HOTLINE_WORKER_POLL_SECONDS": "0.02",
                    "HOTLINE_RETENTION_INTERVAL_HOURS": "0",
                    # The worker delivers to Telegram; the bot itself does not poll.
                    "HOTLINE_BOT_IN_PROCESS": "false",
                    "TELEGRAM_BOT_TOKEN": token,
                    "TELEGRAM_API_BASE": stand_in.base_url,
                },
            )
            for name, token, stand_in in zip("ab", tokens, telegram.servers, strict=True)
        ]
        try:
            for server in servers:
                server.launch(1)  # both import the app at the same time
            for server in servers:
                server.wait_ready()
                server.start()
            started = time.monotonic()
            references = _create_tickets(servers, world, db)
            rounds = _race_updates(servers, world, db, references[0])
            sent = _reply_to_all(servers, world, db, telegram, references)
            _ask_until_limited(servers, world, db, redis_url, secret)
            elapsed = time.monotonic() - started
        except BaseException:
            for server in servers:  # shown by pytest with the failure
                print(f"--- {server.name} log:\n{server.log_tail()}")
            raise
        finally:
            for server in servers:
                server.stop()
    print(
        f"\ntwo processes: {TICKETS} tickets, {rounds} update races, {TICKETS} replies "
        f"delivered once (process a sent {sent[0]}, b sent {sent[1]}), ask limit "
        f"{ASK_LIMIT} shared, in {elapsed:.1f} s; starts took "
        f"{', '.join(f'{s.start_seconds[0]:.1f}' for s in servers)} s"
    )


def _create_tickets(servers: list[ServeProcess], world: World, db: Database) -> list[str]:
    """Tickets from Telegram chats, created alternately through both processes."""
    created: dict[int, dict[str, Any]] = {}

    def client(t: int) -> None:
        with httpx.Client(timeout=30, headers=world.headers("network")) as http:
            for n in range(t, TICKETS, CLIENTS):
                response = http.post(
                    f"{servers[n % 2].url}/api/v1/tickets",
                    json={
                        "subject": f"Zwei Prozesse {n}",
                        "body": "Mein Antrag hängt seit gestern.",
                        "channel": "telegram",
                        "origin_city": "muenchen",
                        "requester": {"telegram_chat_id": str(_chat_id(n))},
                    },
                )
                assert response.status_code == 201, response.text
                created[n] = response.json()

    run_clients(CLIENTS, client)
    references = [created[n]["reference"] for n in range(TICKETS)]
    year = datetime.now(UTC).year
    numbers = []
    for reference in references:
        match = re.fullmatch(rf"HL-{year}-(\d{{6}})", reference)
        assert match, reference
        numbers.append(int(match.group(1)))
    # Unique and gapless: the year's counter handed out 1..N once each across both processes.
    assert sorted(numbers) == list(range(1, TICKETS + 1))
    with db.read() as s:
        stored = s.exec(select(Ticket.reference)).all()
    assert sorted(stored) == sorted(references)
    return references


def _race_updates(servers: list[ServeProcess], world: World, db: Database, reference: str) -> int:
    """Round after round, every client reads the ticket and then all assign it at once with
    the version they read, through both processes: exactly one wins each round."""
    barrier = threading.Barrier(CLIENTS)
    results: list[list[httpx.Response]] = [[] for _ in range(UPDATE_ROUNDS)]
    lock = threading.Lock()
    with db.read() as s:
        ticket = s.exec(select(Ticket).where(Ticket.reference == reference)).one()
        first_version, ticket_id = ticket.version, ticket.id

    def client(t: int) -> None:
        with httpx.Client(timeout=30, headers=world.headers("muenchen")) as http:
            for r in range(UPDATE_ROUNDS):
                seen = http.get(f"{servers[(t + r + 1) % 2].url}/api/v1/tickets/{reference}")
                assert seen.status_code == 200, seen.text
                current = seen.json()
                assignee = "agent2.muc" if current["assignee"] == "agent.muc" else "agent.muc"
                barrier.wait(timeout=30)  # everyone has read the same version
                response = http.post(
                    f"{servers[(t + r) % 2].url}/api/v1/tickets/{reference}/assign",
                    json={"assignee": assignee, "version": current["version"]},
                )
                with lock:
                    results[r].append(response)
                barrier.wait(timeout=30)  # the round is over before anyone reads again

    run_clients(CLIENTS, client)
    for responses in results:
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [409] * (CLIENTS - 1), [r.text for r in responses]
        for loser in (r for r in responses if r.status_code == 409):
            assert loser.json()["code"] == "version_conflict"
    winners = [next(r for r in responses if r.status_code == 200) for responses in results]
    # Each winner built on the previous one: versions count up without a lost update.
    assert [w.json()["version"] for w in winners] == [
        first_version + 1 + r for r in range(UPDATE_ROUNDS)
    ]
    with db.read() as s:
        ticket = s.exec(select(Ticket).where(Ticket.id == ticket_id)).one()
        events = s.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "assigned"
            )
        ).all()
    assert ticket.version == first_version + UPDATE_ROUNDS
    assert len(events) == UPDATE_ROUNDS
    assert ticket.assignee_id is not None
    return UPDATE_ROUNDS


def _reply_to_all(
    servers: list[ServeProcess],
    world: World,
    db: Database,
    telegram: TelegramStandIns,
    references: list[str],
) -> list[int]:
    """A staff reply to every ticket, alternately through both processes; both outbox workers
    deliver to Telegram. Every chat gets its reply exactly once."""
    replies = {n: f"Antwort Nr. {n}: Ihr Antrag ist jetzt freigeschaltet." for n in range(TICKETS)}

    def client(t: int) -> None:
        with httpx.Client(timeout=30, headers=world.headers("muenchen")) as http:
            for n in range(t, TICKETS, REPLY_CLIENTS):
                response = http.post(
                    f"{servers[(n + 1) % 2].url}/api/v1/tickets/{references[n]}/messages",
                    json={"kind": "reply", "body": replies[n]},
                )
                assert response.status_code == 201, response.text

    run_clients(REPLY_CLIENTS, client)
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while sum(len(calls) for calls in telegram.sent()) < TICKETS:
        if time.monotonic() > deadline:
            logs = "\n".join(s.log_tail() for s in servers)
            raise AssertionError(f"only {telegram.sent()} delivered in time:\n{logs}")
        time.sleep(0.05)
    time.sleep(QUIET_SECONDS)  # a double delivery would arrive now
    per_process = telegram.sent()
    calls = [call for sent in per_process for call in sent]
    per_chat = Counter(str(call["chat_id"]) for call in calls)
    assert per_chat == Counter({str(_chat_id(n)): 1 for n in range(TICKETS)})
    for call in calls:
        n = _chat_number(int(call["chat_id"]))
        assert references[n] in call["text"] and replies[n] in call["text"]
    with db.read() as s:
        outbox = s.exec(select(OutboxDelivery).order_by(col(OutboxDelivery.id))).all()
    assert len(outbox) == TICKETS
    assert {(str(o.channel), str(o.status), o.attempts) for o in outbox} == {
        ("telegram", "sent", 1)
    }
    counts = [len(sent) for sent in per_process]
    # Both workers took part: the lock on claimed rows, not luck, kept them apart.
    assert all(counts), f"one worker delivered everything: {counts}"
    return counts


def _ask_until_limited(
    servers: list[ServeProcess], world: World, db: Database, redis_url: str, secret: str
) -> None:
    """Questions of one client, alternately to both processes: the limit counts across both."""
    client_id = f"mp-{uuid.uuid4().hex[:12]}"
    with db.read() as s:
        token_id = s.exec(select(ApiToken.id).where(ApiToken.name == "test network")).one()

    def key(client: str) -> str:
        return "hotline:api:ask:rate:" + client_hash(
            secret, "ask", f"token:{token_id}:api:{client}"
        )

    store = redis.Redis.from_url(redis_url)
    try:
        with httpx.Client(timeout=30, headers=world.headers("network")) as http:
            codes = []
            for n in range(ASK_LIMIT + 1):
                response = http.post(
                    f"{servers[n % 2].url}/api/v1/kb/ask",
                    json={"question": f"Wie beantrage ich Nr. {n}?", "client": client_id},
                )
                codes.append(response.status_code)
            # Each process alone saw at most 6 questions, under the limit of 10: only the shared
            # count refuses the eleventh.
            assert codes == [200] * ASK_LIMIT + [429], codes
            assert response.json()["code"] == "rate_limited"
            assert 0 < int(response.headers["Retry-After"]) <= 60
            other = http.post(
                f"{servers[1].url}/api/v1/kb/ask",
                json={"question": "Wie beantrage ich das?", "client": client_id + "-other"},
            )
            assert other.status_code == 200  # another citizen of the same token is not limited
        assert int(store.get(key(client_id)) or 0) == ASK_LIMIT + 1
    finally:
        store.delete(key(client_id), key(client_id + "-other"))
        store.close()


def _chat_id(n: int) -> int:
    return 7_000_000 + n


def _chat_number(chat_id: int) -> int:
    return chat_id - 7_000_000
