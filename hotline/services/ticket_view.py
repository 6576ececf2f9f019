"""The staff view of one ticket: its timeline, the routing in words, KB offers and suggestions,
the data-protection access log and "save this answer as a KB draft"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from hotline.db import utcnow
from hotline.errors import InvalidInput, NotFound
from hotline.models import (
    Audience,
    Channel,
    City,
    KBEntry,
    KBStatus,
    Message,
    MessageKind,
    Requester,
    RoutingRule,
    Service,
    StaffAccess,
    StaffUser,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from hotline.services import asking
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.catalog import slugify
from hotline.services.kb import bump_kb_generation
from hotline.services.learning import can_edit_entry

# A due time this close counts as "due soon" on the board.
DUE_SOON = timedelta(hours=2)
# Events that only repeat what the timeline shows anyway (the message itself).
_HIDDEN_EVENTS = frozenset({"message_added"})


@dataclass(slots=True)
class TimelineItem:
    """One entry of the ticket's thread: a message or an event, in time order."""

    at: datetime
    kind: str  # citizen | reply | note | bot | system | event
    author: str | None = None
    body: str | None = None
    message_id: int | None = None
    event: str | None = None  # the event kind (created, routed, assigned, …)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RoutingView:
    city_key: str | None
    city_name: str
    via: str  # rule | fallback | default
    rule: str | None
    rule_version: int | None
    description: str | None
    reason: str | None  # the decisive trace step's German text (fallback / default)
    trace: list[dict[str, Any]]
    sla_hours: int | None
    transferred: bool  # responsible city differs from the routed city


@dataclass(slots=True)
class OfferView:
    key: str
    title: str
    score: float | None
    decision: str | None
    known: bool  # the entry still exists (links work)


@dataclass(slots=True)
class Suggestion:
    key: str
    title: str
    answer: str
    score: float


@dataclass(slots=True)
class DueView:
    due: datetime | None
    state: str  # none | done | done_late | breached | soon | ok
    done_at: datetime | None = None


@dataclass(slots=True)
class TicketPage:
    ticket: Ticket
    responsible: City
    origin: City | None
    service: Service | None
    assignee: StaffUser | None
    merged_into: str | None
    requester_name: str | None
    delivery: str | None  # the channel a reply reaches the requester on, None: nobody
    timeline: list[TimelineItem]
    routing: RoutingView | None
    offers: list[OfferView]
    colleagues: list[StaffUser]
    transfer_cities: list[City]
    allowed_status: list[TicketStatus]
    first_response: DueView
    resolution: DueView
    city_names: dict[str, str]  # city key → name (events name cities by key)
    user_names: dict[str, str]  # user name → display name (events name users by user name)
    can_edit_kb: bool

    def city(self, key: Any) -> str:
        """A city named by key in an event, by name."""
        return self.city_names.get(str(key), str(key)) if key else "—"

    def person(self, username: Any) -> str:
        """A staff member named by user name in an event, by display name."""
        return self.user_names.get(str(username), str(username)) if username else "—"

    @property
    def closed(self) -> bool:
        return TicketStatus(self.ticket.status) == TicketStatus.closed


# --- access log --------------------------------------------------------------------------------


def record_access(session: Session, actor: Actor, ticket: Ticket) -> StaffAccess | None:
    """Log that a staff member opened the ticket (API tokens and the system are not staff)."""
    if actor.staff_id is None or ticket.id is None:
        return None
    row = StaffAccess(staff_id=actor.staff_id, ticket_id=ticket.id, at=utcnow())
    session.add(row)
    session.flush()
    return row


# --- assembling the page -----------------------------------------------------------------------


def _due(due: datetime | None, done_at: datetime | None, now: datetime) -> DueView:
    if due is None:
        return DueView(None, "none", done_at)
    if done_at is not None:
        return DueView(due, "done" if done_at <= due else "done_late", done_at)
    if now > due:
        return DueView(due, "breached")
    if due - now <= DUE_SOON:
        return DueView(due, "soon")
    return DueView(due, "ok")


def delivery_channel(session: Session, ticket: Ticket) -> str | None:
    """Where a reply goes: the same choice the outbox makes (tickets._notify_requester)."""
    requester = session.get(Requester, ticket.requester_id) if ticket.requester_id else None
    if requester is None or requester.anonymised_at is not None:
        return None
    if requester.telegram_chat_id and ticket.channel == Channel.telegram:
        return Channel.telegram.value
    if requester.web_session and ticket.channel == Channel.web:
        return Channel.web.value
    if requester.email:
        return Channel.email.value
    if requester.telegram_chat_id:
        return Channel.telegram.value
    return None


