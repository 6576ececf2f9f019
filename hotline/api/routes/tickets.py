"""Ticket endpoints: intake, queue, thread, status, assignment, transfer and merge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hotline.api.deps import ActorDep, DatabaseDep, RouterCacheDep, SettingsDep
from hotline.api.presenters import events_out, messages_out, ticket_out, tickets_out
from hotline.api.ratelimit import RATE_LIMITED, limit_ticket_creation
from hotline.db import Database
from hotline.models import Audience, Channel, Message, MessageKind, Ticket, TicketStatus
from hotline.schemas import (
    AssignIn,
    ErrorOut,
    EventOut,
    MergeIn,
    MessageCreate,
    MessageOut,
    TicketCreate,
    TicketOut,
    TicketPage,
    TransferIn,
    TransitionIn,
)
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.settings import Settings

router = APIRouter(prefix="/tickets", tags=["tickets"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or bad token"},
    404: {"model": ErrorOut, "description": "No such ticket (or not visible with this token)"},
    409: {"model": ErrorOut, "description": "Stale version, illegal transition or closed ticket"},
    413: {"model": ErrorOut, "description": "Body too large"},
    422: {"model": ErrorOut, "description": "Invalid input (unknown city/service, bad fields)"},
}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes retries safe: the same key returns the first result.",
    ),
]
TicketIdent = Annotated[str, "ticket id or reference"]


def _sla(settings: Settings) -> svc.SLAPolicy:
    return svc.SLAPolicy(settings.sla_first_response_hours, settings.sla_resolution_hours)


def run_idempotent(
    db: Database,
    actor: Actor,
    key: str | None,
    *,
    operation: str,
    payload_hash: str,
    run: Callable[[Session], tuple[int, BaseModel]],
    replay: Callable[[Session, int], BaseModel],
) -> BaseModel | JSONResponse:
    """Run a creating write once per Idempotency-Key; a retry gets the first result again."""
    # Two attempts: on PostgreSQL a concurrent request with the same key can win the race and
    # our insert of the key then fails; the second attempt finds and replays its result.
    for attempt in range(2):
        try:
            with db.write() as session:
                if key:
                    found = svc.find_idempotent(
                        session, actor, key, operation=operation, payload_hash=payload_hash
                    )
                    if found is not None:
                        body = replay(session, found.resource_id).model_dump(mode="json")
                        return JSONResponse(
                            body,
                            status_code=found.status_code,
                            headers={"Idempotent-Replayed": "true"},
                        )
                resource_id, out = run(session)
                if key:
                    svc.remember_idempotent(
                        session,
                        actor,
                        key,
                        operation=operation,
                        payload_hash=payload_hash,
                        resource_id=resource_id,
                        status_code=201,
                    )
                return out
        except IntegrityError:
            if attempt or not key:
                raise
    raise AssertionError("unreachable")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketOut,
    responses={**ERRORS, **RATE_LIMITED},
    dependencies=[Depends(limit_ticket_creation)],
)
def create_ticket(
    data: TicketCreate,
    actor: ActorDep,
    db: DatabaseDep,
    settings: SettingsDep,
    router_cache: RouterCacheDep,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | JSONResponse:
    """Open a ticket; it is routed to the responsible city at once."""

    def run(session: Session) -> tuple[int, BaseModel]:
        ticket = svc.create_ticket(
            session,
            actor,
            data,
            default_city=settings.default_city,
            sla=_sla(settings),
            router_cache=router_cache,
        )
        return ticket.id or 0, ticket_out(session, ticket)

    def replay(session: Session, ticket_id: int) -> BaseModel:
        return ticket_out(session, session.get_one(Ticket, ticket_id))

    return run_idempotent(
        db,
        actor,
        idempotency_key,
        operation="create_ticket",
        payload_hash=svc.request_hash(data.model_dump(mode="json")),
        run=run,
        replay=replay,
    )


@router.get("", response_model=TicketPage, responses=ERRORS)
def list_tickets(
    actor: ActorDep,
    db: DatabaseDep,
    status_: Annotated[list[TicketStatus] | None, Query(alias="status")] = None,
    city: Annotated[str | None, Query(max_length=120, description="Responsible city key")] = None,
    origin_city: Annotated[str | None, Query(max_length=120)] = None,
    service: Annotated[
        str | None, Query(max_length=120, description="Service key or LeiKa key")
    ] = None,
    audience: Audience | None = None,
    channel: Channel | None = None,
    assignee: Annotated[
        str | None, Query(max_length=80, description="User name, or 'none'")
    ] = None,
    text: Annotated[
        str | None, Query(max_length=200, description="Search subjects and messages")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TicketPage:
    """The tickets this token may see, newest first; follow `next_cursor` for the next page."""
    flt = svc.TicketFilter(
        status=status_ or (),
        city=city,
        origin_city=origin_city,
        service=service,
        audience=audience.value if audience else None,
        channel=channel.value if channel else None,
        assignee=assignee,
        text=text,
        limit=limit,
        cursor=cursor,
    )
    with db.read() as session:
        rows, next_cursor = svc.list_tickets(session, actor, flt)
        return TicketPage(items=tickets_out(session, rows), next_cursor=next_cursor)


@router.get("/{ticket_id}", response_model=TicketOut, responses=ERRORS)
def get_ticket(ticket_id: TicketIdent, actor: ActorDep, db: DatabaseDep) -> TicketOut:
    """One ticket by id or reference (HL-2026-000123)."""
    with db.read() as session:
        return ticket_out(session, svc.get_ticket(session, actor, ticket_id))


@router.get("/{ticket_id}/messages", response_model=list[MessageOut], responses=ERRORS)
def list_messages(ticket_id: TicketIdent, actor: ActorDep, db: DatabaseDep) -> list[MessageOut]:
    """The thread: requester, bot, staff replies, internal notes and system messages."""
    with db.read() as session:
        return messages_out(session, svc.list_messages(session, actor, ticket_id))


@router.get("/{ticket_id}/events", response_model=list[EventOut], responses=ERRORS)
def list_events(ticket_id: TicketIdent, actor: ActorDep, db: DatabaseDep) -> list[EventOut]:
    """The audit trail of the ticket, oldest first."""
    with db.read() as session:
        return events_out(svc.list_events(session, actor, ticket_id))


@router.post(
    "/{ticket_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
    responses=ERRORS,
)
def add_message(
    ticket_id: TicketIdent,
    data: MessageCreate,
    actor: ActorDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | JSONResponse:
    """Add a public reply (delivered to the requester), an internal note or a requester message."""

    def run(session: Session) -> tuple[int, BaseModel]:
        _, message = svc.add_message(
            session, actor, ticket_id, kind=MessageKind(data.kind), body=data.body
        )
        return message.id or 0, messages_out(session, [message])[0]

    def replay(session: Session, message_id: int) -> BaseModel:
        return messages_out(session, [session.get_one(Message, message_id)])[0]

    return run_idempotent(
        db,
        actor,
        idempotency_key,
        operation="add_message",
        payload_hash=svc.request_hash({"ticket": ticket_id, **data.model_dump(mode="json")}),
        run=run,
        replay=replay,
    )


def _change(db: Database, fn: Callable[[Session], Ticket]) -> TicketOut:
    with db.write() as session:
        return ticket_out(session, fn(session))


@router.post("/{ticket_id}/transitions", response_model=TicketOut, responses=ERRORS)
def transition(
    ticket_id: TicketIdent, data: TransitionIn, actor: ActorDep, db: DatabaseDep
) -> TicketOut:
    """Change the status; `version` must be the ticket's current version (else 409)."""
    return _change(
        db, lambda s: svc.change_status(s, actor, ticket_id, to=data.to, version=data.version)
    )


