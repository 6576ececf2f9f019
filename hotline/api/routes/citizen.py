"""Endpoints for the citizen channels: own tickets, rating, attachments, erasure, postcodes."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session

from hotline.api.deps import ActorDep, DatabaseDep, SettingsDep
from hotline.api.presenters import city_out, ticket_out
from hotline.api.routes.tickets import IdempotencyKey, run_idempotent
from hotline.errors import HotlineError
from hotline.models import Attachment, City, Ticket
from hotline.schemas import (
    AttachmentOut,
    CitizenTicketOut,
    CityOut,
    ErasureOut,
    ErrorOut,
    IdentityIn,
    RatingIn,
    TicketOut,
)
from hotline.services import citizen as svc
from hotline.services.tickets import request_hash

router = APIRouter(tags=["citizen channels"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or bad token"},
    403: {"model": ErrorOut, "description": "Needs a network token (the hotline's channels)"},
    404: {"model": ErrorOut, "description": "No such ticket or postcode"},
    409: {"model": ErrorOut, "description": "Ticket not resolved yet, or closed"},
    413: {"model": ErrorOut, "description": "File too large"},
    422: {"model": ErrorOut, "description": "Invalid input"},
}


class AttachmentTooLarge(HotlineError):
    status_code = 413
    code = "attachment_too_large"


def _identity(data: IdentityIn) -> svc.Identity:
    return svc.Identity(
        telegram_chat_id=str(data.telegram_chat_id) if data.telegram_chat_id is not None else None,
        web_session=data.web_session,
        email=str(data.email) if data.email else None,
    )


def _citizen_ticket(session: Session, ticket: Ticket) -> CitizenTicketOut:
    city = session.get_one(City, ticket.responsible_city_id)
    return CitizenTicketOut(
        reference=ticket.reference,
        subject=ticket.subject,
        status=ticket.status,
        responsible_city=city.key,
        responsible_city_name=city.name,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        rating=ticket.rating,
    )


@router.get("/citizen/tickets", response_model=list[CitizenTicketOut], responses=ERRORS)
def citizen_tickets(
    actor: ActorDep,
    db: DatabaseDep,
    telegram_chat_id: Annotated[str | None, Query(pattern=r"^-?\d{1,20}$")] = None,
    web_session: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{8,64}$")] = None,
) -> list[CitizenTicketOut]:
    """A citizen's own tickets, newest first (for the bot's /status)."""
    who = svc.Identity(telegram_chat_id=telegram_chat_id, web_session=web_session)
    with db.read() as session:
        return [_citizen_ticket(session, t) for t in svc.citizen_tickets(session, actor, who)]


@router.post("/citizen/erase", response_model=ErasureOut, responses=ERRORS)
def erase(data: IdentityIn, actor: ActorDep, db: DatabaseDep, settings: SettingsDep) -> ErasureOut:
    """Delete a person's data on request: tickets anonymised, their messages, attachments and
    question log deleted (DSGVO Art. 17)."""
    with db.write() as session:
        result = svc.erase(session, actor, _identity(data), secret=settings.secret_key)
        return ErasureOut(
            tickets_anonymised=result.tickets_anonymised,
            messages_erased=result.messages_erased,
            attachments_deleted=result.attachments_deleted,
            asks_deleted=result.asks_deleted,
            chat_sessions_deleted=result.chat_sessions_deleted,
        )


@router.post("/tickets/{ticket_id}/rating", response_model=TicketOut, responses=ERRORS)
def rate(ticket_id: str, data: RatingIn, actor: ActorDep, db: DatabaseDep) -> TicketOut:
    """The requester's 1–5 rating of a resolved ticket."""
    with db.write() as session:
        return ticket_out(session, svc.rate(session, actor, ticket_id, data.rating))


@router.post(
    "/tickets/{ticket_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentOut,
    responses=ERRORS,
)
async def add_attachment(
    ticket_id: str,
    file: UploadFile,
    actor: ActorDep,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | JSONResponse:
    """Attach a document the requester sent (up to the configured size); `Idempotency-Key`
    makes a retried upload attach it once."""
    limit = settings.chat_max_document_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise AttachmentTooLarge(f"The file is larger than {limit // 1_000_000} MB.")
    filename = file.filename or "dokument"
    content_type = file.content_type or "application/octet-stream"

    def run(session: Session) -> tuple[int, BaseModel]:
        row = svc.add_attachment(
            session, actor, ticket_id, filename=filename, content_type=content_type, data=data
        )
        return row.id or 0, _attachment_out(row)

    def replay(session: Session, attachment_id: int) -> BaseModel:
        return _attachment_out(session.get_one(Attachment, attachment_id))

    digest = hashlib.sha256(data).hexdigest()
    return await asyncio.to_thread(
        run_idempotent,
        db,
        actor,
        idempotency_key,
        operation="add_attachment",
        payload_hash=request_hash({"ticket": ticket_id, "file": filename, "sha256": digest}),
        run=run,
        replay=replay,
    )


def _attachment_out(row: Attachment) -> AttachmentOut:
    return AttachmentOut(
        id=row.id or 0,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        created_at=row.created_at,
    )


@router.get("/cities/by-postcode/{postcode}", response_model=CityOut, responses=ERRORS)
def city_by_postcode(postcode: str, _: ActorDep, db: DatabaseDep) -> CityOut:
    """The partner city serving a postcode; 404 `postcode_unknown` when none does."""
    with db.read() as session:
        return city_out(svc.city_by_postcode(session, postcode))