def build_timeline(
    messages: list[Message], events: list[TicketEvent], ticket: Ticket, names: dict[int, str]
) -> list[TimelineItem]:
    """Messages and events in one list, oldest first.

    The creation events are written a moment after the first messages of the same
    transaction; they are placed at the ticket's creation so the thread starts with them."""
    keyed: list[tuple[tuple[datetime, int, int], TimelineItem]] = []
    for e in events:
        if e.kind in _HIDDEN_EVENTS:
            continue
        at, rank = e.created_at, 2
        if e.kind in ("created", "routed"):
            at, rank = min(at, ticket.created_at), 0
        author = names.get(e.actor_staff_id) if e.actor_staff_id else e.actor
        item = TimelineItem(
            at=e.created_at,
            kind="event",
            author=author,
            event=e.kind,
            before=dict(e.before or {}),
            after=dict(e.after or {}),
        )
        keyed.append(((at, rank, e.id or 0), item))
    for m in messages:
        author = names.get(m.author_staff_id) if m.author_staff_id else None
        item = TimelineItem(
            at=m.created_at,
            kind=str(m.kind),
            author=author,
            body=m.body,
            message_id=m.id,
        )
        keyed.append(((m.created_at, 1, m.id or 0), item))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


def routing_view(session: Session, ticket: Ticket, cities: dict[str, City]) -> RoutingView | None:
    decision = ticket.routing
    if not decision:
        return None
    trace = [dict(step) for step in decision.get("trace") or [] if isinstance(step, dict)]
    rule = decision.get("rule")
    description: str | None = None
    reason: str | None = None
    decisive = trace[-1] if trace else {}
    if rule:
        description = decisive.get("description") if decisive.get("rule") == rule else None
        if description is None:
            row = session.exec(select(RoutingRule).where(RoutingRule.rule_key == rule)).first()
            description = row.description if row else None
    else:
        reason = decisive.get("text")
    key = decision.get("city")
    city = cities.get(key) if isinstance(key, str) else None
    return RoutingView(
        city_key=key if isinstance(key, str) else None,
        city_name=city.name if city else str(key or "—"),
        via=str(decision.get("via") or ""),
        rule=rule,
        rule_version=decision.get("rule_version"),
        description=" ".join(description.split()) if description else None,
        reason=reason,
        trace=trace,
        sla_hours=decision.get("sla_hours"),
        transferred=city is not None and city.id != ticket.responsible_city_id,
    )


def _offers(session: Session, ticket: Ticket) -> list[OfferView]:
    raw = [o for o in ticket.kb_offers or [] if isinstance(o, dict) and o.get("entry")]
    if not raw:
        return []
    keys = {str(o["entry"]) for o in raw}
    rows = {e.key: e for e in session.exec(select(KBEntry).where(col(KBEntry.key).in_(keys)))}
    out = []
    for offer in raw:
        key = str(offer["entry"])
        row = rows.get(key)
        score = offer.get("score")
        out.append(
            OfferView(
                key=key,
                title=row.title if row else str(offer.get("title") or key),
                score=float(score) if isinstance(score, int | float) else None,
                decision=offer.get("decision"),
                known=row is not None,
            )
        )
    return out


def load_page(session: Session, actor: Actor, ident: int | str) -> TicketPage:
    """Everything the ticket page shows; NotFound when the actor may not see the ticket."""
    ticket = svc.get_ticket(session, actor, ident)
    messages = svc.list_messages(session, actor, ticket.id or 0)
    events = svc.list_events(session, actor, ticket.id or 0)
    cities = {c.key: c for c in session.exec(select(City)).all()}
    by_id = {c.id: c for c in cities.values()}
    staff_ids = {m.author_staff_id for m in messages} | {e.actor_staff_id for e in events}
    staff_ids.add(ticket.assignee_id)
    wanted = {i for i in staff_ids if i is not None}
    users = (
        {u.id: u for u in session.exec(select(StaffUser).where(col(StaffUser.id).in_(wanted)))}
        if wanted
        else {}
    )
    names = {i: u.display_name for i, u in users.items() if i is not None}
    # Events name assignees by user name; show display names.
    usernames = {
        str(v)
        for e in events
        for part in (e.before or {}, e.after or {})
        for k, v in part.items()
        if k == "assignee" and v
    }
    user_names = (
        {
            u.username: u.display_name
            for u in session.exec(select(StaffUser).where(col(StaffUser.username).in_(usernames)))
        }
        if usernames
        else {}
    )
    colleagues = list(
        session.exec(
            select(StaffUser)
            .where(
                StaffUser.city_id == ticket.responsible_city_id,
                col(StaffUser.active).is_(True),
            )
            .order_by(col(StaffUser.display_name))
        ).all()
    )
    merged = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    requester = session.get(Requester, ticket.requester_id) if ticket.requester_id else None
    now = utcnow()
    done = ticket.resolved_at or ticket.closed_at
    return TicketPage(
        ticket=ticket,
        responsible=by_id[ticket.responsible_city_id],
        origin=by_id.get(ticket.origin_city_id) if ticket.origin_city_id else None,
        service=session.get(Service, ticket.service_id) if ticket.service_id else None,
        assignee=users.get(ticket.assignee_id) if ticket.assignee_id else None,
        merged_into=merged.reference if merged else None,
        requester_name=requester.name if requester and not requester.anonymised_at else None,
        delivery=delivery_channel(session, ticket),
        timeline=build_timeline(messages, events, ticket, names),
        routing=routing_view(session, ticket, cities),
        offers=_offers(session, ticket),
        colleagues=colleagues,
        transfer_cities=sorted(
            (c for c in cities.values() if c.active and c.id != ticket.responsible_city_id),
            key=lambda c: c.name,
        ),
        allowed_status=sorted(
            svc.TRANSITIONS[TicketStatus(ticket.status)], key=lambda s: list(TicketStatus).index(s)
        ),
        first_response=_due(ticket.first_response_due, ticket.first_responded_at, now),
        resolution=_due(ticket.resolution_due, done, now),
        city_names={k: c.name for k, c in cities.items()},
        user_names=user_names,
        can_edit_kb=can_edit_entry(actor, ticket.responsible_city_id),
    )


