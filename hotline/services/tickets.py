"""The ticket service: every change to a ticket goes through the functions of this module."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from hotline.db import utcnow
from hotline.errors import Conflict, InvalidInput, InvalidTransition, NotFound, VersionConflict
from hotline.models import (
    Channel,
    City,
    DeliveryStatus,
    IdempotencyRecord,
    KBAsk,
    Message,
    MessageKind,
    OutboxDelivery,
    ReferenceCounter,
    Requester,
    Service,
    StaffUser,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from hotline.schemas import RequesterIn, TicketCreate
from hotline.services.actors import Actor
from hotline.services.catalog import get_city, get_service
from hotline.services.routing import TicketFacts, route_ticket
from hotline.services.rules import RouterCache
from hotline.services.sla import add_service_hours

S = TicketStatus

# The one table of allowed status changes. `reopened` is reached when the requester writes
# again after a resolution (or staff reopen); `closed` is final.
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.new: frozenset({S.open, S.waiting, S.resolved, S.closed}),
    S.open: frozenset({S.waiting, S.resolved, S.closed}),
    S.waiting: frozenset({S.open, S.resolved, S.closed}),
    S.resolved: frozenset({S.reopened, S.closed}),
    S.reopened: frozenset({S.open, S.waiting, S.resolved, S.closed}),
    S.closed: frozenset(),
}

STATUS_DE = {
    S.new: "neu",
    S.open: "in Bearbeitung",
    S.waiting: "wartet auf Rückmeldung",
    S.resolved: "gelöst",
    S.closed: "geschlossen",
    S.reopened: "wieder geöffnet",
}


@dataclass(frozen=True, slots=True)
class SLAPolicy:
    first_response_hours: int
    resolution_hours: int


# --- reading -------------------------------------------------------------------------------


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


def _ticket_stmt(ident: int | str) -> Any:
    if isinstance(ident, int) or (isinstance(ident, str) and ident.isascii() and ident.isdigit()):
        # A number beyond the column's range names no ticket (and must not reach the database).
        return select(Ticket).where(Ticket.id == (int(ident) if int(ident) <= MAX_ID else -1))
    return select(Ticket).where(Ticket.reference == str(ident).upper())


def get_ticket(session: Session, actor: Actor, ident: int | str, *, lock: bool = False) -> Ticket:
    """A ticket the actor may see, by id or reference; 404 for others (no existence leak)."""
    stmt = _ticket_stmt(ident)
    if lock:
        stmt = stmt.with_for_update()
    ticket = session.exec(stmt).first()
    if ticket is None or not actor.can_see_city(ticket.responsible_city_id):
        raise NotFound(f"Ticket {ident} was not found.", code="ticket_not_found")
    return ticket


@dataclass(slots=True)
class TicketFilter:
    status: Sequence[TicketStatus] = ()
    city: str | None = None
    origin_city: str | None = None
    service: str | None = None
    audience: str | None = None
    channel: str | None = None
    assignee: str | None = None  # a user name, or "none" for unassigned
    text: str | None = None
    limit: int = 50
    cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["id"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
            raise TypeError
        return value
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "The cursor is not valid; use next_cursor from a previous page.", code="invalid_cursor"
        ) from exc


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_tickets(
    session: Session, actor: Actor, flt: TicketFilter
) -> tuple[list[Ticket], str | None]:
    """Newest first, keyset-paginated; only what the actor may see."""
    stmt = select(Ticket)
    if not actor.network:
        stmt = stmt.where(Ticket.responsible_city_id == actor.city_id)
    if flt.status:
        stmt = stmt.where(col(Ticket.status).in_([s.value for s in flt.status]))
    if flt.city:
        stmt = stmt.where(Ticket.responsible_city_id == get_city(session, flt.city).id)
    if flt.origin_city:
        stmt = stmt.where(Ticket.origin_city_id == get_city(session, flt.origin_city).id)
    if flt.service:
        stmt = stmt.where(Ticket.service_id == get_service(session, flt.service).id)
    if flt.audience:
        stmt = stmt.where(Ticket.audience == flt.audience)
    if flt.channel:
        stmt = stmt.where(Ticket.channel == flt.channel)
    if flt.assignee:
        if flt.assignee == "none":
            stmt = stmt.where(col(Ticket.assignee_id).is_(None))
        else:
            user = session.exec(select(StaffUser).where(StaffUser.username == flt.assignee)).first()
            stmt = stmt.where(Ticket.assignee_id == (user.id if user else -1))
    if flt.text and flt.text.strip():
        pattern = _like(flt.text.strip())
        in_messages = select(Message.ticket_id).where(col(Message.body).ilike(pattern, escape="\\"))
        stmt = stmt.where(
            sa.or_(
                col(Ticket.subject).ilike(pattern, escape="\\"),
                col(Ticket.reference).ilike(pattern, escape="\\"),
                col(Ticket.id).in_(in_messages),
            )
        )
    if flt.cursor:
        stmt = stmt.where(col(Ticket.id) < decode_cursor(flt.cursor))
    limit = max(1, min(flt.limit, 200))
    rows = list(session.exec(stmt.order_by(col(Ticket.id).desc()).limit(limit + 1)).all())
    next_cursor = encode_cursor(rows[limit - 1].id or 0) if len(rows) > limit else None
    return rows[:limit], next_cursor


def list_messages(session: Session, actor: Actor, ident: int | str) -> list[Message]:
    ticket = get_ticket(session, actor, ident)
    stmt = select(Message).where(Message.ticket_id == ticket.id).order_by(col(Message.id))
    return list(session.exec(stmt).all())


def list_events(session: Session, actor: Actor, ident: int | str) -> list[TicketEvent]:
    ticket = get_ticket(session, actor, ident)
    stmt = (
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(col(TicketEvent.id))
    )
    return list(session.exec(stmt).all())


# --- shared pieces of every change ----------------------------------------------------------


def _event(
    session: Session,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> TicketEvent:
    event = TicketEvent(
        ticket_id=ticket.id or 0,
        kind=kind,
        actor=actor.label[:120],
        actor_staff_id=actor.staff_id,
        actor_token_id=actor.token_id,
        before=before,
        after=after,
    )
    session.add(event)
    return event


def log_event(
    session: Session,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    after: dict[str, Any] | None = None,
) -> TicketEvent:
    """Record something that happened to a ticket without changing it (e.g. a KB link)."""
    return _event(session, ticket, actor, kind, None, after)


def _check_version(ticket: Ticket, version: int | None) -> None:
    if version is not None and version != ticket.version:
        raise VersionConflict(
            f"Ticket {ticket.reference} was changed meanwhile (your version {version}, current "
            f"{ticket.version}). Reload it and apply your change again.",
            current_version=ticket.version,
        )


def _touch(ticket: Ticket) -> None:
    ticket.version += 1
    ticket.updated_at = utcnow()


def _apply_status(
    session: Session, ticket: Ticket, actor: Actor, to: TicketStatus, **extra: Any
) -> None:
    current = TicketStatus(ticket.status)
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final)"
        raise InvalidTransition(
            f"A ticket cannot go from {current.value} to {to.value}. Allowed from "
            f"{current.value}: {allowed}.",
            allowed=sorted(s.value for s in TRANSITIONS[current]),
        )
    now = utcnow()
    ticket.status = to
    if to == S.resolved:
        ticket.resolved_at = now
    elif to == S.closed:
        ticket.closed_at = now
    elif to == S.reopened:
        ticket.resolved_at = None
    _event(
        session,
        ticket,
        actor,
        "status_changed",
        {"status": current.value},
        {"status": to.value, **extra},
    )


def _notify_requester(
    session: Session, ticket: Ticket, payload: dict[str, Any], dedup: str
) -> None:
    """Queue an outbound message to the requester's channel in the caller's transaction."""
    if ticket.requester_id is None:
        return
    requester = session.get(Requester, ticket.requester_id)
    if requester is None or requester.anonymised_at is not None:
        return
    channel: Channel
    if requester.telegram_chat_id and ticket.channel == Channel.telegram:
        channel, recipient = Channel.telegram, requester.telegram_chat_id
    elif requester.web_session and ticket.channel == Channel.web:
        channel, recipient = Channel.web, requester.web_session
    elif requester.email:
        channel, recipient = Channel.email, requester.email
    elif requester.telegram_chat_id:
        channel, recipient = Channel.telegram, requester.telegram_chat_id
    else:
        return
    session.add(
        OutboxDelivery(
            ticket_id=ticket.id,
            message_id=payload.get("message_id"),
            channel=channel,
            recipient=recipient,
            payload={
                "reference": ticket.reference,
                "language": requester.language or "de",
                **payload,
            },
            dedup_key=dedup,
            status=DeliveryStatus.pending,
        )
    )


# --- creation ------------------------------------------------------------------------------


def next_reference(session: Session, year: int) -> str:
    """`HL-<year>-<6 digits>`, unique under concurrency (row lock / serialised writer)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(ReferenceCounter)
        .values(year=year, last=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    number = session.execute(
        sa.update(ReferenceCounter)
        .where(col(ReferenceCounter.year) == year)
        .values(last=col(ReferenceCounter.last) + 1)
        .returning(col(ReferenceCounter.last))
    ).scalar_one()
    return f"HL-{year}-{number:06d}"


def _requester(session: Session, data: RequesterIn | None) -> Requester | None:
    if data is None or not any([data.name, data.email, data.telegram_chat_id, data.web_session]):
        return None
    chat = str(data.telegram_chat_id) if data.telegram_chat_id is not None else None
    existing = None
    if chat:
        existing = session.exec(select(Requester).where(Requester.telegram_chat_id == chat)).first()
    elif data.web_session:
        existing = session.exec(
            select(Requester).where(Requester.web_session == data.web_session)
        ).first()
    requester = existing or Requester()
    requester.name = data.name or requester.name
    requester.email = str(data.email) if data.email else requester.email
    requester.telegram_chat_id = chat or requester.telegram_chat_id
    requester.web_session = data.web_session or requester.web_session
    requester.language = data.language or requester.language
    requester.anonymised_at = None
    session.add(requester)
    session.flush()
    return requester


def sla_policy_for(city: City, default: SLAPolicy) -> SLAPolicy:
    return SLAPolicy(
        first_response_hours=city.sla_first_response_hours or default.first_response_hours,
        resolution_hours=city.sla_resolution_hours or default.resolution_hours,
    )


def set_due_times(ticket: Ticket, city: City, policy: SLAPolicy, start: datetime) -> None:
    kwargs: dict[str, Any] = {
        "service_hours": city.service_hours,
        "tz": city.timezone,
        "state": city.state,
    }
    ticket.first_response_due = add_service_hours(start, policy.first_response_hours, **kwargs)
    ticket.resolution_due = add_service_hours(start, policy.resolution_hours, **kwargs)


def create_ticket(
    session: Session,
    actor: Actor,
    data: TicketCreate,
    *,
    default_city: str,
    sla: SLAPolicy,
    router_cache: RouterCache,
) -> Ticket:
    origin = get_city(session, data.origin_city, field="origin_city") if data.origin_city else None
    service = get_service(session, data.service) if data.service else None
    routed = route_ticket(
        session,
        TicketFacts(
            origin_city=origin,
            service=service,
            topic=data.topic,
            audience=data.audience.value,
            channel=data.channel.value,
            text=f"{data.subject}\n{data.body}",
        ),
        default_city=default_city,
        cache=router_cache,
    )
    now = utcnow()
    requester = _requester(session, data.requester)
    ticket = Ticket(
        reference=next_reference(session, now.year),
        subject=data.subject,
        audience=data.audience,
        channel=data.channel,
        priority=data.priority,
        origin_city_id=origin.id if origin else None,
        service_id=service.id if service else None,
        topic=data.topic or (service.topic if service else None),
        responsible_city_id=routed.city.id or 0,
        requester_id=requester.id if requester else None,
        routing=routed.decision,
        kb_offers=[o.model_dump(exclude_none=True) for o in data.kb_offers]
        if data.kb_offers
        else None,
        created_at=now,
        updated_at=now,
    )
    policy = sla_policy_for(routed.city, sla)
    if routed.sla_hours:
        policy = SLAPolicy(routed.sla_hours, max(routed.sla_hours, policy.resolution_hours))
    set_due_times(ticket, routed.city, policy, now)
    session.add(ticket)
    session.flush()
    if data.transcript:
        # The conversation before the handover, as one bot message for the thread.
        lines = [
            f"{'Bürger/in' if turn.role == 'citizen' else 'Bot'}: {turn.text}"
            for turn in data.transcript
        ]
        session.add(
            Message(
                ticket_id=ticket.id or 0,
                kind=MessageKind.bot,
                body="Verlauf mit dem Bot:\n" + "\n".join(lines),
                created_at=now,
            )
        )
    session.add(
        Message(ticket_id=ticket.id or 0, kind=MessageKind.citizen, body=data.body, created_at=now)
    )
    _event(
        session,
        ticket,
        actor,
        "created",
        None,
        {"status": ticket.status, "channel": ticket.channel, "audience": ticket.audience},
    )
    _event(session, ticket, actor, "routed", None, {"city": routed.city.key, **routed.decision})
    if data.kb_ask_id is not None and actor.network:
        # The bot's question that ended in this handover (first-contact-resolution KPI).
        ask = session.get(KBAsk, data.kb_ask_id)
        if ask is not None and ask.ticket_id is None:
            ask.ticket_id = ticket.id
            session.add(ask)
    session.flush()
    return ticket


# --- changes -------------------------------------------------------------------------------


def add_message(
    session: Session, actor: Actor, ident: int | str, *, kind: MessageKind, body: str
) -> tuple[Ticket, Message]:
    """Append a message; replies reach the requester, requester messages reopen a resolution."""
    ticket = get_ticket(session, actor, ident, lock=True)
    if kind == MessageKind.citizen and ticket.merged_into_id is not None:
        # Follow-ups to a merged duplicate belong on the ticket that absorbed it.
        target = session.exec(
            select(Ticket).where(Ticket.id == ticket.merged_into_id).with_for_update()
        ).one()
        if actor.can_see_city(target.responsible_city_id):
            ticket = target
    if TicketStatus(ticket.status) == S.closed:
        raise Conflict(
            f"Ticket {ticket.reference} is closed; open a new ticket instead.", code="ticket_closed"
        )
    message = Message(
        ticket_id=ticket.id or 0,
        kind=kind,
        body=body,
        author_staff_id=actor.staff_id if kind != MessageKind.citizen else None,
        author_token_id=actor.token_id,
    )
    session.add(message)
    session.flush()
    status = TicketStatus(ticket.status)
    if kind == MessageKind.reply:
        if ticket.first_responded_at is None:
            ticket.first_responded_at = message.created_at
        if status in (S.new, S.reopened):
            _apply_status(session, ticket, actor, S.open, reason="reply")
        _notify_requester(
            session,
            ticket,
            {"kind": "reply", "message_id": message.id, "text": body},
            dedup=f"message:{message.id}",
        )
    elif kind == MessageKind.citizen:
        if status == S.resolved:
            _apply_status(session, ticket, actor, S.reopened, reason="requester_wrote")
        elif status == S.waiting:
            _apply_status(session, ticket, actor, S.open, reason="requester_wrote")
    _event(
        session,
        ticket,
        actor,
        "message_added",
        None,
        {"kind": kind.value, "message_id": message.id},
    )
    _touch(ticket)
    session.add(ticket)
    session.flush()
    return ticket, message


def add_staff_message(
    session: Session,
    actor: Actor,
    ident: int | str,
    *,
    kind: MessageKind,
    body: str,
    version: int | None,
) -> tuple[Ticket, Message]:
    """A reply or note written against the version the staff member saw: when a colleague (or
    the requester) changed the ticket meanwhile, VersionConflict instead of a blind answer."""
    if kind not in (MessageKind.reply, MessageKind.note):
        raise InvalidInput("Staff write replies or notes only.", code="invalid_kind")
    ticket = get_ticket(session, actor, ident, lock=True)
    _check_version(ticket, version)
    return add_message(session, actor, ticket.id or 0, kind=kind, body=body)


def change_status(
    session: Session, actor: Actor, ident: int | str, *, to: TicketStatus, version: int
) -> Ticket:
    ticket = get_ticket(session, actor, ident, lock=True)
    _check_version(ticket, version)
    _apply_status(session, ticket, actor, to)
    if to in (S.resolved, S.closed):
        _notify_requester(
            session,
            ticket,
            {
                "kind": "status",
                "status": to.value,
                "version": ticket.version + 1,
                "text": f"Ihr Anliegen {ticket.reference} ist {STATUS_DE[to]}.",
            },
            dedup=f"status:{ticket.id}:{ticket.version + 1}",
        )
    _touch(ticket)
    session.add(ticket)
    session.flush()
    return ticket


def assign_ticket(
    session: Session, actor: Actor, ident: int | str, *, assignee: str | None, version: int | None
) -> Ticket:
    """Assign to a staff member of the responsible city (or a coordinator); None unassigns."""
    ticket = get_ticket(session, actor, ident, lock=True)
    _check_version(ticket, version)
    user: StaffUser | None = None
    if assignee is not None:
        user = session.exec(select(StaffUser).where(StaffUser.username == assignee)).first()
        if user is None or not user.active:
            raise InvalidInput(
                f"Unknown or inactive staff user {assignee!r}.", code="unknown_assignee"
            )
        if user.city_id != ticket.responsible_city_id and user.role != "coordinator":
            raise InvalidInput(
                f"{assignee} does not work for the responsible city; transfer the ticket first.",
                code="assignee_wrong_city",
            )
    if ticket.assignee_id == (user.id if user else None):
        return ticket  # nothing changes; no event, no new version
    before = session.get(StaffUser, ticket.assignee_id) if ticket.assignee_id else None
    ticket.assignee_id = user.id if user else None
    _event(
        session,
        ticket,
        actor,
        "assigned",
        {"assignee": before.username if before else None},
        {"assignee": user.username if user else None},
    )
    _touch(ticket)
    session.add(ticket)
    session.flush()
    return ticket


def transfer_ticket(
    session: Session, actor: Actor, ident: int | str, *, to_city: str, reason: str, version: int
) -> Ticket:
    """Hand the ticket to another city with a reason; the original routing stays in the history."""
    ticket = get_ticket(session, actor, ident, lock=True)
    _check_version(ticket, version)
    if not reason.strip():
        raise InvalidInput("A transfer needs a reason.", code="missing_reason", field="reason")
    target = get_city(session, to_city, field="to_city")
    if target.id == ticket.responsible_city_id:
        raise InvalidInput(f"The ticket is already with {target.name}.", code="same_city")
    if not target.active:
        raise InvalidInput(f"{target.name} is not active in the hotline.", code="inactive_city")
    if TicketStatus(ticket.status) == S.closed:
        raise Conflict(f"Ticket {ticket.reference} is closed.", code="ticket_closed")
    source = session.get(City, ticket.responsible_city_id)
    before_assignee = session.get(StaffUser, ticket.assignee_id) if ticket.assignee_id else None
    ticket.responsible_city_id = target.id or 0
    ticket.assignee_id = None
    _event(
        session,
        ticket,
        actor,
        "transferred",
        {
            "city": source.key if source else None,
            "assignee": before_assignee.username if before_assignee else None,
        },
        {"city": target.key, "reason": reason.strip()},
    )
    session.add(
        Message(
            ticket_id=ticket.id or 0,
            kind=MessageKind.system,
            body=(
                f"Weitergeleitet von {source.name if source else '?'} an {target.name}: "
                f"{reason.strip()}"
            ),
        )
    )
    _touch(ticket)
    session.add(ticket)
    session.flush()
    return ticket


def merge_ticket(
    session: Session, actor: Actor, ident: int | str, *, into: str, version: int
) -> tuple[Ticket, Ticket]:
    """Close a duplicate into another ticket; later requester messages go to the survivor."""
    source = get_ticket(session, actor, ident, lock=True)
    _check_version(source, version)
    target = get_ticket(session, actor, into, lock=True)
    if target.id == source.id:
        raise InvalidInput("A ticket cannot be merged into itself.", code="merge_into_self")
    if target.merged_into_id is not None or TicketStatus(target.status) == S.closed:
        raise InvalidInput(
            f"{target.reference} is closed or merged itself.", code="merge_target_closed"
        )
    if TicketStatus(source.status) == S.closed:
        raise Conflict(f"Ticket {source.reference} is closed.", code="ticket_closed")
    before_status = source.status
    source.merged_into_id = target.id
    source.status = S.closed
    source.closed_at = utcnow()
    _event(
        session,
        source,
        actor,
        "merged",
        {"status": before_status},
        {"status": S.closed.value, "merged_into": target.reference},
    )
    _event(session, target, actor, "merged", None, {"absorbed": source.reference})
    session.add(
        Message(
            ticket_id=target.id or 0,
            kind=MessageKind.system,
            body=f"Doppeltes Anliegen {source.reference} wurde hiermit zusammengeführt.",
        )
    )
    session.add(
        Message(
            ticket_id=source.id or 0,
            kind=MessageKind.system,
            body=f"Zusammengeführt in {target.reference}.",
        )
    )
    _touch(source)
    _touch(target)
    session.add(source)
    session.add(target)
    session.flush()
    return source, target


# --- idempotency ---------------------------------------------------------------------------


def request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(slots=True)
class Replay:
    resource_id: int
    status_code: int
    extra: dict[str, Any] = field(default_factory=dict)


def find_idempotent(
    session: Session, actor: Actor, key: str, *, operation: str, payload_hash: str
) -> Replay | None:
    """The earlier result for this key, or None; a key reused for another request is refused."""
    record = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == actor.scope, IdempotencyRecord.key == key
        )
    ).first()
    if record is None:
        return None
    if record.operation != operation or record.request_hash != payload_hash:
        raise Conflict(
            "This Idempotency-Key was already used for a different request; use a new key.",
            code="idempotency_key_reused",
        )
    return Replay(record.resource_id, record.status_code)


def remember_idempotent(
    session: Session,
    actor: Actor,
    key: str,
    *,
    operation: str,
    payload_hash: str,
    resource_id: int,
    status_code: int,
) -> None:
    session.add(
        IdempotencyRecord(
            scope=actor.scope,
            key=key,
            operation=operation,
            request_hash=payload_hash,
            resource_id=resource_id,
            status_code=status_code,
        )
    )
    session.flush()


def service_key_map(session: Session, ids: set[int]) -> dict[int, Service]:
    if not ids:
        return {}
    return {
        s.id: s for s in session.exec(select(Service).where(col(Service.id).in_(ids))).all() if s.id
    }
