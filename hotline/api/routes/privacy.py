"""Endpoints for a requester's data rights (DSGVO Art. 15 and 17): export and erasure.

For the network's operators only (a network token); a city's token gets 403. The requester
is chosen by exactly one of `telegram` (chat id), `web` (web-chat session id) or `email`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.deps import ActorDep, DatabaseDep, SettingsDep
from hotline.schemas import ErrorOut
from hotline.services import privacy as svc

router = APIRouter(tags=["data protection"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or bad token"},
    403: {"model": ErrorOut, "description": "Needs a network token"},
    404: {"model": ErrorOut, "description": "No data held for this requester"},
    422: {"model": ErrorOut, "description": "Not exactly one valid selector"},
}

TelegramQ = Annotated[str | None, Query(max_length=24, description="Telegram chat id")]
WebQ = Annotated[str | None, Query(max_length=64, description="Web-chat session id")]
EmailQ = Annotated[str | None, Query(max_length=320, description="E-mail address")]


class SelectorIn(BaseModel):
    """Exactly one of the three."""

    model_config = ConfigDict(extra="forbid")

    telegram: str | None = Field(default=None, max_length=24)
    web: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)


# --- the export document (built by services/privacy.export_requester) ------------------------


class RequesterRecordOut(BaseModel):
    name: str | None
    email: str | None
    telegram_chat_id: str | None
    web_session: str | None
    language: str | None
    created_at: datetime | None
    anonymised_at: datetime | None


class ExportMessageOut(BaseModel):
    kind: str
    author: str = Field(description="requester, staff, staff (internal note), bot or system")
    body: str
    created_at: datetime | None


class ExportAttachmentOut(BaseModel):
    filename: str
    content_type: str
    size: int
    created_at: datetime | None


class ExportEventOut(BaseModel):
    kind: str
    at: datetime | None


class ExportTicketOut(BaseModel):
    reference: str
    subject: str
    status: str
    channel: str
    audience: str
    responsible_city: str | None
    origin_city: str | None
    service: str | None
    topic: str | None
    rating: int | None
    kb_offers: list[dict[str, Any]]
    created_at: datetime | None
    updated_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    messages: list[ExportMessageOut]
    attachments: list[ExportAttachmentOut]
    history: list[ExportEventOut]


class ExportQuestionOut(BaseModel):
    question: str
    city: str | None
    channel: str
    decision: str
    entry: str | None
    helped: bool | None
    created_at: datetime | None


class ExportChatOut(BaseModel):
    created_at: datetime | None
    updated_at: datetime | None
    state: dict[str, Any]


class RequesterExportOut(BaseModel):
    format: str
    exported_at: datetime
    selector: str = Field(description="telegram, web or email (the kind, not the value)")
    requesters: list[RequesterRecordOut]
    tickets: list[ExportTicketOut]
    questions: list[ExportQuestionOut]
    chat_session: ExportChatOut | None


class RequesterErasureOut(BaseModel):
    requesters_erased: int
    tickets_anonymised: int
    messages_erased: int
    attachments_deleted: int
    asks_deleted: int
    chat_sessions_deleted: int


@router.get("/requesters/export", response_model=RequesterExportOut, responses=ERRORS)
def export_requester(
    actor: ActorDep,
    db: DatabaseDep,
    settings: SettingsDep,
    telegram: TelegramQ = None,
    web: WebQ = None,
    email: EmailQ = None,
) -> dict[str, Any]:
    """All data held about one requester as JSON (DSGVO Art. 15); 404 when there is none.
    Each exported ticket records a `privacy_export` event."""
    svc.require_network_operator(actor)
    who = svc.selector(telegram=telegram, web=web, email=email)
    with db.write() as session:
        return svc.export_requester(session, actor, who, secret=settings.secret_key)


@router.post("/requesters/erase", response_model=RequesterErasureOut, responses=ERRORS)
def erase_requester(
    data: SelectorIn, actor: ActorDep, db: DatabaseDep, settings: SettingsDep
) -> RequesterErasureOut:
    """Delete one requester's data (DSGVO Art. 17): tickets anonymised, questions and the
    web-chat session deleted; counts of what was done (all 0 when nothing was left)."""
    svc.require_network_operator(actor)
    who = svc.selector(telegram=data.telegram, web=data.web, email=data.email)
    with db.write() as session:
        result = svc.erase_requester(session, actor, who, secret=settings.secret_key)
    return RequesterErasureOut(
        requesters_erased=result.requesters_erased,
        tickets_anonymised=result.tickets_anonymised,
        messages_erased=result.messages_erased,
        attachments_deleted=result.attachments_deleted,
        asks_deleted=result.asks_deleted,
        chat_sessions_deleted=result.chat_sessions_deleted,
    )
