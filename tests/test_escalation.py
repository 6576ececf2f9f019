"""SLA escalation: the worker flags overdue tickets once and notifies the responsible city by
e-mail (a real SMTP server on 127.0.0.1) and signed webhook (a real HTTP server), through the
outbox with its retries; the board shows the flag; the migration goes both ways."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from alembic import command
from fastapi.testclient import TestClient
from sqlmodel import col, select

from hotline import migrate, worker
from hotline.app import create_app
from hotline.db import Database, utcnow
from hotline.domain import Audience, Channel
from hotline.metrics import Metrics
from hotline.models import City, DeliveryStatus, OutboxDelivery, Ticket, TicketEvent
from hotline.services.escalation import (
    CITY_EMAIL,
    CITY_WEBHOOK,
    EVENT_KIND,
    escalate_overdue,
)
from hotline.settings import Settings
from tests.board.conftest import BoardClient
from tests.board.conftest import board as board  # the fixture
from tests.conftest import World, empty_pg_schema, settings_for

pytestmark = pytest.mark.db

API = "/api/v1"
PUBLIC = "https://hotline.example"
MUC_MAIL = "sla@muenchen.example"
PERSONAL = ("Erika", "Mustermann", "erika@example.org", "4711", "gesperrt", "DE89", "Konto")


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def api(settings: Settings, db: Database, world: World) -> Iterator[TestClient]:
    quiet = settings_for(settings.database_url, worker_in_process=False)
    with TestClient(create_app(quiet, db), raise_server_exceptions=False) as client:
        yield client


def _ticket(client: TestClient, world: World, origin: str, **fields: Any) -> str:
    payload = {
        "subject": "Mein Konto von Erika ist gesperrt",
        "body": "Bitte helfen Sie mir, IBAN DE89370400440532013000.",
        "origin_city": origin,
        "channel": "telegram",
        "requester": {
            "name": "Erika Mustermann",
            "email": "erika@example.org",
            "telegram_chat_id": "4711",
        },
        **fields,
    }
    r = client.post(f"{API}/tickets", json=payload, headers=world.headers())
    assert r.status_code == 201, r.text
    return str(r.json()["reference"])


def _overdue(db: Database, *refs: str, hours: float = 2) -> None:
    with db.write() as session:
        for ref in refs:
            t = session.exec(select(Ticket).where(Ticket.reference == ref)).one()
            t.first_response_due = utcnow() - timedelta(hours=hours)
            session.add(t)


def _targets(db: Database, **cities: dict[str, str | None]) -> None:
    with db.write() as session:
        for key, fields in cities.items():
            city = session.exec(select(City).where(City.key == key)).one()
            for name, value in fields.items():
                setattr(city, name, value)
            session.add(city)


def _tickets(db: Database) -> dict[str, Ticket]:
    with db.read() as session:
        return {t.reference: t for t in session.exec(select(Ticket)).all()}


def _events(db: Database) -> list[TicketEvent]:
    with db.read() as session:
        return list(
            session.exec(
                select(TicketEvent)
                .where(TicketEvent.kind == EVENT_KIND)
                .order_by(col(TicketEvent.id))
            ).all()
        )


def _outbox(db: Database) -> list[OutboxDelivery]:
    with db.read() as session:
        return list(session.exec(select(OutboxDelivery).order_by(col(OutboxDelivery.id))).all())


def _notes(db: Database) -> list[OutboxDelivery]:
    return [r for r in _outbox(db) if r.channel in (CITY_EMAIL, CITY_WEBHOOK)]


def _refs(row: OutboxDelivery) -> list[str]:
    return [item["reference"] for item in row.payload["tickets"]]


def _make_due(db: Database) -> None:
    with db.write() as session:
        for row in session.exec(select(OutboxDelivery)).all():
            row.next_attempt_at = utcnow() - timedelta(seconds=1)
            session.add(row)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookServer:
    """A real HTTP server on 127.0.0.1 that records requests and answers with given codes."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/sla"

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MailSink:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


