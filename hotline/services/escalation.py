"""SLA escalation: flag tickets whose first response is overdue and notify the responsible city.

The worker runs `escalate_overdue` every HOTLINE_SLA_CHECK_SECONDS. A ticket is overdue when it
is still waiting for the hotline (new, open, waiting, reopened), has no staff reply yet, and its
`first_response_due` has passed. Each such ticket is escalated exactly once, even with several
worker processes: the candidates are locked with `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite
serialises writers anyway) and flagged by a conditional `UPDATE … WHERE sla_escalated_at IS
NULL`, and only the rows that update returns count as escalated by this process.

In the same transaction as the flag the ticket gets an `sla_escalated` event (shown in its
timeline) and the responsible city one notification per configured target, written to the
outbox: an e-mail to `City.escalation_email` (channel `city_email`, only when
HOTLINE_SMTP_HOST is set) and/or a JSON POST to `City.escalation_webhook_url` (channel
`city_webhook`). The worker delivers them with the outbox's retries and backoff; a
notification lists only that city's tickets.

Notifications carry no personal data: the reference, the service, the due time, how late it
is and a link to the board — never the subject, the requester or any message text.

Webhook requests (`POST`, `Content-Type: application/json`) carry the headers
`X-Hotline-Event: sla_escalation`, `X-Hotline-Delivery: <id>` (the same on every retry; the
receiver drops repeats) and, when HOTLINE_WEBHOOK_SECRET is set, `X-Hotline-Timestamp: <unix
seconds>` and `X-Hotline-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hotline.db import Database, utcnow
from hotline.models import City, OutboxDelivery, Service, Ticket, TicketEvent, TicketStatus

CITY_EMAIL = "city_email"
CITY_WEBHOOK = "city_webhook"
EVENT_KIND = "sla_escalated"
# Tickets flagged per transaction; a city gets one notification per batch.
BATCH = 500
# A pass stops after this many batches and continues on the next run.
MAX_BATCHES = 100
OPEN = (TicketStatus.new, TicketStatus.open, TicketStatus.waiting, TicketStatus.reopened)


@dataclass(slots=True)
class EscalationReport:
    """What one pass did: tickets escalated per city key, notifications queued."""

    escalated: dict[str, int] = field(default_factory=dict)
    notifications: int = 0

    @property
    def total(self) -> int:
        return sum(self.escalated.values())


def overdue_clause(now: datetime) -> Any:
    """Open, no first response, first-response due in the past, not escalated yet."""
    return sa.and_(
        col(Ticket.sla_escalated_at).is_(None),
        col(Ticket.first_responded_at).is_(None),
        col(Ticket.first_response_due) < now,
        col(Ticket.status).in_([s.value for s in OPEN]),
    )


def escalate_overdue(
    db: Database,
    *,
    public_url: str,
    email_enabled: bool,
    now: datetime | None = None,
    batch: int = BATCH,
) -> EscalationReport:
    """One escalation pass, in transactions of up to `batch` tickets."""
    report = EscalationReport()
    # Most passes find nothing: look first without taking the write lock (SQLite).
    with db.read() as session:
        if (
            session.exec(select(Ticket.id).where(overdue_clause(now or utcnow())).limit(1)).first()
            is None
        ):
            return report
    for _ in range(MAX_BATCHES):
        with db.write() as session:
            found, per_city, notes = _escalate_batch(
                session,
                now=now or utcnow(),
                public_url=public_url,
                email_enabled=email_enabled,
                limit=batch,
            )
        for city, count in per_city.items():
            report.escalated[city] = report.escalated.get(city, 0) + count
        report.notifications += notes
        if found < batch:
            break
    return report


def _escalate_batch(
    session: Session, *, now: datetime, public_url: str, email_enabled: bool, limit: int
) -> tuple[int, dict[str, int], int]:
    """Flag one batch; returns (candidates seen, escalated per city, notifications queued)."""
    candidates = list(
        session.exec(
            select(Ticket.id)
            .where(overdue_clause(now))
            .order_by(col(Ticket.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )
    if not candidates:
        return 0, {}, 0
    # Only what this statement flags is ours: another worker may have been quicker.
    flagged = set(
        session.execute(
            sa.update(Ticket)
            .where(col(Ticket.id).in_(candidates), overdue_clause(now))
            .values(sla_escalated_at=now)
            .returning(col(Ticket.id)),
            execution_options={"synchronize_session": False},
        )
        .scalars()
        .all()
    )
    if not flagged:
        return len(candidates), {}, 0
    tickets = list(
        session.exec(select(Ticket).where(col(Ticket.id).in_(flagged)).order_by(col(Ticket.id)))
    )
    cities = {
        c.id: c
        for c in session.exec(
            select(City).where(col(City.id).in_({t.responsible_city_id for t in tickets}))
        )
    }
    service_ids = {t.service_id for t in tickets if t.service_id is not None}
    services = (
        {s.id: s for s in session.exec(select(Service).where(col(Service.id).in_(service_ids)))}
        if service_ids
        else {}
    )
    by_city: dict[int, list[Ticket]] = defaultdict(list)
    for ticket in tickets:
        by_city[ticket.responsible_city_id].append(ticket)
    per_city: dict[str, int] = {}
    notes = 0
    for city_id, city_tickets in by_city.items():
        city = cities[city_id]
        targets = notification_targets(city, email_enabled=email_enabled)
        items = [_item(t, services.get(t.service_id), now, public_url) for t in city_tickets]
        for ticket, item in zip(city_tickets, items, strict=True):
            session.add(
                TicketEvent(
                    ticket_id=ticket.id or 0,
                    kind=EVENT_KIND,
                    actor="system",
                    after={
                        "first_response_due": item["first_response_due"],
                        "overdue_minutes": item["overdue_minutes"],
                        "notified": targets,
                    },
                    created_at=now,
                )
            )
        for channel in targets:
            session.add(_notification(channel, city, items, now=now, public_url=public_url))
            notes += 1
        per_city[city.key] = len(city_tickets)
    session.flush()
    return len(candidates), per_city, notes


def notification_targets(city: City, *, email_enabled: bool) -> list[str]:
    """The outbox channels a city is notified on (none: the flag on the board is all)."""
    targets = []
    if city.escalation_email and email_enabled:
        targets.append(CITY_EMAIL)
    if city.escalation_webhook_url:
        targets.append(CITY_WEBHOOK)
    return targets


def _item(
    ticket: Ticket, service: Service | None, now: datetime, public_url: str
) -> dict[str, Any]:
    due = ticket.first_response_due or now
    return {
        "reference": ticket.reference,
        "service": service.key if service else None,
        "service_name": service.name if service else None,
        "first_response_due": due.isoformat(),
        "overdue_minutes": max(0, int((now - due).total_seconds() // 60)),
        "url": f"{public_url.rstrip('/')}/board/tickets/{ticket.reference}",
    }


def _notification(
    channel: str, city: City, items: list[dict[str, Any]], *, now: datetime, public_url: str
) -> OutboxDelivery:
    # Every ticket is escalated once, so the first ticket names this notification for good.
    first = items[0]["reference"]
    dedup = f"sla:{channel}:{city.key}:{first}"
    payload: dict[str, Any] = {
        "kind": "sla_escalation",
        "id": dedup,
        "city": city.key,
        "city_name": city.name,
        "escalated_at": now.isoformat(),
        "inbox_url": f"{public_url.rstrip('/')}/board/inbox?breached=1",
        "tickets": items,
    }
    if channel == CITY_EMAIL:
        subject, text = email_text(payload, city.timezone)
        payload |= {"to": city.escalation_email, "subject": subject, "text": text}
    else:
        payload["webhook_url"] = city.escalation_webhook_url
    return OutboxDelivery(
        channel=channel,
        recipient=f"city:{city.key}",  # one queue per city: its notifications stay in order
        payload=payload,
        dedup_key=dedup[:120],
        next_attempt_at=now,
        created_at=now,
    )


# --- message formats ---------------------------------------------------------------------------


def _overdue_text(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} Tage"


def email_text(payload: dict[str, Any], tz: str = "Europe/Berlin") -> tuple[str, str]:
    """Subject and plain text of the e-mail to a city (German; no personal data)."""
    zone = ZoneInfo(tz)
    tickets = payload["tickets"]
    count = len(tickets)
    noun = "Anliegen"
    subject = f"[Hotline] {count} {noun} ohne Erstantwort überfällig – {payload['city_name']}"
    lines = [
        "Guten Tag,",
        "",
        f"bei der Hotline {'ist' if count == 1 else 'sind'} für {payload['city_name']} {count} "
        f"{noun} über die Frist für die erste Antwort hinaus noch ohne Antwort:",
        "",
    ]
    for item in tickets:
        due = datetime.fromisoformat(item["first_response_due"]).astimezone(zone)
        service = item["service_name"] or "ohne Dienst"
        lines.append(
            f"- {item['reference']} ({service}): fällig seit {due:%d.%m.%Y %H:%M} Uhr, "
            f"{_overdue_text(item['overdue_minutes'])} überfällig"
        )
        lines.append(f"  {item['url']}")
    lines += [
        "",
        f"Alle überfälligen Anliegen im Board: {payload['inbox_url']}",
        "",
        "Diese Nachricht hat die Hotline automatisch erstellt; sie enthält keine "
        "personenbezogenen Daten. Die Einzelheiten stehen im Board.",
    ]
    return subject, "\n".join(lines) + "\n"


def message_id(token: str, sender: str) -> str:
    """A Message-ID made from a stable token, so every retry of one e-mail carries the same."""
    domain = sender.rpartition("@")[2] or "hotline.invalid"
    local = "".join(ch if ch.isalnum() or ch in "-_." else "." for ch in token)
    return f"<{local}@{domain}>"


def email_message(payload: dict[str, Any], *, sender: str) -> EmailMessage:
    """The e-mail for an outbox payload; its Message-ID is the same on every retry."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = payload["to"]
    msg["Subject"] = payload["subject"]
    msg["Message-ID"] = message_id(payload["id"], sender)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(payload["text"])
    return msg


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The JSON the webhook receives: the payload without the delivery address."""
    body = {k: v for k, v in payload.items() if k != "webhook_url"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>` (the receiver checks it and the timestamp)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
