"""Citizens who left only an e-mail address get replies and status changes by e-mail."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from hotline import worker
from hotline.db import Database
from hotline.models import Channel, DeliveryStatus, OutboxDelivery
from hotline.settings import Settings
from tests.conftest import World, settings_for
from tests.test_escalation import MailSink, api, smtp  # noqa: F401 (fixtures)

API = "/api/v1"


def _email_only_ticket(client: TestClient, world: World, language: str = "de") -> dict[str, Any]:
    payload = {
        "subject": "Frage zur BayernID",
        "body": "Ich komme nicht in mein Konto.",
        "origin_city": "muenchen",
        "channel": "api",
        "requester": {"name": "Erika Mustermann", "email": "erika@example.org", "language": language},
    }
    r = client.post(f"{API}/tickets", json=payload, headers=world.headers())
    assert r.status_code == 201, r.text
    return dict(r.json())


def _mail_settings(settings: Settings, port: int) -> Settings:
    return settings_for(
        settings.database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="hotline@hotline.example",
    )


def test_reply_and_resolution_reach_the_citizens_mailbox_once(
    api: TestClient,  # noqa: F811
    world: World,
    db: Database,
    settings: Settings,
    smtp: tuple[MailSink, int],  # noqa: F811
) -> None:
    sink, port = smtp
    ticket = _email_only_ticket(api, world)
    h = world.headers()
    r = api.post(
        f"{API}/tickets/{ticket['id']}/messages",
        json={"kind": "reply", "body": "Bitte setzen Sie Ihr Passwort über den Link zurück."},
        headers=h,
    )
    assert r.status_code == 201, r.text
    version = api.get(f"{API}/tickets/{ticket['id']}", headers=h).json()["version"]
    r = api.post(
        f"{API}/tickets/{ticket['id']}/transitions",
        json={"to": "resolved", "version": version},
        headers=h,
    )
    assert r.status_code == 200, r.text

    senders = {Channel.email.value: worker.citizen_email_sender(_mail_settings(settings, port))}
    sent = 0
    for _ in range(3):  # one message per recipient and round, oldest first
        sent += asyncio.run(worker.deliver_due(db, senders))
    assert sent == 2
    assert asyncio.run(worker.deliver_due(db, senders)) == 0  # exactly once

    ref = ticket["reference"]
    assert [rcpt for _, rcpt, _ in sink.messages] == [["erika@example.org"]] * 2
    reply, status = (msg for _, _, msg in sink.messages)
    assert reply["Subject"] == f"Ihre Anfrage {ref} bei der Hotline"
    assert "Bitte setzen Sie Ihr Passwort über den Link zurück." in reply.get_content()
    assert "erledigt" in status.get_content() or "gelöst" in status.get_content()
    assert reply["Message-ID"] != status["Message-ID"]
    with db.read() as session:
        rows = session.exec(
            select(OutboxDelivery).where(OutboxDelivery.channel == Channel.email.value)
        ).all()
    assert [row.status for row in rows] == [DeliveryStatus.sent] * 2


def test_english_speakers_get_english_mail_and_a_refused_address_fails_for_good() -> None:
    message = worker.citizen_email(
        {"kind": "reply", "reference": "HL-2026-000001", "text": "Done.", "language": "en"},
        recipient="a@example.org",
        sender="hotline@hotline.example",
    )
    assert message["Subject"] == "Your request HL-2026-000001 at the hotline"
    assert "Reply from the hotline on HL-2026-000001" in message.get_content()
    try:
        worker.citizen_email({"kind": "poll"}, recipient="a@example.org", sender="h@x.de")
    except worker.PermanentFailure:
        pass
    else:
        raise AssertionError("an unknown payload must fail for good")