# --- which tickets, how often -------------------------------------------------------------------


def test_only_open_unanswered_overdue_tickets_are_escalated_once(
    api: TestClient, world: World, db: Database
) -> None:
    _targets(
        db,
        muenchen={"escalation_email": MUC_MAIL, "escalation_webhook_url": "http://127.0.0.1:9/m"},
        augsburg={"escalation_webhook_url": "http://127.0.0.1:9/a"},
    )
    late = _ticket(api, world, "muenchen")
    answered = _ticket(api, world, "muenchen")
    not_yet = _ticket(api, world, "muenchen")
    resolved = _ticket(api, world, "augsburg")
    waiting = _ticket(api, world, "augsburg")
    quiet_city = _ticket(api, world, "nuernberg")
    r = api.post(
        f"{API}/tickets/{answered}/messages",
        json={"kind": "reply", "body": "Wir sind dran."},
        headers=world.headers(),
    )
    assert r.status_code == 201, r.text
    for ref, to in ((resolved, "resolved"), (waiting, "waiting")):
        r = api.post(
            f"{API}/tickets/{ref}/transitions",
            json={"to": to, "version": 1},
            headers=world.headers(),
        )
        assert r.status_code == 200, r.text
    _overdue(db, late, answered, resolved, waiting, quiet_city)
    _overdue(db, not_yet, hours=-1)  # due in an hour
    before = _tickets(db)

    report = escalate_overdue(db, public_url=PUBLIC, email_enabled=True)

    assert report.escalated == {"muenchen": 1, "augsburg": 1, "nuernberg": 1}
    assert report.notifications == 3
    after = _tickets(db)
    assert {ref for ref, t in after.items() if t.sla_escalated_at} == {late, waiting, quiet_city}
    # The flag is not an edit: staff working on the ticket get no version conflict.
    assert all(after[ref].version == before[ref].version for ref in after)
    by_ticket = {e.ticket_id: e for e in _events(db)}
    ids = {ref: t.id for ref, t in after.items()}
    assert set(by_ticket) == {ids[late], ids[waiting], ids[quiet_city]}
    assert by_ticket[ids[late]].after["notified"] == [CITY_EMAIL, CITY_WEBHOOK]  # type: ignore[index]
    assert by_ticket[ids[waiting]].after["notified"] == [CITY_WEBHOOK]  # type: ignore[index]
    assert by_ticket[ids[quiet_city]].after["notified"] == []  # type: ignore[index]
    assert by_ticket[ids[late]].actor == "system"
    # Each city's notifications list only its own tickets; Nürnberg has no target: flag only.
    notes = {(n.channel, n.recipient): _refs(n) for n in _notes(db)}
    assert notes == {
        (CITY_EMAIL, "city:muenchen"): [late],
        (CITY_WEBHOOK, "city:muenchen"): [late],
        (CITY_WEBHOOK, "city:augsburg"): [waiting],
    }

    # A second pass changes nothing.
    again = escalate_overdue(db, public_url=PUBLIC, email_enabled=True)
    assert again.total == 0 and again.notifications == 0
    assert len(_events(db)) == 3 and len(_notes(db)) == 3

    # A ticket that becomes overdue later is escalated on its own, with its own notification.
    later = _ticket(api, world, "muenchen")
    _overdue(db, later, hours=0.5)
    third = escalate_overdue(db, public_url=PUBLIC, email_enabled=True)
    assert third.escalated == {"muenchen": 1}
    fresh = [n for n in _notes(db) if _refs(n) == [later]]
    assert sorted(n.channel for n in fresh) == [CITY_EMAIL, CITY_WEBHOOK]
    assert _tickets(db)[later].sla_escalated_at is not None


def test_without_smtp_a_city_gets_its_webhook_only(
    api: TestClient, world: World, db: Database
) -> None:
    _targets(db, muenchen={"escalation_email": MUC_MAIL, "escalation_webhook_url": "http://x/y"})
    ref = _ticket(api, world, "muenchen")
    _overdue(db, ref)
    report = escalate_overdue(db, public_url=PUBLIC, email_enabled=False)
    assert report.escalated == {"muenchen": 1}
    assert [n.channel for n in _notes(db)] == [CITY_WEBHOOK]


