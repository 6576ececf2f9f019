"""Data retention (DSGVO Art. 5(1)(e)): old closed tickets anonymised, old logs deleted.

Per city, a ticket that has been closed for longer than the city's `retention_days` (default
180) is anonymised with the same function as an erasure on request
(`citizen.anonymise_ticket`: the citizen's and the bot's messages blanked, attachments
deleted, nothing more sent out) and, beyond that, its subject blanked, the questions linked to
it blanked, the addresses of its sent messages removed and — once none of their tickets is
left — the requester's name, e-mail and chat ids deleted. Staff replies, internal notes and the
audit trail stay, so the statistics (KPIs) of the city keep their figures.

Questions put to the bot that did not become a ticket (`KBAsk` rows without a ticket) are
deleted after the city's `log_retention_days` (default 30; questions without a city use the
setting `HOTLINE_LOG_RETENTION_DAYS`), and web-chat sessions idle for that many days too.

The job is idempotent (an anonymised ticket carries an `anonymised` event and is never
selected again), works in batches of short transactions, and reports counts only — never a
name, address or text — so its log line is safe to keep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, delete, func, select, update

from hotline.db import Database, utcnow
from hotline.models import (
    ChatSession,
    City,
    KBAsk,
    KBCandidate,
    OutboxDelivery,
    Requester,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from hotline.services.actors import Actor
from hotline.services.citizen import ERASED, anonymise_ticket

log = logging.getLogger(__name__)

RETENTION_ACTOR = Actor(label="system:retention", city_id=None, network=True)
ANONYMISED_EVENT = "anonymised"  # written by citizen.anonymise_ticket
ANONYMISED_SUBJECT = "[Anonymisiert]"


@dataclass(slots=True)
class RetentionReport:
    """What one run did (or, in a dry run, would do); counts only."""

    dry_run: bool = False
    tickets_anonymised: int = 0
    requesters_erased: int = 0
    asks_deleted: int = 0
    chat_sessions_deleted: int = 0
    # Tickets anonymised per city key (city keys are not personal data).
    per_city: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        v = "would be " if self.dry_run else ""
        return (
            f"retention{' (dry run)' if self.dry_run else ''}: "
            f"{self.tickets_anonymised} tickets {v}anonymised, "
            f"{self.requesters_erased} requesters {v}erased, "
            f"{self.asks_deleted} asks {v}deleted, "
            f"{self.chat_sessions_deleted} chat sessions {v}deleted"
        )


# --- selecting what is due -------------------------------------------------------------------


def _not_anonymised() -> Any:
    marker = select(TicketEvent.id).where(
        TicketEvent.ticket_id == Ticket.id, TicketEvent.kind == ANONYMISED_EVENT
    )
    return ~sa.exists(marker)


def _due_tickets(city_id: int, cutoff: datetime) -> Any:
    """Closed tickets of the city, closed before `cutoff`, not anonymised yet."""
    closed_at = func.coalesce(col(Ticket.closed_at), col(Ticket.updated_at))
    return select(Ticket).where(
        Ticket.responsible_city_id == city_id,
        Ticket.status == TicketStatus.closed,
        closed_at < cutoff,
        _not_anonymised(),
    )


def _due_asks(city_id: int | None, cutoff: datetime) -> Any:
    city_cond = col(KBAsk.city_id).is_(None) if city_id is None else KBAsk.city_id == city_id
    return select(KBAsk.id).where(
        col(KBAsk.ticket_id).is_(None), city_cond, col(KBAsk.created_at) < cutoff
    )


def _due_chats(cutoff: datetime) -> Any:
    return select(ChatSession.id).where(col(ChatSession.updated_at) < cutoff)


def _count(session: Session, stmt: Any) -> int:
    return int(session.exec(select(func.count()).select_from(stmt.subquery())).one())


# --- anonymising one ticket ------------------------------------------------------------------


def anonymise_closed_ticket(session: Session, actor: Actor, ticket: Ticket, reason: str) -> None:
    """`citizen.anonymise_ticket` plus what it leaves (see `scrub_ticket`)."""
    anonymise_ticket(session, actor, ticket, reason)
    scrub_ticket(session, ticket)


def scrub_ticket(session: Session, ticket: Ticket) -> None:
    """Remove what `citizen.anonymise_ticket` leaves: the subject (the citizen's own words on
    bot tickets), the questions linked to the ticket and the addresses of messages sent."""
    ticket.subject = ANONYMISED_SUBJECT
    session.add(ticket)
    session.exec(
        update(KBAsk)
        .where(col(KBAsk.ticket_id) == ticket.id)
        .values(question=ERASED, client_hash=None, alternatives=None)
    )
    session.exec(
        update(OutboxDelivery)
        .where(col(OutboxDelivery.ticket_id) == ticket.id, col(OutboxDelivery.recipient) != "-")
        .values(recipient="-", payload={})
    )


def erase_requester_if_done(session: Session, requester_id: int) -> bool:
    """Delete the requester's personal data once none of their tickets is left unanonymised."""
    requester = session.get(Requester, requester_id)
    if requester is None or requester.anonymised_at is not None:
        return False
    remaining = session.exec(
        select(Ticket.id).where(Ticket.requester_id == requester_id, _not_anonymised()).limit(1)
    ).first()
    if remaining is not None:
        return False
    requester.name = requester.email = requester.telegram_chat_id = None
    requester.web_session = None
    requester.anonymised_at = utcnow()
    session.add(requester)
    return True


