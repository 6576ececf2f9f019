"""Concurrent clients against a real server: unique references, no lost updates, safe retries."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlmodel import func, select

from hotline.db import Database
from hotline.models import Ticket, TicketEvent
from tests.conftest import LiveServer, World


async def _post_many(
    url: str,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    extra: list[dict[str, str]] | None = None,
) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/api/v1/tickets", json=b, headers={**headers, **(extra[i] if extra else {})}
                )
                for i, b in enumerate(bodies)
            )
        )


def test_fifty_concurrent_creations_get_distinct_references(
    live_server: LiveServer, world: World, db: Database
) -> None:
    bodies = [
        {"subject": f"Frage {i}", "body": "Wie geht das?", "origin_city": "nuernberg"}
        for i in range(50)
    ]
    responses = asyncio.run(_post_many(live_server.url, world.headers(), bodies))
    assert [r.status_code for r in responses] == [201] * 50, [
        r.text for r in responses if r.status_code != 201
    ]
    references = {r.json()["reference"] for r in responses}
    assert len(references) == 50
    with db.read() as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 50
        stored = set(s.exec(select(Ticket.reference)).all())
    assert stored == references


def test_concurrent_retries_with_one_idempotency_key_make_one_ticket(
    live_server: LiveServer, world: World, db: Database
) -> None:
    body = {"subject": "Zahlung doppelt", "body": "Bitte prüfen", "origin_city": "augsburg"}
    responses = asyncio.run(
        _post_many(
            live_server.url, world.headers(), [body] * 10, [{"Idempotency-Key": "same-key"}] * 10
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    with db.read() as s:
        assert s.exec(select(func.count()).select_from(Ticket)).one() == 1


def test_two_updates_with_the_same_version_one_wins(
    live_server: LiveServer, world: World, db: Database
) -> None:
    """Round after round, a status change and an assignment race with the same version."""

    async def run() -> list[tuple[httpx.Response, httpx.Response]]:
        async with httpx.AsyncClient(
            base_url=live_server.url, timeout=60, headers=world.headers()
        ) as client:
            created = await client.post(
                "/api/v1/tickets", json={"subject": "x", "body": "y", "origin_city": "muenchen"}
            )
            tid = created.json()["id"]
            rounds = []
            for _ in range(6):
                current = (await client.get(f"/api/v1/tickets/{tid}")).json()
                to = "waiting" if current["status"] == "open" else "open"
                assignee = "agent.muc" if current["assignee"] != "agent.muc" else "agent2.muc"
                pair = await asyncio.gather(
                    client.post(
                        f"/api/v1/tickets/{tid}/transitions",
                        json={"to": to, "version": current["version"]},
                    ),
                    client.post(
                        f"/api/v1/tickets/{tid}/assign",
                        json={"assignee": assignee, "version": current["version"]},
                    ),
                )
                rounds.append(pair)
            return rounds

    rounds = asyncio.run(run())
    for pair in rounds:
        assert sorted(r.status_code for r in pair) == [200, 409], [r.text for r in pair]
        loser = next(r for r in pair if r.status_code == 409)
        assert loser.json()["code"] == "version_conflict"
    with db.read() as s:
        ticket = s.exec(select(Ticket)).one()
        changes = s.exec(
            select(func.count())
            .select_from(TicketEvent)
            .where(
                TicketEvent.kind.in_(["status_changed", "assigned"])  # type: ignore[attr-defined]
            )
        ).one()
    # Every winning change is recorded exactly once; nothing of a losing one is.
    assert ticket.version == 1 + len(rounds)
    assert changes == len(rounds)
