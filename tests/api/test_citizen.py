"""Endpoints the citizen channels use: transcript intake, own tickets, rating, attachments,
erasure and postcodes."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import select

from hotline.db import Database
from hotline.models import Attachment, City, KBAsk, KBCandidate, KBEntry, Message, Requester, Ticket
from hotline.services.learning import propose_candidate
from tests.conftest import World

API = "/api/v1"
CHAT = "4711"


def _bot_ticket(client: TestClient, world: World, chat: str = CHAT, **extra: object) -> dict:
    response = client.post(
        f"{API}/tickets",
        json={
            "subject": "BayernID gesperrt",
            "body": "Meine BayernID ist gesperrt, was kann ich tun?",
            "channel": "telegram",
            "origin_city": "muenchen",
            "service": "bayernid",
            "requester": {"telegram_chat_id": chat, "language": "de", "name": "Erika Muster"},
            "kb_offers": [{"entry": "bayernid-passwort-vergessen", "score": 55.0}],
            "transcript": [
                {"role": "citizen", "text": "BayernID gesperrt"},
                {"role": "bot", "text": "Meinten Sie: BayernID-Passwort vergessen?"},
                {"role": "citizen", "text": "Nichts davon"},
            ],
            **extra,
        },
        headers=world.headers(),
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_transcript_is_stored_in_the_thread(client: TestClient, world: World) -> None:
    ticket = _bot_ticket(client, world)
    messages = client.get(
        f"{API}/tickets/{ticket['reference']}/messages", headers=world.headers()
    ).json()
    kinds = [m["kind"] for m in messages]
    assert kinds == ["bot", "citizen"]
    assert "Bürger/in: BayernID gesperrt" in messages[0]["body"]
    assert "Bot: Meinten Sie" in messages[0]["body"]
    assert ticket["kb_offers"][0]["entry"] == "bayernid-passwort-vergessen"


def test_citizen_sees_own_tickets_only_with_a_network_token(
    client: TestClient, world: World
) -> None:
    mine = _bot_ticket(client, world)
    _bot_ticket(client, world, chat="999")
    response = client.get(
        f"{API}/citizen/tickets", params={"telegram_chat_id": CHAT}, headers=world.headers()
    )
    assert response.status_code == 200
    assert [t["reference"] for t in response.json()] == [mine["reference"]]
    assert response.json()[0]["responsible_city_name"]
    denied = client.get(
        f"{API}/citizen/tickets",
        params={"telegram_chat_id": CHAT},
        headers=world.headers("muenchen"),
    )
    assert denied.status_code == 403 and denied.json()["code"] == "network_token_required"
    missing = client.get(f"{API}/citizen/tickets", headers=world.headers())
    assert missing.status_code == 422 and missing.json()["code"] == "identity_required"


def test_rating_only_after_resolution(client: TestClient, world: World) -> None:
    ticket = _bot_ticket(client, world)
    ref = ticket["reference"]
    early = client.post(f"{API}/tickets/{ref}/rating", json={"rating": 5}, headers=world.headers())
    assert early.status_code == 409 and early.json()["code"] == "not_resolved"
    resolved = client.post(
        f"{API}/tickets/{ref}/transitions",
        json={"to": "resolved", "version": ticket["version"]},
        headers=world.headers(),
    )
    assert resolved.status_code == 200
    for bad in (0, 6, "gut"):
        response = client.post(
            f"{API}/tickets/{ref}/rating", json={"rating": bad}, headers=world.headers()
        )
        assert response.status_code == 422
    rated = client.post(f"{API}/tickets/{ref}/rating", json={"rating": 4}, headers=world.headers())
    assert rated.status_code == 200 and rated.json()["rating"] == 4


def test_attachments_up_to_the_limit(client: TestClient, world: World, db: Database) -> None:
    ref = _bot_ticket(client, world)["reference"]
    ok = client.post(
        f"{API}/tickets/{ref}/attachments",
        files={"file": ("bescheid.pdf", b"%PDF-1.4 test", "application/pdf")},
        headers=world.headers(),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["size"] == len(b"%PDF-1.4 test") and ok.json()["filename"] == "bescheid.pdf"
    limit = client.app.state.settings.chat_max_document_bytes  # type: ignore[attr-defined]
    big = client.post(
        f"{API}/tickets/{ref}/attachments",
        files={"file": ("gross.pdf", b"x" * (limit + 1), "application/pdf")},
        headers=world.headers(),
    )
    assert big.status_code == 413 and big.json()["code"] == "attachment_too_large"
    with db.read() as session:
        assert len(session.exec(select(Attachment)).all()) == 1


def test_a_retried_upload_attaches_once(client: TestClient, world: World, db: Database) -> None:
    ref = _bot_ticket(client, world)["reference"]
    headers = {**world.headers(), "Idempotency-Key": "tg-777"}
    responses = [
        client.post(
            f"{API}/tickets/{ref}/attachments",
            files={"file": ("foto.pdf", b"%PDF-1.4 same", "application/pdf")},
            headers=headers,
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert responses[1].headers.get("Idempotent-Replayed") == "true"
    with db.read() as session:
        assert len(session.exec(select(Attachment)).all()) == 1


def test_erase_anonymises_tickets_and_deletes_the_log(
    client: TestClient, world: World, db: Database
) -> None:
    ticket = _bot_ticket(client, world)
    ask = client.post(
        f"{API}/kb/ask",
        json={"question": "Wo ist mein Bescheid?", "channel": "telegram", "client": CHAT},
        headers=world.headers(),
    )
    assert ask.status_code == 200
    # The citizen picked a suggestion: their words became a proposed KB variant.
    with db.write() as session:
        entry = KBEntry(key="bescheid", title="Bescheid", questions=["Bescheid?"], answer="A")
        session.add(entry)
        session.flush()
        propose_candidate(
            session, entry, "Wo ist mein Bescheid?", source="choice", ask_id=ask.json()["ask_id"]
        )
    client.post(
        f"{API}/tickets/{ticket['reference']}/attachments",
        files={"file": ("a.txt", b"hallo", "text/plain")},
        headers=world.headers(),
    )
    response = client.post(
        f"{API}/citizen/erase", json={"telegram_chat_id": CHAT}, headers=world.headers()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tickets_anonymised"] == 1 and body["asks_deleted"] == 1
    assert body["attachments_deleted"] == 1
    with db.read() as session:
        requester = session.exec(select(Requester)).one()
        assert requester.telegram_chat_id is None and requester.name is None
        assert requester.anonymised_at is not None
        stored = session.exec(select(Ticket).where(Ticket.reference == ticket["reference"])).one()
        bodies = [
            m.body for m in session.exec(select(Message).where(Message.ticket_id == stored.id))
        ]
        assert all("BayernID" not in b for b in bodies)
        assert session.exec(select(KBCandidate)).all() == []
        assert session.exec(select(KBAsk)).all() == []
        assert session.exec(select(Attachment)).all() == []
    # Nothing is left to list for that chat.
    listed = client.get(
        f"{API}/citizen/tickets", params={"telegram_chat_id": CHAT}, headers=world.headers()
    )
    assert listed.json() == []


def test_city_by_postcode(client: TestClient, world: World, db: Database) -> None:
    with db.write() as session:
        for city in session.exec(select(City)).all():
            city.postcodes = {"muenchen": ["80331-81929"], "augsburg": ["86150-86199"]}.get(
                city.key
            )
            session.add(city)
    found = client.get(f"{API}/cities/by-postcode/86150", headers=world.headers())
    assert found.status_code == 200 and found.json()["key"] == "augsburg"
    unknown = client.get(f"{API}/cities/by-postcode/10115", headers=world.headers())
    assert unknown.status_code == 404 and unknown.json()["code"] == "postcode_unknown"
    bad = client.get(f"{API}/cities/by-postcode/80A31", headers=world.headers())
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_postcode"