def delete_asks(session: Session, ids: list[int]) -> int:
    """Delete question-log rows; candidate variants keep their (already redacted) text."""
    if not ids:
        return 0
    session.exec(update(KBCandidate).where(col(KBCandidate.ask_id).in_(ids)).values(ask_id=None))
    return int(session.exec(delete(KBAsk).where(col(KBAsk.id).in_(ids))).rowcount or 0)


# --- the job ---------------------------------------------------------------------------------


def run_retention(
    db: Database,
    *,
    log_retention_days: int = 30,
    batch_size: int = 100,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionReport:
    """Apply every city's retention periods; safe to run again at any time."""
    now = now or utcnow()
    report = RetentionReport(dry_run=dry_run)
    with db.read() as session:
        cities = [
            (c.id or 0, c.key, c.retention_days, c.log_retention_days)
            for c in session.exec(select(City).order_by(col(City.id))).all()
        ]
    for city_id, key, days, log_days in cities:
        done = _tickets(db, city_id, now - timedelta(days=days), batch_size, dry_run, report)
        if done:
            report.per_city[key] = done
        report.asks_deleted += _asks(
            db, city_id, now - timedelta(days=log_days), batch_size, dry_run
        )
    report.asks_deleted += _asks(
        db, None, now - timedelta(days=log_retention_days), batch_size, dry_run
    )
    report.chat_sessions_deleted = _chats(
        db, now - timedelta(days=log_retention_days), batch_size, dry_run
    )
    log.info("%s", report.summary())
    return report


def _tickets(
    db: Database,
    city_id: int,
    cutoff: datetime,
    batch_size: int,
    dry_run: bool,
    report: RetentionReport,
) -> int:
    if dry_run:
        with db.read() as session:
            count = _count(session, _due_tickets(city_id, cutoff))
        report.tickets_anonymised += count
        return count
    total = 0
    while True:
        with db.write() as session:
            # SKIP LOCKED: two workers running the job at once share the work (PostgreSQL).
            tickets = session.exec(
                _due_tickets(city_id, cutoff)
                .order_by(col(Ticket.id))
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            requester_ids = set()
            for ticket in tickets:
                anonymise_closed_ticket(session, RETENTION_ACTOR, ticket, "retention")
                if ticket.requester_id is not None:
                    requester_ids.add(ticket.requester_id)
            session.flush()
            for requester_id in sorted(requester_ids):
                report.requesters_erased += erase_requester_if_done(session, requester_id)
        total += len(tickets)
        report.tickets_anonymised += len(tickets)
        if len(tickets) < batch_size:
            return total


def _asks(
    db: Database, city_id: int | None, cutoff: datetime, batch_size: int, dry_run: bool
) -> int:
    if dry_run:
        with db.read() as session:
            return _count(session, _due_asks(city_id, cutoff))
    total = 0
    while True:
        with db.write() as session:
            # Locked (PostgreSQL; SQLite serialises writers): a question cannot be linked to
            # a ticket between this select and the delete.
            due = _due_asks(city_id, cutoff).limit(batch_size).with_for_update(skip_locked=True)
            ids = list(session.exec(due).all())
            total += delete_asks(session, ids)
        if len(ids) < batch_size:
            return total


def _chats(db: Database, cutoff: datetime, batch_size: int, dry_run: bool) -> int:
    if dry_run:
        with db.read() as session:
            return _count(session, _due_chats(cutoff))
    total = 0
    while True:
        with db.write() as session:
            due = _due_chats(cutoff).limit(batch_size).with_for_update(skip_locked=True)
            ids = list(session.exec(due).all())
            if ids:
                session.exec(delete(ChatSession).where(col(ChatSession.id).in_(ids)))
            total += len(ids)
        if len(ids) < batch_size:
            return total