@router.post("/{ticket_id}/assign", response_model=TicketOut, responses=ERRORS)
def assign(ticket_id: TicketIdent, data: AssignIn, actor: ActorDep, db: DatabaseDep) -> TicketOut:
    """Assign to a staff member of the responsible city; `assignee: null` unassigns."""
    return _change(
        db,
        lambda s: svc.assign_ticket(
            s, actor, ticket_id, assignee=data.assignee, version=data.version
        ),
    )


@router.post("/{ticket_id}/transfer", response_model=TicketOut, responses=ERRORS)
def transfer(
    ticket_id: TicketIdent, data: TransferIn, actor: ActorDep, db: DatabaseDep
) -> TicketOut:
    """Hand over to another city with a reason; the ticket leaves this city's queue."""
    return _change(
        db,
        lambda s: svc.transfer_ticket(
            s, actor, ticket_id, to_city=data.to_city, reason=data.reason, version=data.version
        ),
    )


@router.post("/{ticket_id}/merge", response_model=TicketOut, responses=ERRORS)
def merge(ticket_id: TicketIdent, data: MergeIn, actor: ActorDep, db: DatabaseDep) -> TicketOut:
    """Close this ticket as a duplicate of `into`; returns the surviving ticket."""

    def run(session: Session) -> Ticket:
        _, target = svc.merge_ticket(
            session, actor, ticket_id, into=data.into, version=data.version
        )
        return target

    return _change(db, run)
