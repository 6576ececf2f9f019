"""What the citizen channels need from the backend: a small Protocol and its HTTP client."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

from hotline.settings import Settings

ChannelName = Literal["telegram", "web"]
Decision = Literal["answer", "suggest", "handover"]


class BackendError(Exception):
    """The backend refused or could not be reached; `code` is the API's stable error code."""

    def __init__(self, code: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.status = status


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is writing, as the backend knows them: the channel and one identity field."""

    channel: ChannelName
    telegram_chat_id: str | None = None
    web_session: str | None = None

    def identity(self) -> dict[str, str]:
        if self.telegram_chat_id is not None:
            return {"telegram_chat_id": self.telegram_chat_id}
        if self.web_session is not None:
            return {"web_session": self.web_session}
        raise ValueError("a requester needs a telegram_chat_id or a web_session")

    def client_id(self) -> str:
        """The one identity value (chat id or web session)."""
        return next(iter(self.identity().values()))


@dataclass(frozen=True, slots=True)
class City:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class ServiceRef:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Entry:
    """A KB entry as shown to the citizen."""

    id: str
    title: str
    answer: str
    service: str | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: str
    title: str
    score: float


@dataclass(frozen=True, slots=True)
class AskResult:
    ask_id: int
    decision: Decision
    score: float
    entry: Entry | None = None
    suggestions: list[Suggestion] = field(default_factory=list)
    service: str | None = None
    # Other bodies the question names and the best entry does not ("Sparkasse", "Finanzamt").
    other_bodies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KBOffer:
    """An entry the bot offered before the handover, with its score and how it was offered."""

    entry: str
    title: str | None
    score: float
    decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["citizen", "bot"]
    text: str


@dataclass(frozen=True, slots=True)
class TicketDraft:
    subject: str
    body: str
    language: str
    origin_city: str | None = None
    service: str | None = None
    email: str | None = None
    transcript: list[Turn] = field(default_factory=list)
    kb_offers: list[KBOffer] = field(default_factory=list)
    ask_id: int | None = None  # the bot's ask that ended in the handover


@dataclass(frozen=True, slots=True)
class CreatedTicket:
    reference: str
    status: str
    responsible_city: str
    responsible_city_name: str
    first_response_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class TicketSummary:
    reference: str
    subject: str
    status: str
    responsible_city: str
    responsible_city_name: str
    rating: int | None = None


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    id: int
    filename: str
    size: int


@dataclass(frozen=True, slots=True)
class ErasureResult:
    tickets_anonymised: int
    asks_deleted: int


class Backend(Protocol):
    """The backend as the conversation sees it (HTTP for Telegram, in-process for the web chat).

    Every method raises `BackendError` on a refusal; `idempotency_key` makes a retry of the
    same incoming message return the first result instead of writing twice.
    """

    async def ask(
        self, question: str, *, city: str | None, requester: Requester, language: str
    ) -> AskResult: ...

    async def feedback(self, ask_id: int, *, helped: bool) -> None: ...

    async def choose(self, ask_id: int, entry_id: str) -> Entry: ...

    async def cities(self) -> list[City]:
        """The active cities of the network."""
        ...

    async def city_by_postcode(self, postcode: str) -> City | None: ...

    async def services(self) -> list[ServiceRef]:
        """Services that have published KB entries (for "which service is it about?")."""
        ...

    async def create_ticket(
        self, draft: TicketDraft, requester: Requester, *, idempotency_key: str | None
    ) -> CreatedTicket: ...

    async def add_message(
        self, reference: str, body: str, *, idempotency_key: str | None
    ) -> None: ...

    async def add_attachment(
        self,
        reference: str,
        filename: str,
        content: bytes,
        content_type: str,
        *,
        idempotency_key: str | None,
    ) -> AttachmentInfo: ...

    async def citizen_tickets(self, requester: Requester) -> list[TicketSummary]: ...

    async def erase(self, requester: Requester) -> ErasureResult: ...

    async def rate(self, reference: str, rating: int) -> None: ...


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _entry(data: dict[str, Any]) -> Entry:
    return Entry(
        id=_str(data["id"]),
        title=_str(data.get("title")),
        answer=_str(data.get("answer")),
        service=data.get("service"),
        city=data.get("city"),
    )


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class _NoQueryInRequestLog(logging.Filter):
    """httpx logs every request URL at INFO; a query can name a citizen (chat id, web-chat
    session), so the logged URL loses its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        return True


_REQUEST_LOG_FILTER = _NoQueryInRequestLog()


class HttpBackend:
    """The backend's HTTP API (`/api/v1`) with the bot's Bearer token."""

    # Seconds the active cities are kept before they are asked for again.
    CITY_LIST_TTL = 300.0

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._cities: dict[str, City] | None = None
        self._cities_loaded = 0.0
        request_log = logging.getLogger("httpx")
        if _REQUEST_LOG_FILTER not in request_log.filters:
            request_log.addFilter(_REQUEST_LOG_FILTER)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpBackend:
        if settings.api_token is None:
            raise ValueError(
                "HOTLINE_API_TOKEN is not set: create a network token for the bot "
                "(`hotline token create --network --name bot`) and set it."
            )
        return cls(settings.api_url, settings.api_token.get_secret_value())

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> HttpBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = await self._client.request(
                method, path, json=json, params=params, files=files, headers=headers
            )
        except httpx.HTTPError as exc:
            raise BackendError("backend_unavailable", str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            code, detail = "http_error", response.text[:500]
            try:
                body = response.json()
                if isinstance(body, dict):
                    code = str(body.get("code") or code)
                    detail = str(body.get("detail") or detail)
            except ValueError:
                pass
            if response.status_code >= 500 and code == "http_error":
                code = "backend_unavailable"
            raise BackendError(code, detail, response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def ask(
        self, question: str, *, city: str | None, requester: Requester, language: str
    ) -> AskResult:
        data = await self._request(
            "POST",
            "/kb/ask",
            json={
                "question": question,
                "city": city,
                "audience": "external",
                "channel": requester.channel,
                "language": language,
                # Stored only as a keyed hash, so /loeschen can delete this person's log.
                "client": requester.client_id(),
            },
        )
        suggestions = [
            Suggestion(id=_str(s["id"]), title=_str(s.get("title")), score=float(s["score"]))
            for s in data.get("suggestions") or []
        ]
        return AskResult(
            ask_id=int(data["ask_id"]),
            decision=data["decision"],
            score=float(data.get("score") or 0.0),
            entry=_entry(data["entry"]) if data.get("entry") else None,
            suggestions=suggestions[:3],
            service=data.get("service"),
            other_bodies=tuple(_str(b) for b in data.get("other_bodies") or [])[:5],
        )

    async def feedback(self, ask_id: int, *, helped: bool) -> None:
        await self._request("POST", f"/kb/asks/{ask_id}/feedback", json={"helped": helped})

    async def choose(self, ask_id: int, entry_id: str) -> Entry:
        return _entry(
            await self._request("POST", f"/kb/asks/{ask_id}/choice", json={"entry": entry_id})
        )

    async def _city_index(self, *, refresh: bool = False) -> dict[str, City]:
        # Reloaded every CITY_LIST_TTL seconds: a city added with `hotline city add` (or
        # deactivated) shows up in the city buttons without restarting the bot.
        stale = time.monotonic() - self._cities_loaded > self.CITY_LIST_TTL
        if self._cities is None or refresh or stale:
            rows = await self._request("GET", "/cities")
            self._cities = {
                r["key"]: City(key=r["key"], name=r["name"]) for r in rows if r.get("active", True)
            }
            self._cities_loaded = time.monotonic()
        return self._cities

    async def _city_name(self, key: str) -> str:
        cities = await self._city_index()
        if key not in cities:
            cities = await self._city_index(refresh=True)
        return cities[key].name if key in cities else key

    async def cities(self) -> list[City]:
        return list((await self._city_index()).values())

    async def city_by_postcode(self, postcode: str) -> City | None:
        try:
            data = await self._request("GET", f"/cities/by-postcode/{postcode}")
        except BackendError as exc:
            if exc.status in (404, 422):
                return None
            raise
        return City(key=data["key"], name=data["name"])

    async def services(self) -> list[ServiceRef]:
        rows = await self._request("GET", "/kb/services")
        return [ServiceRef(key=r["key"], name=r["name"]) for r in rows]

    async def create_ticket(
        self, draft: TicketDraft, requester: Requester, *, idempotency_key: str | None
    ) -> CreatedTicket:
        person: dict[str, Any] = {**requester.identity(), "language": draft.language}
        if draft.email:
            person["email"] = draft.email
        body: dict[str, Any] = {
            "subject": draft.subject,
            "body": draft.body,
            "audience": "external",
            "channel": requester.channel,
            "origin_city": draft.origin_city,
            "service": draft.service,
            "requester": person,
            "kb_offers": [
                {"entry": o.entry, "title": o.title, "score": o.score, "decision": o.decision}
                for o in draft.kb_offers[:10]
            ],
            "transcript": [{"role": turn.role, "text": turn.text} for turn in draft.transcript],
        }
        if draft.ask_id is not None:
            body["kb_ask_id"] = draft.ask_id
        data = await self._request("POST", "/tickets", json=body, idempotency_key=idempotency_key)
        city = str(data["responsible_city"])
        return CreatedTicket(
            reference=data["reference"],
            status=str(data.get("status", "new")),
            responsible_city=city,
            responsible_city_name=await self._city_name(city),
            first_response_due=_datetime((data.get("sla") or {}).get("first_response_due")),
        )

    async def add_message(self, reference: str, body: str, *, idempotency_key: str | None) -> None:
        await self._request(
            "POST",
            f"/tickets/{reference}/messages",
            json={"kind": "citizen", "body": body},
            idempotency_key=idempotency_key,
        )

    async def add_attachment(
        self,
        reference: str,
        filename: str,
        content: bytes,
        content_type: str,
        *,
        idempotency_key: str | None,
    ) -> AttachmentInfo:
        data = await self._request(
            "POST",
            f"/tickets/{reference}/attachments",
            files={"file": (filename, content, content_type)},
            idempotency_key=idempotency_key,
        )
        return AttachmentInfo(
            id=int(data["id"]), filename=_str(data["filename"]), size=int(data["size"])
        )

    async def citizen_tickets(self, requester: Requester) -> list[TicketSummary]:
        rows = await self._request("GET", "/citizen/tickets", params=requester.identity())
        return [
            TicketSummary(
                reference=r["reference"],
                subject=_str(r.get("subject")),
                status=_str(r.get("status")),
                responsible_city=_str(r.get("responsible_city")),
                responsible_city_name=_str(
                    r.get("responsible_city_name") or r.get("responsible_city")
                ),
                rating=r.get("rating"),
            )
            for r in rows
        ]

    async def erase(self, requester: Requester) -> ErasureResult:
        data = await self._request("POST", "/citizen/erase", json=requester.identity())
        return ErasureResult(
            tickets_anonymised=int(data.get("tickets_anonymised", 0)),
            asks_deleted=int(data.get("asks_deleted", 0)),
        )

    async def rate(self, reference: str, rating: int) -> None:
        await self._request("POST", f"/tickets/{reference}/rating", json={"rating": rating})
