"""Twenty agents work the same five tickets at once on the board (PostgreSQL): every ticket
ends with one assignee, no accepted change is lost, no request fails with a 500."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlmodel import col, select

from hotline.db import Database
from hotline.models import Message, MessageKind, Role, StaffUser, Ticket, TicketEvent
from hotline.services import staff
from hotline.services.catalog import get_city
from tests.conftest import LiveServer, World

pytestmark = pytest.mark.db

AGENTS = 20
TICKETS = 5
PASSWORD = "gleichzeitig arbeiten"
MAX_ATTEMPTS = 200
# Cheap argon2 parameters for these test users only: 20 logins in a second, same login code.
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1).hash(PASSWORD)


@pytest.fixture(autouse=True)
def _postgresql_only(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip(
            "SQLite serialises every write (BEGIN IMMEDIATE), so writers never race; "
            "row locks and version checks under real concurrency need PostgreSQL"
        )


class Agent:
    """One agent with their own board session and HTTP connections."""

    def __init__(self, username: str, url: str, cookie: str, csrf: str, token: str) -> None:
        self.username = username
        self.board = httpx.Client(
            base_url=url,
            cookies={"hl_board": cookie},
            headers={"X-CSRF-Token": csrf},
            timeout=60,
            follow_redirects=False,
        )
        # Reading the ticket (its version) through the API: same data as the board page.
        self.api = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.statuses: Counter[int] = Counter()
        self.won: list[str] = []  # tickets this agent claimed
        self.done: Counter[tuple[str, str]] = Counter()  # (reference, change) accepted
        self.errors: list[str] = []
        self.rng = random.Random(username)

    def close(self) -> None:
        self.board.close()
        self.api.close()

    def read(self, ref: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/tickets/{ref}")
        self.statuses[response.status_code] += 1
        if response.status_code != 200:
            raise AssertionError(f"GET {ref}: {response.status_code} {response.text[:300]}")
        return response.json()  # type: ignore[no-any-return]

    def post(self, ref: str, action: str, form: dict[str, str]) -> bool:
        """True when accepted (303), False on a version conflict (409); anything else fails."""
        response = self.board.post(f"/board/tickets/{ref}/{action}", data=form)
        self.statuses[response.status_code] += 1
        if response.status_code == 303:
            return True
        if response.status_code == 409:
            time.sleep(self.rng.uniform(0, 0.02))  # let the winner's change land, then re-read
            return False
        raise AssertionError(f"{action} {ref}: {response.status_code} {response.text[:300]}")

    def claim(self, ref: str) -> None:
        for _ in range(MAX_ATTEMPTS):
            ticket = self.read(ref)
            if ticket["assignee"] is not None:
                return  # a colleague was faster
            form = {"assignee": self.username, "version": str(ticket["version"])}
            if self.post(ref, "assign", form):
                self.won.append(ref)
                self.done[(ref, "assign")] += 1
                return
        raise AssertionError(f"{self.username}: no claim decision on {ref}")

    def change(self, ref: str, change: str) -> None:
        for _ in range(MAX_ATTEMPTS):
            ticket = self.read(ref)
            version = str(ticket["version"])
            if change == "status":
                to = "waiting" if ticket["status"] == "open" else "open"
                accepted = self.post(ref, "status", {"to": to, "version": version})
            else:
                body = f"Antwort von {self.username}: wir prüfen das."
                accepted = self.post(ref, "reply", {"body": body, "version": version})
            if accepted:
                self.done[(ref, change)] += 1
                return
        raise AssertionError(f"{self.username}: {change} on {ref} never got through")

    def work(self, refs: list[str], start: threading.Barrier) -> None:
        try:
            start.wait(timeout=60)
            order = refs[:]
            self.rng.shuffle(order)
            for ref in order:
                self.claim(ref)
            for ref in order:
                self.change(ref, "status")
                self.change(ref, "reply")
        except BaseException as exc:
            self.errors.append(f"{self.username}: {type(exc).__name__}: {exc}")


def test_twenty_agents_on_five_tickets(live_server: LiveServer, world: World, db: Database) -> None:
    names = [f"agent{n:02d}.muc" for n in range(AGENTS)]
    with db.write() as session:
        city = get_city(session, "muenchen")
        for name in names:
            session.add(
                StaffUser(
                    username=name,
                    display_name=name,
                    role=Role.agent,
                    city_id=city.id,
                    password_hash=CHEAP_HASH,
                )
            )
    logins = {}
    with db.write() as session:
        for name in names:
            logins[name] = staff.login(session, name, PASSWORD, policy=staff.LoginPolicy())
    refs = []
    with httpx.Client(base_url=live_server.url, headers=world.headers(), timeout=60) as api:
        for n in range(TICKETS):
            created = api.post(
                "/api/v1/tickets",
                json={
                    "subject": f"Gleichzeitig {n}",
                    "body": "Bitte helfen",
                    "origin_city": "muenchen",
                },
            )
            assert created.status_code == 201, created.text
            refs.append(created.json()["reference"])

    agents = [
        Agent(
            name,
            live_server.url,
            logins[name].token,
            logins[name].csrf,
            world.city_tokens["muenchen"],
        )
        for name in names
    ]
    start = threading.Barrier(AGENTS)
    threads = [threading.Thread(target=a.work, args=(refs, start)) for a in agents]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
    finally:
        for agent in agents:
            agent.close()

    assert [e for a in agents for e in a.errors] == []
    statuses = sum((a.statuses for a in agents), Counter())
    assert not [code for code in statuses if code >= 500], statuses
    assert statuses[409] > 0, "the agents never collided: the test did not test anything"
    print(f"\nconcurrent agents: responses by status {dict(sorted(statuses.items()))}")

    accepted: dict[str, Counter[str]] = defaultdict(Counter)
    for agent in agents:
        for (ref, change), count in agent.done.items():
            accepted[ref][change] += count
    winners = Counter(ref for a in agents for ref in a.won)
    owner = {ref: a.username for a in agents for ref in a.won}
    with db.read() as s:
        for ref in refs:
            ticket = s.exec(select(Ticket).where(Ticket.reference == ref)).one()
            assignee = s.get(StaffUser, ticket.assignee_id) if ticket.assignee_id else None
            events = s.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id)
                .order_by(col(TicketEvent.id))
            ).all()
            replies = s.exec(
                select(Message).where(
                    Message.ticket_id == ticket.id, Message.kind == MessageKind.reply
                )
            ).all()
            kinds = Counter(e.kind for e in events)
            # One claim won, and the ticket stays with the agent who won it.
            assert winners[ref] == 1, (ref, winners)
            assert assignee is not None and assignee.username == owner[ref]
            assert kinds["assigned"] == 1
            # Every accepted change is in the history exactly once, and nothing else is.
            assert accepted[ref] == {"assign": 1, "status": AGENTS, "reply": AGENTS}
            assert ticket.version == 1 + sum(accepted[ref].values())
            assert kinds["message_added"] == len(replies) == AGENTS
            status_events = [e for e in events if e.kind == "status_changed"]
            by_hand = [e for e in status_events if (e.after or {}).get("reason") != "reply"]
            assert len(by_hand) == AGENTS
            # No lost update: each status change starts from where the previous one ended.
            current = "new"
            for event in status_events:
                assert (event.before or {}).get("status") == current, (ref, event)
                current = (event.after or {})["status"]
            assert current == ticket.status
