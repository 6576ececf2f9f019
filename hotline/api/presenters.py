"""Turn database rows into the API's output models, loading related keys in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlmodel import Session, col, select

from hotline.db import utcnow
from hotline.models import City, Message, Requester, Service, StaffUser, Ticket, TicketEvent
from hotline.schemas import (
    CityOut,
    EventOut,
    MessageOut,
    RequesterOut,
    ServiceOut,
    SLAOut,
    TicketOut,
)

T = TypeVar("T")


def _by_id(session: Session, model: type[T], ids: set[int | None]) -> dict[int, T]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(model).where(col(model.id).in_(wanted))).all()  # type: ignore[attr-defined]
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


def tickets_out(session: Session, tickets: Sequence[Ticket]) -> list[TicketOut]:
    cities = {c.id: c for c in session.exec(select(City)).all()}
    services = _by_id(session, Service, {t.service_id for t in tickets})
    users = _by_id(session, StaffUser, {t.assignee_id for t in tickets})
    requesters = _by_id(session, Requester, {t.requester_id for t in tickets})
    merged = _by_id(session, Ticket, {t.merged_into_id for t in tickets})
    now = utcnow()
    out: list[TicketOut] = []
    for t in tickets:
        req = requesters.get(t.requester_id) if t.requester_id else None
        origin = cities.get(t.origin_city_id) if t.origin_city_id else None
        service = services.get(t.service_id) if t.service_id else None
        assignee = users.get(t.assignee_id) if t.assignee_id else None
        target = merged.get(t.merged_into_id) if t.merged_into_id else None
        open_ = t.status not in ("resolved", "closed")
        out.append(
            TicketOut(
                id=t.id or 0,
                reference=t.reference,
                subject=t.subject,
                status=t.status,
                priority=t.priority,
                audience=t.audience,
                channel=t.channel,
                origin_city=origin.key if origin else None,
                service=service.key if service else None,
                topic=t.topic,
                responsible_city=cities[t.responsible_city_id].key,
                assignee=assignee.username if assignee else None,
                requester=RequesterOut(
                    name=req.name,
                    email=req.email,
                    telegram_chat_id=req.telegram_chat_id,
                    web_session=req.web_session,
                )
                if req
                else None,
                routing=t.routing,
                kb_offers=t.kb_offers,
                merged_into=target.reference if target else None,
                rating=t.rating,
                sla=SLAOut(
                    first_response_due=t.first_response_due,
                    resolution_due=t.resolution_due,
                    first_responded_at=t.first_responded_at,
                    first_response_breached=bool(
                        t.first_response_due
                        and (t.first_responded_at or now) > t.first_response_due
                    ),
                    resolution_breached=bool(t.resolution_due and open_ and now > t.resolution_due),
                ),
                resolved_at=t.resolved_at,
                closed_at=t.closed_at,
                created_at=t.created_at,
                updated_at=t.updated_at,
                version=t.version,
            )
        )
    return out


def ticket_out(session: Session, ticket: Ticket) -> TicketOut:
    return tickets_out(session, [ticket])[0]


def messages_out(session: Session, messages: Sequence[Message]) -> list[MessageOut]:
    users = _by_id(session, StaffUser, {m.author_staff_id for m in messages})
    out = []
    for m in messages:
        user = users.get(m.author_staff_id) if m.author_staff_id else None
        author = user.display_name if user else ("Bot" if m.kind == "bot" else None)
        out.append(
            MessageOut(
                id=m.id or 0,
                ticket_id=m.ticket_id,
                kind=m.kind,
                body=m.body,
                author=author,
                created_at=m.created_at,
            )
        )
    return out


def events_out(events: Sequence[TicketEvent]) -> list[EventOut]:
    return [
        EventOut(
            id=e.id or 0,
            kind=e.kind,
            actor=e.actor,
            before=e.before,
            after=e.after,
            created_at=e.created_at,
        )
        for e in events
    ]


def city_out(city: City) -> CityOut:
    return CityOut(
        key=city.key,
        name=city.name,
        ags=city.ags,
        state=city.state,
        active=city.active,
        timezone=city.timezone,
        service_hours=city.service_hours,
    )


def services_out(session: Session, services: Sequence[Service]) -> list[ServiceOut]:
    cities = {c.id: c.key for c in session.exec(select(City)).all()}
    return [
        ServiceOut(
            key=s.key,
            name=s.name,
            leika_key=s.leika_key,
            ozg_id=s.ozg_id,
            topic=s.topic,
            owner_city=cities.get(s.owner_city_id) if s.owner_city_id else None,
        )
        for s in services
    ]