def test_two_workers_at_once_escalate_every_ticket_exactly_once(
    world: World, db: Database, settings: Settings
) -> None:
    _targets(
        db,
        muenchen={"escalation_webhook_url": "http://127.0.0.1:9/m"},
        augsburg={"escalation_webhook_url": "http://127.0.0.1:9/a"},
        nuernberg={"escalation_webhook_url": "http://127.0.0.1:9/n"},
    )
    keys = ("muenchen", "augsburg", "nuernberg")
    with db.write() as session:
        ids = {c.key: c.id for c in session.exec(select(City)).all()}
        for i in range(240):
            session.add(
                Ticket(
                    reference=f"HL-2026-{i + 1:06d}",
                    subject="x",
                    audience=Audience.external,
                    channel=Channel.api,
                    responsible_city_id=ids[keys[i % 3]] or 0,
                    first_response_due=utcnow() - timedelta(minutes=10 + i),
                )
            )
    # Two processes: each its own engine (connection pool) on the same database.
    second = Database.from_settings(settings)
    barrier = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run(database: Database) -> None:
        try:
            barrier.wait()
            reports.append(
                escalate_overdue(database, public_url=PUBLIC, email_enabled=False, batch=20)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in (db, second)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        second.dispose()
    assert not errors, errors
    assert sum(r.total for r in reports) == 240
    events = _events(db)
    assert len(events) == 240 and len({e.ticket_id for e in events}) == 240
    listed = [ref for n in _notes(db) for ref in _refs(n)]
    assert len(listed) == 240 and len(set(listed)) == 240
    for note in _notes(db):  # city isolation within every notification
        city = note.payload["city"]
        tickets = _tickets(db)
        assert {tickets[ref].responsible_city_id for ref in _refs(note)} == {ids[city]}


# --- delivery -----------------------------------------------------------------------------------


def test_email_reaches_the_smtp_server_without_personal_data(
    api: TestClient, world: World, db: Database, settings: Settings, smtp: tuple[MailSink, int]
) -> None:
    sink, port = smtp
    _targets(db, muenchen={"escalation_email": MUC_MAIL}, augsburg={"escalation_email": "a@x.de"})
    ref = _ticket(api, world, "muenchen", service="bayernid")
    other = _ticket(api, world, "augsburg")
    _overdue(db, ref, hours=3)
    _overdue(db, other)
    escalate_overdue(db, public_url=PUBLIC, email_enabled=True)
    mail_settings = settings_for(
        settings.database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="hotline@hotline.example",
    )
    metrics = Metrics()
    senders = {CITY_EMAIL: worker.email_sender(mail_settings)}
    assert asyncio.run(worker.deliver_due(db, senders, metrics=metrics)) == 2
    assert asyncio.run(worker.deliver_due(db, senders, metrics=metrics)) == 0  # exactly once

    by_rcpt = {tuple(rcpt): (sender, msg) for sender, rcpt, msg in sink.messages}
    assert set(by_rcpt) == {(MUC_MAIL,), ("a@x.de",)}
    sender, msg = by_rcpt[(MUC_MAIL,)]
    assert sender == "hotline@hotline.example"
    assert msg["Subject"] == "[Hotline] 1 Anliegen ohne Erstantwort überfällig – München"
    assert msg["Message-ID"] == f"<sla.city_email.muenchen.{ref}@hotline.example>"
    body = msg.get_content()
    assert ref in body and f"{PUBLIC}/board/tickets/{ref}" in body
    assert "BayernID" in body and "3 h 0 min überfällig" in body
    assert other not in body  # Augsburg's ticket is in Augsburg's mail only
    assert f"{PUBLIC}/board/inbox?breached=1" in body
    whole = msg.as_string()
    for word in PERSONAL:
        assert word not in whole, word
    assert {r.status for r in _notes(db)} == {DeliveryStatus.sent}
    assert metrics.outbox_deliveries.labels(channel=CITY_EMAIL, result="sent")._value.get() == 2


def test_webhook_is_signed_retried_after_a_failure_and_then_delivered(
    api: TestClient, world: World, db: Database, settings: Settings
) -> None:
    secret = "webhook-secret-for-tests"
    with WebhookServer(statuses=[503, 200]) as server:
        _targets(db, muenchen={"escalation_webhook_url": server.url})
        ref = _ticket(api, world, "muenchen")
        _overdue(db, ref)
        escalate_overdue(db, public_url=PUBLIC, email_enabled=False)
        hook_settings = settings_for(settings.database_url, webhook_secret=secret)
        metrics = Metrics()

        async def deliver_twice() -> list[int]:
            send, close = worker.webhook_sender(hook_settings)
            try:
                first = await worker.deliver_due(db, {CITY_WEBHOOK: send}, metrics=metrics)
                row = _notes(db)[0]
                assert row.status == DeliveryStatus.pending and row.attempts == 1
                assert row.last_error == "RuntimeError: the webhook answered 503"
                assert row.next_attempt_at > utcnow()  # backoff, not at once
                assert await worker.deliver_due(db, {CITY_WEBHOOK: send}) == 0
                await asyncio.to_thread(_make_due, db)
                second = await worker.deliver_due(db, {CITY_WEBHOOK: send}, metrics=metrics)
                return [first, second]
            finally:
                await close()

        assert asyncio.run(deliver_twice()) == [0, 1]

    assert len(server.requests) == 2
    (h1, b1), (h2, b2) = server.requests
    assert b1 == b2 and h1["x-hotline-delivery"] == h2["x-hotline-delivery"]
    for headers, body in server.requests:
        stamp = headers["x-hotline-timestamp"]
        assert abs(int(stamp) - time.time()) < 120
        expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        assert headers["x-hotline-signature"] == "sha256=" + expected.hexdigest()
        assert headers["content-type"] == "application/json"
        assert headers["x-hotline-event"] == "sla_escalation"
    data = json.loads(b1)
    assert data["city"] == "muenchen" and data["id"] == h1["x-hotline-delivery"]
    assert [t["reference"] for t in data["tickets"]] == [ref]
    assert data["tickets"][0]["url"] == f"{PUBLIC}/board/tickets/{ref}"
    assert data["tickets"][0]["overdue_minutes"] >= 119
    assert "webhook_url" not in data
    for word in PERSONAL:
        assert word not in b1.decode(), word
    assert _notes(db)[0].status == DeliveryStatus.sent
    counted = metrics.outbox_deliveries
    assert counted.labels(channel=CITY_WEBHOOK, result="retry")._value.get() == 1
    assert counted.labels(channel=CITY_WEBHOOK, result="sent")._value.get() == 1


def test_a_webhook_that_refuses_for_good_is_not_retried(
    api: TestClient, world: World, db: Database, settings: Settings
) -> None:
    with WebhookServer(statuses=[404]) as server:
        _targets(db, muenchen={"escalation_webhook_url": server.url})
        _overdue(db, _ticket(api, world, "muenchen"))
        escalate_overdue(db, public_url=PUBLIC, email_enabled=False)

        async def deliver() -> None:
            send, close = worker.webhook_sender(settings)
            try:
                await worker.deliver_due(db, {CITY_WEBHOOK: send})
            finally:
                await close()

        asyncio.run(deliver())
    row = _notes(db)[0]
    assert row.status == DeliveryStatus.failed
    assert row.last_error == "PermanentFailure: the webhook answered 404"
    assert "127.0.0.1" not in (row.last_error or "")  # never the address
    assert "x-hotline-signature" not in server.requests[0][0]  # no secret configured


async def test_the_worker_escalates_on_its_schedule_and_serves_its_metrics(
    world: World, db: Database, settings: Settings
) -> None:
    port = _free_port()
    with WebhookServer() as server:
        _targets(db, muenchen={"escalation_webhook_url": server.url})
        with db.write() as session:
            city = session.exec(select(City).where(City.key == "muenchen")).one()
            session.add(
                Ticket(
                    reference="HL-2026-000777",
                    subject="x",
                    audience=Audience.external,
                    channel=Channel.api,
                    responsible_city_id=city.id or 0,
                    first_response_due=utcnow() - timedelta(hours=1),
                )
            )
        run_settings = settings_for(
            settings.database_url,
            sla_check_seconds=0.2,
            worker_poll_seconds=0.05,
            worker_metrics_port=port,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_worker(db, run_settings, stop))
        try:
            for _ in range(200):
                if server.requests:
                    break
                await asyncio.sleep(0.05)
            assert len(server.requests) == 1
            await asyncio.sleep(0.3)  # the sent status is recorded after the answer
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
    assert 'hotline_sla_escalations_total{city="muenchen"} 1.0' in text
    assert 'hotline_outbox_deliveries_total{channel="city_webhook",result="sent"} 1.0' in text
    assert len(_events(db)) == 1


def test_the_schedule_is_off_at_zero(db: Database, settings: Settings) -> None:
    off = settings_for(settings.database_url, sla_check_seconds=0)
    assert asyncio.run(worker.run_escalation_schedule(db, off, asyncio.Event())) == 0


# --- the board ----------------------------------------------------------------------------------


def test_board_shows_the_escalation_and_the_breached_filter_finds_it(
    board: Callable[..., BoardClient], world: World, db: Database
) -> None:
    bc = board("agent.muc")
    _targets(db, muenchen={"escalation_email": MUC_MAIL, "escalation_webhook_url": "http://x/y"})
    late = _ticket(bc.client, world, "muenchen")
    fine = _ticket(bc.client, world, "muenchen")
    _overdue(db, late)
    escalate_overdue(db, public_url=PUBLIC, email_enabled=True)

    inbox = bc.get("/board/inbox").text
    assert inbox.count("Eskaliert vor") == 1
    row = inbox.split(f'<span class="ref">{late}</span>')[1].split("</tr>")[0]
    assert "Eskaliert vor" in row
    breached = bc.get("/board/inbox?breached=1").text
    assert late in breached and fine not in breached

    page = bc.get(f"/board/tickets/{late}").text
    assert 'class="badge danger escalated">Eskaliert <time' in page
    assert "Eskaliert: keine erste Antwort bis zur Frist." in page
    assert "Die zuständige Stadt wurde benachrichtigt: E-Mail, Webhook." in page
    assert "Eskaliert" not in bc.get(f"/board/tickets/{fine}").text

    bc.get("/board/lang/en?next=/board/", follow_redirects=False)
    english = bc.get(f"/board/tickets/{late}").text
    assert "Escalated <time" in english
    assert "Escalated: no first response by the due time." in english
    assert "The responsible city was notified: e-mail, webhook." in english
    assert "Eskaliert" not in english
    assert "Escalated" in bc.get("/board/inbox").text


# --- the migration ------------------------------------------------------------------------------


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def _down_and_up(db: Database) -> None:
    migrate.upgrade(db.engine)
    with db.engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0006")
    assert "sla_escalated_at" not in _columns(db.engine, "ticket")
    assert not {"escalation_email", "escalation_webhook_url"} & _columns(db.engine, "city")
    migrate.upgrade(db.engine)
    assert "sla_escalated_at" in _columns(db.engine, "ticket")
    assert migrate.drift(db.engine) == []


def test_migration_0007_downgrades_and_upgrades_on_sqlite(tmp_path: Path) -> None:
    db = Database.from_settings(settings_for(f"sqlite:///{tmp_path / 'm.db'}"))
    try:
        _down_and_up(db)
    finally:
        db.dispose()


def test_migration_0007_downgrades_and_upgrades_on_postgresql() -> None:
    with empty_pg_schema("hl_migration_0007") as db:
        _down_and_up(db)
