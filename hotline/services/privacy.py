"""A requester's rights under the DSGVO: access (Art. 15, export as JSON) and erasure
(Art. 17), for the network's operators (CLI, API with a network token); and the staff access
log (who opened which ticket, when) for coordinators.

A requester is found by exactly one of their Telegram chat id, web-chat session id or e-mail
address (`citizen.Identity`). The export holds everything the hotline keeps about them: the
requester records, their tickets with every message — internal notes included, since staff
notes about a person are data about that person (Art. 15) — the metadata of their attachments,
the ticket histories (what happened when; staff names are left out, they are the staff's data),
the questions they put to the bot (linked through the keyed chat hash, so for Telegram and web
chat only) and the web-chat session. Staff are named by role only.

Both the export and the erasure leave an audit event on every ticket concerned
(`privacy_export`, `privacy_erased`) with the actor and the kind of selector, never its value.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlmodel import Session, col, func, select, update

from hotline.db import utcnow
from hotline.errors import Forbidden, InvalidInput, NotFound
from hotline.models import (
    Attachment,
    ChatSession,
    City,
    KBAsk,
    KBCandidate,
    Message,
    MessageKind,
    Requester,
    Role,
    Service,
    StaffAccess,
    StaffUser,
    Ticket,
    TicketEvent,
)
from hotline.services import citizen
from hotline.services.actors import Actor
from hotline.services.asking import client_hash
from hotline.services.retention import scrub_ticket
from hotline.services.tickets import decode_cursor, encode_cursor, log_event

log = logging.getLogger(__name__)

EXPORT_FORMAT = "hotline-requester-export/1"
TELEGRAM_PATTERN = r"^-?\d{1,20}$"
WEB_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
AUTHORS = {
    MessageKind.citizen: "requester",
    MessageKind.reply: "staff",
    MessageKind.note: "staff (internal note)",
    MessageKind.bot: "bot",
    MessageKind.system: "system",
}
SELECTOR_NAMES = {
    "telegram": "Telegram chat",
    "web": "web-chat session",
    "email": "e-mail address",
}
BERLIN = ZoneInfo("Europe/Berlin")
_EMAIL = TypeAdapter(EmailStr)


def require_network_operator(actor: Actor) -> None:
    """A person's whole data is for the network's operators: a network token, the CLI or a
    coordinator — never a city's token or a city's staff."""
    if not actor.network or actor.role not in (None, Role.coordinator):
        raise Forbidden(
            "Only the network (a network token or a coordinator) may export or erase a "
            "requester's data.",
            code="network_token_required",
        )


def selector(
    *, telegram: str | None = None, web: str | None = None, email: str | None = None
) -> citizen.Identity:
    """Exactly one selector, checked and normalised like the values the channels store."""
    given = {k: v.strip() for k, v in (("telegram", telegram), ("web", web), ("email", email)) if v}
    if len(given) != 1:
        raise InvalidInput(
            "Give exactly one of telegram (chat id), web (web-chat session id) or email.",
            code="identity_required",
        )
    ((kind, value),) = given.items()
    if kind == "telegram":
        if not re.fullmatch(TELEGRAM_PATTERN, value):
            raise InvalidInput(
                "A Telegram chat id is a number (up to 20 digits).",
                code="invalid_selector",
                field="telegram",
            )
        return citizen.Identity(telegram_chat_id=value)
    if kind == "web":
        if not re.fullmatch(WEB_PATTERN, value):
            raise InvalidInput(
                "A web-chat session id has 8 to 64 letters, digits, '-' or '_'.",
                code="invalid_selector",
                field="web",
            )
        return citizen.Identity(web_session=value)
    try:
        normalised = str(_EMAIL.validate_python(value))
    except ValidationError:
        raise InvalidInput(
            "The e-mail address is not valid.", code="invalid_selector", field="email"
        ) from None
    return citizen.Identity(email=normalised)


def selector_kind(who: citizen.Identity) -> str:
    channel, _ = who.channel_ident
    return channel


# --- what the hotline holds about a person ---------------------------------------------------


@dataclass(slots=True)
class Holdings:
    requesters: list[Requester] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    asks: list[KBAsk] = field(default_factory=list)
    chat: ChatSession | None = None

    @property
    def empty(self) -> bool:
        return not (self.requesters or self.asks or self.chat)


def find_holdings(session: Session, who: citizen.Identity, *, secret: str) -> Holdings:
    found = Holdings(requesters=citizen.requesters(session, who))
    ids = [r.id for r in found.requesters if r.id is not None]
    if ids:
        found.tickets = list(
            session.exec(
                select(Ticket).where(col(Ticket.requester_id).in_(ids)).order_by(col(Ticket.id))
            ).all()
        )
    channel, ident = who.channel_ident
    if channel != "email":  # the question log knows chats by a keyed hash, not by address
        hashed = client_hash(secret, channel, ident)
        found.asks = list(
            session.exec(
                select(KBAsk).where(KBAsk.client_hash == hashed).order_by(col(KBAsk.id))
            ).all()
        )
    if who.web_session:
        found.chat = session.get(ChatSession, who.web_session)
    return found


def not_found_error(who: citizen.Identity) -> NotFound:
    # The value itself stays out of the message: error details can end up in logs.
    return NotFound(
        f"No data is held for this {SELECTOR_NAMES[selector_kind(who)]}.",
        code="requester_not_found",
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_requester(
    session: Session, actor: Actor, who: citizen.Identity, *, secret: str
) -> dict[str, Any]:
    """Everything held about the person, as a JSON-ready document (DSGVO Art. 15)."""
    require_network_operator(actor)
    found = find_holdings(session, who, secret=secret)
    if found.empty:
        raise not_found_error(who)
    cities = {c.id: c.key for c in session.exec(select(City)).all()}
    services = {s.id: s.key for s in session.exec(select(Service)).all()}
    ticket_ids = [t.id for t in found.tickets]
    messages: dict[int, list[Message]] = {}
    attachments: dict[int, list[Attachment]] = {}
    events: dict[int, list[TicketEvent]] = {}
    if ticket_ids:
        for m in session.exec(
            select(Message).where(col(Message.ticket_id).in_(ticket_ids)).order_by(col(Message.id))
        ).all():
            messages.setdefault(m.ticket_id, []).append(m)
        for a in session.exec(
            select(Attachment)
            .where(col(Attachment.ticket_id).in_(ticket_ids))
            .order_by(col(Attachment.id))
        ).all():
            attachments.setdefault(a.ticket_id, []).append(a)
        for e in session.exec(
            select(TicketEvent)
            .where(col(TicketEvent.ticket_id).in_(ticket_ids))
            .order_by(col(TicketEvent.id))
        ).all():
            events.setdefault(e.ticket_id, []).append(e)
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "selector": selector_kind(who),
        "requesters": [
            {
                "name": r.name,
                "email": r.email,
                "telegram_chat_id": r.telegram_chat_id,
                "web_session": r.web_session,
                "language": r.language,
                "created_at": _iso(r.created_at),
                "anonymised_at": _iso(r.anonymised_at),
            }
            for r in found.requesters
        ],
        "tickets": [
            {
                "reference": t.reference,
                "subject": t.subject,
                "status": str(t.status),
                "channel": str(t.channel),
                "audience": str(t.audience),
                "responsible_city": cities.get(t.responsible_city_id),
                "origin_city": cities.get(t.origin_city_id),
                "service": services.get(t.service_id),
                "topic": t.topic,
                "rating": t.rating,
                "kb_offers": t.kb_offers or [],
                "created_at": _iso(t.created_at),
                "updated_at": _iso(t.updated_at),
                "resolved_at": _iso(t.resolved_at),
                "closed_at": _iso(t.closed_at),
                "messages": [
                    {
                        "kind": str(m.kind),
                        "author": AUTHORS.get(MessageKind(m.kind), str(m.kind)),
                        "body": m.body,
                        "created_at": _iso(m.created_at),
                    }
                    for m in messages.get(t.id or 0, [])
                ],
                "attachments": [
                    {
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": a.size,
                        "created_at": _iso(a.created_at),
                    }
                    for a in attachments.get(t.id or 0, [])
                ],
                "history": [
                    {"kind": e.kind, "at": _iso(e.created_at)} for e in events.get(t.id or 0, [])
                ],
            }
            for t in found.tickets
        ],
        "questions": [
            {
                "question": a.question,
                "city": cities.get(a.city_id),
                "channel": str(a.channel),
                "decision": a.decision,
                "entry": a.entry_key,
                "helped": a.helped,
                "created_at": _iso(a.created_at),
            }
            for a in found.asks
        ],
        "chat_session": (
            {
                "created_at": _iso(found.chat.created_at),
                "updated_at": _iso(found.chat.updated_at),
                "state": found.chat.state,
            }
            if found.chat is not None
            else None
        ),
    }
    for ticket in found.tickets:
        log_event(session, ticket, actor, "privacy_export", {"selector": selector_kind(who)})
    session.flush()
    log.info(
        "privacy export by %s: %d tickets, %d questions",
        actor.label,
        len(found.tickets),
        len(found.asks),
    )
    return document


@dataclass(slots=True)
class PrivacyErasure:
    requesters_erased: int = 0
    tickets_anonymised: int = 0
    messages_erased: int = 0
    attachments_deleted: int = 0
    asks_deleted: int = 0
    chat_sessions_deleted: int = 0

    @property
    def nothing(self) -> bool:
        return not any(
            (
                self.requesters_erased,
                self.tickets_anonymised,
                self.asks_deleted,
                self.chat_sessions_deleted,
            )
        )


def erase_requester(
    session: Session, actor: Actor, who: citizen.Identity, *, secret: str
) -> PrivacyErasure:
    """Delete the person's data (DSGVO Art. 17) with the logic of the bot's /loeschen:
    tickets anonymised, questions and the web-chat session deleted; a second call finds
    nothing and changes nothing."""
    require_network_operator(actor)
    found = find_holdings(session, who, secret=secret)
    # A confirmed question may be a candidate KB variant; the variant keeps its text.
    ask_ids = [a.id for a in found.asks if a.id is not None]
    if ask_ids:
        session.exec(
            update(KBCandidate).where(col(KBCandidate.ask_id).in_(ask_ids)).values(ask_id=None)
        )
    # citizen.erase accepts the hotline's channels only; the operator acts through it.
    channel_actor = Actor(
        label=actor.label,
        city_id=None,
        network=True,
        staff_id=actor.staff_id,
        token_id=actor.token_id,
    )
    erased = citizen.erase(session, channel_actor, who, secret=secret)
    for ticket in found.tickets:
        scrub_ticket(session, ticket)
        log_event(session, ticket, actor, "privacy_erased", {"selector": selector_kind(who)})
    session.flush()
    result = PrivacyErasure(
        requesters_erased=len(found.requesters),
        tickets_anonymised=erased.tickets_anonymised,
        messages_erased=erased.messages_erased,
        attachments_deleted=erased.attachments_deleted,
        asks_deleted=erased.asks_deleted,
        chat_sessions_deleted=erased.chat_sessions_deleted,
    )
    log.info(
        "privacy erasure by %s: %d tickets anonymised, %d questions deleted",
        actor.label,
        result.tickets_anonymised,
        result.asks_deleted,
    )
    return result


# --- the staff access log --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessRow:
    id: int
    at: datetime
    username: str
    display_name: str
    staff_city_id: int | None
    reference: str
    ticket_city_id: int


@dataclass(slots=True)
class AccessPage:
    rows: list[AccessRow]
    next_cursor: str | None


ACCESS_PAGE_SIZES = (25, 50, 100, 200)


def access_log(
    session: Session,
    actor: Actor,
    *,
    user: str | None = None,
    ticket: str | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AccessPage:
    """Who opened which ticket and when, newest first, for coordinators (keyset pages)."""
    if actor.role != Role.coordinator:
        raise Forbidden("Diese Seite ist Ihrer Rolle nicht freigegeben.", code="role_forbidden")
    stmt = (
        select(StaffAccess, StaffUser, Ticket)
        .join(StaffUser, col(StaffUser.id) == StaffAccess.staff_id)
        .join(Ticket, col(Ticket.id) == StaffAccess.ticket_id)
    )
    if user:
        stmt = stmt.where(func.lower(StaffUser.username) == user.strip().lower())
    if ticket:
        stmt = stmt.where(Ticket.reference == ticket.strip().upper())
    if since is not None:
        stmt = stmt.where(col(StaffAccess.at) >= datetime.combine(since, time(), BERLIN))
    if until is not None:
        end = datetime.combine(until + timedelta(days=1), time(), BERLIN)
        stmt = stmt.where(col(StaffAccess.at) < end)
    if cursor:
        stmt = stmt.where(col(StaffAccess.id) < decode_cursor(cursor))
    rows = session.exec(stmt.order_by(col(StaffAccess.id).desc()).limit(limit + 1)).all()
    page = [
        AccessRow(
            id=access.id or 0,
            at=access.at,
            username=staff.username,
            display_name=staff.display_name,
            staff_city_id=staff.city_id,
            reference=t.reference,
            ticket_city_id=t.responsible_city_id,
        )
        for access, staff, t in rows[:limit]
    ]
    more = len(rows) > limit
    return AccessPage(rows=page, next_cursor=encode_cursor(page[-1].id) if more and page else None)
