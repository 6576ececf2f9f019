"""What the citizen channels (Telegram bot, web chat) need beyond tickets: the citizen's own
tickets, ratings, attachments, finding the city from a postcode, and erasing a person's data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, delete, select, update

from hotline.db import utcnow
from hotline.errors import Conflict, Forbidden, InvalidInput, NotFound
from hotline.models import (
    Attachment,
    CandidateStatus,
    ChatSession,
    City,
    DeliveryStatus,
    KBAsk,
    KBCandidate,
    Message,
    MessageKind,
    OutboxDelivery,
    Requester,
    Ticket,
    TicketStatus,
)
from hotline.services.actors import Actor
from hotline.services.asking import client_hash
from hotline.services.tickets import get_ticket, log_event

ERASED = "[Auf Wunsch der Person gelöscht]"


def require_channel(actor: Actor) -> None:
    """Citizen-level endpoints serve the network's own channels, not a city's integration."""
    if not actor.network or actor.role is not None:
        raise Forbidden(
            "Only the hotline's citizen channels (a network token) may do this.",
            code="network_token_required",
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """How a citizen is known to a channel: exactly one of these."""

    telegram_chat_id: str | None = None
    web_session: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.telegram_chat_id, self.web_session, self.email) if v]
        if len(given) != 1:
            raise InvalidInput(
                "Give exactly one of telegram_chat_id, web_session or email.",
                code="identity_required",
            )

    @property
    def channel_ident(self) -> tuple[str, str]:
        if self.telegram_chat_id:
            return "telegram", self.telegram_chat_id
        if self.web_session:
            return "web", self.web_session
        return "email", self.email or ""


def requesters(session: Session, who: Identity) -> list[Requester]:
    stmt = select(Requester)
    if who.telegram_chat_id:
        stmt = stmt.where(Requester.telegram_chat_id == who.telegram_chat_id)
    elif who.web_session:
        stmt = stmt.where(Requester.web_session == who.web_session)
    else:
        stmt = stmt.where(Requester.email == who.email)
    return list(session.exec(stmt).all())


def citizen_tickets(session: Session, actor: Actor, who: Identity, limit: int = 20) -> list[Ticket]:
    """The person's tickets, newest first (merged duplicates left out)."""
    require_channel(actor)
    ids = [r.id for r in requesters(session, who)]
    if not ids:
        return []
    return list(
        session.exec(
            select(Ticket)
            .where(col(Ticket.requester_id).in_(ids), col(Ticket.merged_into_id).is_(None))
            .order_by(col(Ticket.id).desc())
            .limit(limit)
        ).all()
    )


@dataclass(slots=True)
class Erasure:
    tickets_anonymised: int = 0
    messages_erased: int = 0
    attachments_deleted: int = 0
    asks_deleted: int = 0
    chat_sessions_deleted: int = 0


def anonymise_ticket(
    session: Session, actor: Actor, ticket: Ticket, reason: str
) -> tuple[int, int]:
    """Blank what the person wrote and sent on a ticket; staff replies and events stay.

    Returns (messages erased, attachments deleted)."""
    erased = 0
    for message in session.exec(
        select(Message).where(
            Message.ticket_id == ticket.id,
            col(Message.kind).in_([MessageKind.citizen, MessageKind.bot]),
        )
    ).all():
        if message.body != ERASED:
            message.body = ERASED
            session.add(message)
            erased += 1
    deleted = session.exec(
        delete(Attachment).where(col(Attachment.ticket_id) == ticket.id)
    ).rowcount
    # Nothing more goes out to an erased person.
    for delivery in session.exec(
        select(OutboxDelivery).where(
            OutboxDelivery.ticket_id == ticket.id, OutboxDelivery.status == DeliveryStatus.pending
        )
    ).all():
        delivery.status = DeliveryStatus.failed
        delivery.last_error = "recipient erased"
        delivery.recipient = "-"
        delivery.payload = {}
        session.add(delivery)
    ticket.kb_offers = None
    ticket.updated_at = utcnow()
    session.add(ticket)
    log_event(session, ticket, actor, "anonymised", {"reason": reason})
    return erased, deleted


