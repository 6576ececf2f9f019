"""API input and output models: validated on the way in, stable shapes on the way out."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from hotline.models import Audience, Channel, Priority, TicketStatus

# Control characters other than tab and newlines never belong in a message (PostgreSQL refuses
# NUL outright); zero-width and bidi characters are kept, they are legitimate in real text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (e.g. NUL)")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only white space")
    return value


Text = Annotated[str, AfterValidator(_no_control)]
Line = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(_no_control),
]
Body = Annotated[
    str,
    Field(min_length=1, max_length=20_000),
    AfterValidator(_no_control),
    AfterValidator(_not_blank),
]
Key = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$"
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequesterIn(_In):
    name: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, max_length=200),
            AfterValidator(_no_control),
        ]
        | None
    ) = None
    email: EmailStr | None = None
    telegram_chat_id: Annotated[str, StringConstraints(pattern=r"^-?\d{1,20}$")] | int | None = None
    web_session: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")] | None = None
    language: Literal["de", "en"] | None = None


class KBOfferIn(_In):
    entry: Key
    title: Line | None = None
    score: float = Field(ge=0, le=100)
    decision: Literal["answer", "suggest", "handover"] | None = None


class TranscriptTurn(_In):
    role: Literal["citizen", "bot"]
    text: Annotated[str, Field(min_length=1, max_length=4_000), AfterValidator(_no_control)]


class TicketCreate(_In):
    subject: Line
    body: Body
    audience: Audience = Audience.external
    channel: Channel = Channel.api
    origin_city: Key | None = None
    service: Key | None = None
    topic: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
        | None
    ) = None
    priority: Priority = Priority.normal
    requester: RequesterIn | None = None
    kb_offers: list[KBOfferIn] | None = Field(default=None, max_length=10)
    transcript: list[TranscriptTurn] | None = Field(
        default=None, max_length=100, description="The bot conversation before the handover."
    )
    kb_ask_id: int | None = Field(
        default=None,
        ge=1,
        le=2_000_000_000,
        description="The bot's ask (`POST /kb/ask`) that ended in this handover; channel "
        "clients only. Links the question to the ticket for the KPIs.",
    )


class MessageCreate(_In):
    kind: Literal["reply", "note", "citizen"]
    body: Body


class TransitionIn(_In):
    to: TicketStatus
    version: int = Field(ge=1)


class AssignIn(_In):
    assignee: Key | None = Field(
        default=None,
        description="User name of a staff member of the responsible city; null unassigns.",
    )
    version: int | None = Field(
        default=None, ge=1, description="When given, must be the current version."
    )


class TransferIn(_In):
    to_city: Key
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
        AfterValidator(_no_control),
    ]
    version: int = Field(ge=1)


class MergeIn(_In):
    into: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)] = (
        Field(description="Id or reference of the ticket that absorbs this one.")
    )
    version: int = Field(ge=1)


# --- output -------------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    code: str
    detail: str
    errors: list[dict[str, Any]] | None = None


class RateLimitedOut(ErrorOut):
    retry_after: int = Field(description="Seconds until this client may try again.")


class RequesterOut(BaseModel):
    name: str | None
    email: str | None
    telegram_chat_id: str | None
    web_session: str | None


class SLAOut(BaseModel):
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_responded_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool


class TicketOut(BaseModel):
    id: int
    reference: str
    subject: str
    status: TicketStatus
    priority: Priority
    audience: Audience
    channel: Channel
    origin_city: str | None
    service: str | None
    topic: str | None
    responsible_city: str
    assignee: str | None
    requester: RequesterOut | None
    routing: dict[str, Any] | None
    kb_offers: list[dict[str, Any]] | None
    merged_into: str | None
    rating: int | None
    sla: SLAOut
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: str | None


class MessageOut(BaseModel):
    id: int
    ticket_id: int
    kind: str
    body: str
    author: str | None
    created_at: datetime


class EventOut(BaseModel):
    id: int
    kind: str
    actor: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class CityOut(BaseModel):
    key: str
    name: str
    ags: str | None
    state: str | None
    active: bool
    timezone: str
    service_hours: dict[str, Any] | None


class ServiceOut(BaseModel):
    key: str
    name: str
    leika_key: str | None
    ozg_id: str | None
    topic: str | None
    owner_city: str | None


class ServicePage(BaseModel):
    items: list[ServiceOut]
    next_cursor: str | None


# --- knowledge base ------------------------------------------------------------------------------


Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000),
    AfterValidator(_no_control),
]


class AskIn(_In):
    question: Question
    city: Key | None = Field(default=None, description="The asker's city; null: shared only.")
    audience: Audience = Audience.external
    channel: Channel = Channel.api
    language: Literal["de", "en"] | None = None
    client: (
        Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_no_control)]
        | None
    ) = Field(
        default=None,
        description="The asker's chat or session id; only a keyed hash is stored, so the "
        "person's log can be deleted on request.",
    )


class EntryOut(BaseModel):
    id: str
    title: str
    service: str | None
    city: str | None
    audience: str
    answer: str


class OfferOut(BaseModel):
    id: str
    title: str
    score: float


class AskOut(BaseModel):
    ask_id: int
    decision: Literal["answer", "suggest", "handover"]
    score: float
    entry: EntryOut | None = Field(description="The best-ranked entry whatever the decision.")
    alternatives: list[OfferOut]
    suggestions: list[OfferOut] = Field(description="Choices to offer (decision suggest only).")
    service: str | None = Field(description="The service the question is about, when known.")
    confidence: float | None = Field(
        default=None,
        description="Estimated probability (0–1) that `entry` is right; the learned decision "
        "answers from a fixed bar (docs/matching.md). Null when the hand rule decides.",
    )
    reason: (
        Literal[
            "low_score",
            "close_second",
            "unknown_words",
            "single_word",
            "other_body",
            "low_confidence",
        ]
        | None
    ) = Field(
        default=None,
        description="Why `entry` is no confident answer; null for an answer or no entry.",
    )
    other_bodies: list[str] = Field(
        default_factory=list,
        description="Words of the question that name another body (bank, tax office, health "
        "insurance …) which `entry` never names, as the matcher's list writes them: most "
        "likely the asker must turn there. Reason `other_body` when they held an answer back.",
    )


class SearchHitOut(BaseModel):
    entry: EntryOut
    score: float


class FeedbackIn(_In):
    helped: bool


class ChoiceIn(_In):
    entry: Key


class KBLinkIn(_In):
    entry: Key
    question: Line | None = Field(
        default=None, description="The question the entry answers; default: the ticket subject."
    )


class CandidateOut(BaseModel):
    id: int
    entry: str
    entry_title: str
    entry_city: str | None
    question: str
    source: str
    status: str
    ticket: str | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class AcceptIn(_In):
    question: Line | None = Field(default=None, description="Reworded question (optional).")


class GapOut(BaseModel):
    size: int
    question: str
    examples: list[str]
    cities: dict[str, int]
    channels: dict[str, int]
    handed_over: int
    not_helped: int
    best_entry: str | None
    first_seen: datetime
    last_seen: datetime


class ServiceRefOut(BaseModel):
    key: str
    name: str


# --- citizen channels ---------------------------------------------------------------------------


class IdentityIn(_In):
    telegram_chat_id: Annotated[str, StringConstraints(pattern=r"^-?\d{1,20}$")] | int | None = None
    web_session: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")] | None = None
    email: EmailStr | None = None


class CitizenTicketOut(BaseModel):
    reference: str
    subject: str
    status: TicketStatus
    responsible_city: str
    responsible_city_name: str
    created_at: datetime
    updated_at: datetime
    rating: int | None


class ErasureOut(BaseModel):
    tickets_anonymised: int
    messages_erased: int
    attachments_deleted: int
    asks_deleted: int
    chat_sessions_deleted: int


class RatingIn(_In):
    rating: int = Field(ge=1, le=5)


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    created_at: datetime
