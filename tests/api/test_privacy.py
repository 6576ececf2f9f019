"""A requester's data rights over the API: export as JSON and erasure, network token only."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import select

from hotline.db import Database
from hotline.models import Attachment, ChatSession, KBAsk, Message, Requester, Ticket, TicketEvent
from hotline.services.citizen import ERASED
from hotline.services.retention import ANONYMISED_SUBJECT
from tests.conftest import World

pytestmark = pytest.mark.db

API = "/api/v1"
CHAT, OTHER_CHAT = "4711", "990099"
NAME, OTHER_NAME = "Erika Muster", "Max Anderer"
WEB = "websession-abcdef123"


def _ticket(client: TestClient, world: World, requester: dict, *, text: str) -> str:
    channel = "telegram" if "telegram_chat_id" in requester else "web"
    if "email" in requester:
        channel = "api"
    response = client.post(
        f"{API}/tickets",
        json={
            "subject": f"Frage: {text}",
            "body": text,
            "channel": channel,
            "origin_city": "muenchen",
            "requester": requester,
            "transcript": [{"role": "citizen", "text": text}],
        },
        headers=world.headers(),
    )
    assert response.status_code == 201, response.text
    ref = response.json()["reference"]
    for kind, body in (("reply", "Wir kümmern uns."), ("note", f"Intern: {text} prüfen")):
        r = client.post(
            f"{API}/tickets/{ref}/messages",
            json={"kind": kind, "body": body},
            headers=world.headers(),
        )
        assert r.status_code == 201, r.text
    r = client.post(
        f"{API}/tickets/{ref}/attachments",
        files={"file": ("bescheid.pdf", b"%PDF-1.4 geheim", "application/pdf")},
        headers=world.headers(),
    )
    assert r.status_code == 201, r.text
    return ref


def _ask(client: TestClient, world: World, channel: str, client_id: str, question: str) -> None:
    r = client.post(
        f"{API}/kb/ask",
        json={"question": question, "channel": channel, "client": client_id},
        headers=world.headers(),
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def people(client: TestClient, world: World) -> dict[str, str]:
    mine = _ticket(
        client, world, {"telegram_chat_id": CHAT, "name": NAME}, text="Mein Ausweis ist weg"
    )
    theirs = _ticket(
        client,
        world,
        {"telegram_chat_id": OTHER_CHAT, "name": OTHER_NAME},
        text="Gewerbe anmelden Anderer",
    )
    _ask(client, world, "telegram", CHAT, "Wo beantrage ich einen Ausweis?")
    _ask(client, world, "telegram", OTHER_CHAT, "Frage vom Anderen zum Gewerbe")
    return {"mine": mine, "theirs": theirs}


def _export(client: TestClient, world: World, who: str = "network", **params: str) -> Response:
    return client.get(f"{API}/requesters/export", params=params, headers=world.headers(who))


def test_export_holds_the_requesters_data_and_nothing_of_another(
    client: TestClient, world: World, db: Database, people: dict[str, str]
) -> None:
    response = _export(client, world, telegram=CHAT)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["format"] == "hotline-requester-export/1" and doc["selector"] == "telegram"
    assert [r["name"] for r in doc["requesters"]] == [NAME]
    assert doc["requesters"][0]["telegram_chat_id"] == CHAT
    (ticket,) = doc["tickets"]
    assert ticket["reference"] == people["mine"] and ticket["responsible_city"] == "muenchen"
    kinds = {m["kind"]: m for m in ticket["messages"]}
    assert [m["kind"] for m in ticket["messages"]] == ["bot", "citizen", "reply", "note"]
    assert kinds["note"]["body"] == "Intern: Mein Ausweis ist weg prüfen"
    assert kinds["note"]["author"] == "staff (internal note)"
    assert ticket["attachments"] == [
        {
            "filename": "bescheid.pdf",
            "content_type": "application/pdf",
            "size": len(b"%PDF-1.4 geheim"),
            "created_at": ticket["attachments"][0]["created_at"],
        }
    ]
    assert "created" in [e["kind"] for e in ticket["history"]]
    assert [q["question"] for q in doc["questions"]] == ["Wo beantrage ich einen Ausweis?"]
    text = json.dumps(doc, ensure_ascii=False)
    for foreign in (OTHER_NAME, OTHER_CHAT, people["theirs"], "Gewerbe", "geheim"):
        assert foreign not in text
    with db.read() as s:
        events = s.exec(select(TicketEvent).where(TicketEvent.kind == "privacy_export")).all()
        mine = s.exec(select(Ticket).where(Ticket.reference == people["mine"])).one()
        assert [(e.ticket_id, e.actor, e.after) for e in events] == [
            (mine.id, "token:test network", {"selector": "telegram"})
        ]


def test_export_by_web_session_and_by_email(client: TestClient, world: World, db: Database) -> None:
    web_ref = _ticket(client, world, {"web_session": WEB}, text="Frage aus dem Web-Chat")
    with db.write() as s:
        s.add(ChatSession(id=WEB, state={"step": "done", "lang": "de"}))
    _ask(client, world, "web", WEB, "Frage im Web-Chat")
    by_web = _export(client, world, web=WEB)
    assert by_web.status_code == 200, by_web.text
    assert [t["reference"] for t in by_web.json()["tickets"]] == [web_ref]
    assert by_web.json()["chat_session"]["state"] == {"step": "done", "lang": "de"}
    assert [q["question"] for q in by_web.json()["questions"]] == ["Frage im Web-Chat"]

    mail_ref = _ticket(
        client, world, {"email": "erika@example.org", "name": NAME}, text="Frage per E-Mail"
    )
    by_mail = _export(client, world, email="erika@example.org")
    assert by_mail.status_code == 200, by_mail.text
    assert [t["reference"] for t in by_mail.json()["tickets"]] == [mail_ref]
    assert by_mail.json()["chat_session"] is None


BAD_SELECTORS: list[tuple[dict[str, str], int, str]] = [
    ({}, 422, "identity_required"),
    ({"telegram": CHAT, "email": "a@example.org"}, 422, "identity_required"),
    ({"telegram": "abc"}, 422, "invalid_selector"),
    ({"web": "kurz"}, 422, "invalid_selector"),
    ({"email": "keine-adresse"}, 422, "invalid_selector"),
    ({"telegram": "123456"}, 404, "requester_not_found"),
    ({"email": "niemand@example.org"}, 404, "requester_not_found"),
]


def test_export_refuses_bad_or_unknown_selectors(client: TestClient, world: World) -> None:
    for params, status, code in BAD_SELECTORS:
        response = _export(client, world, **params)
        assert (response.status_code, response.json()["code"]) == (status, code), params
        for value in params.values():  # the value is not echoed (error details get logged)
            assert value not in response.json()["detail"]


def test_city_tokens_are_refused(
    client: TestClient, world: World, db: Database, people: dict[str, str]
) -> None:
    export = _export(client, world, "muenchen", telegram=CHAT)
    assert export.status_code == 403 and export.json()["code"] == "network_token_required"
    erase = client.post(
        f"{API}/requesters/erase", json={"telegram": CHAT}, headers=world.headers("muenchen")
    )
    assert erase.status_code == 403 and erase.json()["code"] == "network_token_required"
    anonymous = client.get(f"{API}/requesters/export", params={"telegram": CHAT})
    assert anonymous.status_code == 401
    with db.read() as s:
        assert s.exec(select(Requester).where(Requester.name == NAME)).one()
        assert not s.exec(
            select(TicketEvent).where(TicketEvent.kind.in_(["privacy_export", "privacy_erased"]))  # type: ignore[attr-defined]
        ).all()


def test_erase_removes_the_personal_data_and_a_second_erase_is_a_noop(
    client: TestClient,
    world: World,
    db: Database,
    people: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        first = client.post(
            f"{API}/requesters/erase", json={"telegram": CHAT}, headers=world.headers()
        )
    assert first.status_code == 200, first.text
    counts = first.json()
    assert counts["requesters_erased"] == 1 and counts["tickets_anonymised"] == 1
    assert counts["attachments_deleted"] == 1 and counts["asks_deleted"] == 1
    assert counts["messages_erased"] >= 1
    with db.read() as s:
        mine = s.exec(select(Ticket).where(Ticket.reference == people["mine"])).one()
        theirs = s.exec(select(Ticket).where(Ticket.reference == people["theirs"])).one()
        assert mine.subject == ANONYMISED_SUBJECT
        requester = s.get_one(Requester, mine.requester_id)
        assert (requester.name, requester.telegram_chat_id) == (None, None)
        assert requester.anonymised_at is not None
        messages = s.exec(select(Message).where(Message.ticket_id == mine.id)).all()
        assert {m.body for m in messages if m.kind in ("citizen", "bot")} == {ERASED}
        assert not s.exec(select(Attachment).where(Attachment.ticket_id == mine.id)).all()
        asks = s.exec(select(KBAsk.question)).all()
        assert asks == ["Frage vom Anderen zum Gewerbe"]
        events = s.exec(select(TicketEvent).where(TicketEvent.kind == "privacy_erased")).all()
        assert [(e.ticket_id, e.after) for e in events] == [(mine.id, {"selector": "telegram"})]
        # The other person is untouched.
        assert theirs.subject.startswith("Frage: Gewerbe")
        assert s.get_one(Requester, theirs.requester_id).name == OTHER_NAME
        assert len(s.exec(select(Attachment).where(Attachment.ticket_id == theirs.id)).all()) == 1
    for secret in (NAME, CHAT, "Mein Ausweis"):
        assert secret not in caplog.text

    second = client.post(
        f"{API}/requesters/erase", json={"telegram": CHAT}, headers=world.headers()
    )
    assert second.status_code == 200
    assert set(second.json().values()) == {0}
    assert _export(client, world, telegram=CHAT).status_code == 404


def test_erase_refuses_bad_selectors(client: TestClient, world: World) -> None:
    none = client.post(f"{API}/requesters/erase", json={}, headers=world.headers())
    assert none.status_code == 422 and none.json()["code"] == "identity_required"
    stray = client.post(f"{API}/requesters/erase", json={"chat": CHAT}, headers=world.headers())
    assert stray.status_code == 422