def ticket_question(session: Session, ticket: Ticket) -> str:
    """What the requester asked: the subject and their first message."""
    first = session.exec(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.kind == MessageKind.citizen)
        .order_by(col(Message.id))
    ).first()
    return f"{ticket.subject}\n{first.body}" if first else ticket.subject


def kb_suggestions(
    session: Session, actor: Actor, cache: asking.MatcherCache, ticket: Ticket, *, limit: int = 3
) -> list[Suggestion]:
    """The KB entries that best fit the ticket's question, for the responsible city and the
    ticket's audience (an internal ticket also sees internal entries)."""
    city = session.get(City, ticket.responsible_city_id)
    found = asking.search(
        session,
        actor,
        cache,
        query=ticket_question(session, ticket)[:2000],
        city=city.key if city else None,
        audience=Audience(ticket.audience),
        limit=limit,
    )
    return [Suggestion(e.id, e.title, e.answer, score) for e, score in found[:limit]]


def insertable_answer(session: Session, actor: Actor, ticket: Ticket, key: str) -> str | None:
    """The answer of a KB entry for the reply box (no-JS "insert"), if the actor may use it
    for this ticket: published, shared or of the responsible city, fitting the audience."""
    try:
        entry = asking.get_entry(session, actor, key)
    except NotFound:
        return None
    if entry.status != KBStatus.published:
        return None
    if entry.city_id is not None and entry.city_id != ticket.responsible_city_id:
        return None
    if ticket.audience == Audience.external and entry.audience != Audience.external:
        return None
    return entry.answer


# --- "save this answer as a KB draft" ------------------------------------------------------------


def _unique_key(session: Session, base: str) -> str:
    base = base[:100].rstrip("-") or "entwurf"
    taken = set(session.exec(select(KBEntry.key).where(col(KBEntry.key).startswith(base))).all())
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def save_reply_as_kb_draft(
    session: Session, actor: Actor, ident: int | str, *, message_id: int
) -> KBEntry:
    """A staff reply of the ticket becomes a *draft* KB entry of the responsible city: title and
    question variant are the ticket's subject, the answer is the reply (personal data such as
    e-mail addresses and phone numbers masked). Drafts are never shown to citizens; a KB editor
    reviews and publishes them, so every staff member who may see the ticket may propose one."""
    ticket = svc.get_ticket(session, actor, ident)
    message = session.get(Message, message_id)
    if message is None or message.ticket_id != ticket.id or message.kind != MessageKind.reply:
        raise InvalidInput(
            "Nur eine Antwort dieses Tickets kann als Entwurf gespeichert werden.",
            code="not_a_reply",
            field="message_id",
        )
    subject = " ".join(ticket.subject.split())
    entry = KBEntry(
        key=_unique_key(session, slugify(subject, 100)),
        title=subject[:300],
        questions=[asking.redact(subject)[:500]],
        answer=asking.redact(message.body),
        service_id=ticket.service_id,
        city_id=ticket.responsible_city_id,
        audience=Audience(ticket.audience),
        status=KBStatus.draft,
    )
    session.add(entry)
    session.flush()
    bump_kb_generation(session)
    svc.log_event(session, ticket, actor, "kb_draft", {"entry": entry.key})
    session.flush()
    return entry