def erase(session: Session, actor: Actor, who: Identity, *, secret: str) -> Erasure:
    """Delete a person's data on request: their tickets are anonymised, their logs deleted."""
    require_channel(actor)
    result = Erasure()
    for requester in requesters(session, who):
        tickets = session.exec(select(Ticket).where(Ticket.requester_id == requester.id)).all()
        for ticket in tickets:
            erased, deleted = anonymise_ticket(session, actor, ticket, "request")
            result.messages_erased += erased
            result.attachments_deleted += deleted
            result.tickets_anonymised += 1
        requester.name = requester.email = requester.telegram_chat_id = None
        requester.web_session = None
        requester.anonymised_at = utcnow()
        session.add(requester)
    channel, ident = who.channel_ident
    if channel != "email":
        hashed = client_hash(secret, channel, ident)
        asks = session.exec(select(KBAsk).where(KBAsk.client_hash == hashed)).all()
        ids = [ask.id for ask in asks if ask.id is not None]
        if ids:
            # Proposed variants still carry the person's words: they go too. Variants staff
            # already accepted are part of the KB now and only lose the link to the ask.
            session.exec(  # type: ignore[call-overload]
                delete(KBCandidate).where(
                    col(KBCandidate.ask_id).in_(ids),
                    col(KBCandidate.status) == CandidateStatus.pending,
                )
            )
            session.exec(  # type: ignore[call-overload]
                update(KBCandidate).where(col(KBCandidate.ask_id).in_(ids)).values(ask_id=None)
            )
        for ask in asks:
            session.delete(ask)
        result.asks_deleted = len(asks)
    if who.web_session:
        chat = session.get(ChatSession, who.web_session)
        if chat is not None:
            session.delete(chat)
            result.chat_sessions_deleted = 1
    session.flush()
    return result


def rate(session: Session, actor: Actor, ident: int | str, rating: int) -> Ticket:
    """Store the requester's 1–5 rating of a resolved ticket (a later rating replaces it)."""
    require_channel(actor)
    ticket = get_ticket(session, actor, ident, lock=True)
    if TicketStatus(ticket.status) not in (TicketStatus.resolved, TicketStatus.closed):
        raise Conflict(
            f"Ticket {ticket.reference} is not resolved yet; rate it once it is.",
            code="not_resolved",
        )
    if not 1 <= rating <= 5:
        raise InvalidInput("The rating must be 1 to 5.", code="invalid_rating", field="rating")
    before = ticket.rating
    ticket.rating = rating
    ticket.updated_at = utcnow()
    session.add(ticket)
    log_event(session, ticket, actor, "rated", {"rating": rating, "before": before})
    session.flush()
    return ticket


def add_attachment(
    session: Session,
    actor: Actor,
    ident: int | str,
    *,
    filename: str,
    content_type: str,
    data: bytes,
) -> Attachment:
    ticket = get_ticket(session, actor, ident, lock=True)
    if TicketStatus(ticket.status) == TicketStatus.closed:
        raise Conflict(
            f"Ticket {ticket.reference} is closed; open a new ticket instead.", code="ticket_closed"
        )
    if not data:
        raise InvalidInput("The file is empty.", code="empty_file", field="file")
    name = "".join(ch for ch in filename if ch.isprintable() and ch not in '/\\"')[-200:]
    attachment = Attachment(
        ticket_id=ticket.id or 0,
        filename=name or "dokument",
        content_type=content_type[:120] or "application/octet-stream",
        size=len(data),
        data=data,
    )
    session.add(attachment)
    session.flush()
    log_event(
        session,
        ticket,
        actor,
        "attachment_added",
        {"attachment_id": attachment.id, "size": attachment.size},
    )
    return attachment


def city_by_postcode(session: Session, postcode: str) -> City:
    """The active partner city serving a German postcode (five digits)."""
    if not (len(postcode) == 5 and postcode.isdigit()):
        raise InvalidInput(
            "A German postcode has five digits.", code="invalid_postcode", field="postcode"
        )
    value = int(postcode)
    for city in session.exec(select(City).where(City.active == True)).all():  # noqa: E712
        for span in city.postcodes or []:
            low, _, high = str(span).partition("-")
            if int(low) <= value <= int(high or low):
                return city
    raise NotFound(f"No partner city serves the postcode {postcode}.", code="postcode_unknown")
