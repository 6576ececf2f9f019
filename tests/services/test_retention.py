"""Retention per city: old closed tickets anonymised, old question logs and idle web chats
deleted — idempotent, batched, a dry run that changes nothing, logged as counts only."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from hotline import worker
from hotline.db import Database, utcnow
from hotline.models import (
    Attachment,
    ChatSession,
    City,
    DeliveryStatus,
    KBAsk,
    KBCandidate,
    KBEntry,
    Message,
    MessageKind,
    OutboxDelivery,
    Requester,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from hotline.schemas import RequesterIn, TicketCreate, TranscriptTurn
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.citizen import ERASED
from hotline.services.retention import ANONYMISED_SUBJECT, run_retention
from hotline.services.rules import RouterCache
from hotline.settings import Settings

pytestmark = [pytest.mark.db, pytest.mark.usefixtures("world")]

SLA = svc.SLAPolicy(24, 120)
CHANNEL = Actor(label="kanal:test", city_id=None, network=True)
STAFF = Actor(label="staff:test", city_id=None, network=True)
NAME = "Erika Mustermann"


def _ticket(
    db: Database,
    city: str,
    *,
    chat: str,
    closed_days_ago: float | None,
    name: str = NAME,
) -> int:
    """A Telegram ticket with a transcript, a citizen message, a staff reply, a note, an
    attachment and a sent message; closed `closed_days_ago` days ago (None: left open)."""
    with db.write() as s:
        t = svc.create_ticket(
            s,
            CHANNEL,
            TicketCreate(
                subject=f"Frage von {name}",
                body=f"Ich bin {name} und mein Konto ist gesperrt.",
                channel="telegram",
                origin_city=city,
                requester=RequesterIn(telegram_chat_id=chat, name=name),
                transcript=[TranscriptTurn(role="citizen", text=f"Hallo, hier {name}")],
            ),
            default_city="muenchen",
            sla=SLA,
            router_cache=RouterCache(),
        )
        tid = t.id or 0
        svc.add_message(s, STAFF, tid, kind=MessageKind.reply, body="Wir helfen gern.")
        svc.add_message(s, STAFF, tid, kind=MessageKind.note, body="Intern: Rückruf nötig.")
        s.add(
            Attachment(ticket_id=tid, filename="ausweis.pdf", content_type="x", size=3, data=b"abc")
        )
        for d in s.exec(select(OutboxDelivery).where(OutboxDelivery.ticket_id == tid)).all():
            d.status = DeliveryStatus.sent
            s.add(d)
        if closed_days_ago is not None:
            svc.change_status(s, STAFF, tid, to=TicketStatus.closed, version=t.version)
            t.closed_at = utcnow() - timedelta(days=closed_days_ago)
        else:
            t.updated_at = utcnow() - timedelta(days=999)
        s.add(t)
        return tid


def _set_days(
    db: Database, city: str, retention: int | None = None, log: int | None = None
) -> None:
    with db.write() as s:
        row = s.exec(select(City).where(City.key == city)).one()
        if retention is not None:
            row.retention_days = retention
        if log is not None:
            row.log_retention_days = log
        s.add(row)


def _anonymised(db: Database, tid: int) -> bool:
    with db.read() as s:
        t = s.get_one(Ticket, tid)
        citizen_texts = s.exec(
            select(Message.body).where(
                Message.ticket_id == tid,
                col(Message.kind).in_([MessageKind.citizen, MessageKind.bot]),
            )
        ).all()
        attachments = s.exec(select(Attachment).where(Attachment.ticket_id == tid)).all()
        if t.subject != ANONYMISED_SUBJECT:
            assert NAME in t.subject and attachments
            return False
        assert all(body == ERASED for body in citizen_texts) and citizen_texts
        assert not attachments
        recipients = s.exec(
            select(OutboxDelivery.recipient).where(OutboxDelivery.ticket_id == tid)
        ).all()
        assert all(r == "-" for r in recipients)
        return True


def _subject(db: Database, tid: int) -> str:
    with db.read() as s:
        return s.get_one(Ticket, tid).subject


def _ask(db: Database, city: str | None, days: float, ticket_id: int | None = None) -> int:
    with db.write() as s:
        city_id = s.exec(select(City.id).where(City.key == city)).one() if city else None
        row = KBAsk(
            question="Wie verlängere ich den Ausweis?",
            city_id=city_id,
            decision="handover",
            client_hash="abc",
            ticket_id=ticket_id,
            created_at=utcnow() - timedelta(days=days),
        )
        s.add(row)
        s.flush()
        return row.id or 0


def _exists(db: Database, model: type, ident: object) -> bool:
    with db.read() as s:
        return s.get(model, ident) is not None


def test_old_closed_tickets_are_anonymised_per_city(db: Database) -> None:
    _set_days(db, "augsburg", retention=10)  # München keeps the default of 180 days
    old_muc = _ticket(db, "muenchen", chat="1", closed_days_ago=200)
    young_muc = _ticket(db, "muenchen", chat="2", closed_days_ago=100)
    old_aux = _ticket(db, "augsburg", chat="3", closed_days_ago=20)
    young_aux = _ticket(db, "augsburg", chat="4", closed_days_ago=5)
    open_old = _ticket(db, "muenchen", chat="5", closed_days_ago=None)
    # One person with an old closed and a young closed ticket: their record stays for now.
    _ticket(db, "muenchen", chat="6", closed_days_ago=300)
    _ticket(db, "muenchen", chat="6", closed_days_ago=1)

    report = run_retention(db)

    assert report.tickets_anonymised == 3 and report.per_city == {"muenchen": 2, "augsburg": 1}
    assert _anonymised(db, old_muc) and _anonymised(db, old_aux)
    assert not _anonymised(db, young_muc) and not _anonymised(db, young_aux)
    assert not _anonymised(db, open_old)
    with db.read() as s:
        people = {r.telegram_chat_id: r for r in s.exec(select(Requester)).all()}
        erased = [r for r in s.exec(select(Requester)).all() if r.anonymised_at is not None]
        # The records of "1" and "3" are gone; "6" still has a young ticket.
        assert len(erased) == 2 and all(r.name is None for r in erased)
        assert set(people) == {None, "2", "4", "5", "6"}
        assert people["6"].name == NAME
        # Staff replies, notes and the audit trail stay for the statistics.
        kinds = s.exec(select(Message.kind).where(Message.ticket_id == old_muc)).all()
        assert {MessageKind.reply, MessageKind.note} <= set(kinds)
        event = s.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == old_muc, TicketEvent.kind == "anonymised"
            )
        ).one()
        assert event.actor == "system:retention" and event.after == {"reason": "retention"}
        assert s.get_one(Ticket, old_muc).status == TicketStatus.closed


def test_a_second_run_changes_nothing(db: Database) -> None:
    tid = _ticket(db, "muenchen", chat="1", closed_days_ago=200)
    assert run_retention(db).tickets_anonymised == 1
    with db.read() as s:
        events = s.exec(select(func.count()).select_from(TicketEvent)).one()
    again = run_retention(db)
    assert (again.tickets_anonymised, again.asks_deleted, again.requesters_erased) == (0, 0, 0)
    with db.read() as s:
        assert s.exec(select(func.count()).select_from(TicketEvent)).one() == events
    assert _anonymised(db, tid)


def test_works_in_batches(db: Database) -> None:
    tids = [_ticket(db, "muenchen", chat=str(10 + i), closed_days_ago=200) for i in range(5)]
    for i in range(5):
        _ask(db, "muenchen", days=40 + i)
    report = run_retention(db, batch_size=2)
    assert report.tickets_anonymised == 5 and report.asks_deleted == 5
    assert all(_anonymised(db, t) for t in tids)


def test_old_question_logs_and_idle_chats_are_deleted(db: Database) -> None:
    _set_days(db, "augsburg", log=60)
    linked_ticket = _ticket(db, "muenchen", chat="7", closed_days_ago=None)
    old_muc = _ask(db, "muenchen", days=40)
    young_muc = _ask(db, "muenchen", days=10)
    old_aux_within_60 = _ask(db, "augsburg", days=40)
    older_aux = _ask(db, "augsburg", days=70)
    linked = _ask(db, "muenchen", days=400, ticket_id=linked_ticket)
    no_city = _ask(db, None, days=31)
    with db.write() as s:
        entry = KBEntry(key="ausweis", title="Ausweis", questions=["Ausweis?"], answer="So.")
        s.add(entry)
        s.flush()
        s.add(
            KBCandidate(
                entry_id=entry.id or 0, question="Ausweis?", source="choice", ask_id=old_muc
            )
        )
        s.add(ChatSession(id="idle-session-1", updated_at=utcnow() - timedelta(days=31)))
        s.add(ChatSession(id="active-session-1", updated_at=utcnow() - timedelta(days=1)))

    report = run_retention(db, log_retention_days=30)

    assert report.asks_deleted == 3 and report.chat_sessions_deleted == 1
    assert not _exists(db, KBAsk, old_muc) and not _exists(db, KBAsk, older_aux)
    assert not _exists(db, KBAsk, no_city)
    assert _exists(db, KBAsk, young_muc) and _exists(db, KBAsk, old_aux_within_60)
    assert _exists(db, KBAsk, linked)
    assert not _exists(db, ChatSession, "idle-session-1")
    assert _exists(db, ChatSession, "active-session-1")
    with db.read() as s:
        candidate = s.exec(select(KBCandidate)).one()
        assert candidate.ask_id is None and candidate.question == "Ausweis?"


def test_dry_run_reports_and_changes_nothing(db: Database) -> None:
    tid = _ticket(db, "muenchen", chat="1", closed_days_ago=200)
    ask = _ask(db, "muenchen", days=40)
    with db.write() as s:
        s.add(ChatSession(id="idle-session-1", updated_at=utcnow() - timedelta(days=31)))

    dry = run_retention(db, dry_run=True)

    assert (dry.tickets_anonymised, dry.asks_deleted, dry.chat_sessions_deleted) == (1, 1, 1)
    assert "would be anonymised" in dry.summary()
    assert not _anonymised(db, tid)
    assert _exists(db, KBAsk, ask) and _exists(db, ChatSession, "idle-session-1")
    with db.read() as s:
        assert not s.exec(select(TicketEvent).where(TicketEvent.kind == "anonymised")).all()
    real = run_retention(db)
    assert (real.tickets_anonymised, real.asks_deleted, real.chat_sessions_deleted) == (1, 1, 1)


def test_the_log_holds_counts_only(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    _ticket(db, "muenchen", chat="4711", closed_days_ago=200)
    with caplog.at_level(logging.DEBUG):
        run_retention(db)
    text = caplog.text
    assert "retention: 1 tickets anonymised" in text
    assert NAME not in text and "4711" not in text and "Mustermann" not in text


def test_the_worker_job_runs_retention(db: Database, settings: Settings) -> None:
    tid = _ticket(db, "muenchen", chat="1", closed_days_ago=200)
    report = worker.retention_job(db, settings)
    assert report.tickets_anonymised == 1 and _anonymised(db, tid)


async def test_the_worker_schedule_runs_the_job_until_stopped(
    db: Database, settings: Settings
) -> None:
    tid = _ticket(db, "muenchen", chat="1", closed_days_ago=200)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_retention_schedule(db, settings, stop, first_delay=0))
    for _ in range(200):
        if await asyncio.to_thread(_subject, db, tid) == ANONYMISED_SUBJECT:
            break
        await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(task, timeout=10) == 1
    assert _anonymised(db, tid)
    off = settings.model_copy(update={"retention_interval_hours": 0})
    assert await worker.run_retention_schedule(db, off, asyncio.Event()) == 0
