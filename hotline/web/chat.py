"""The citizen web chat at `/`: the bot's conversation (bot.conversation) in the browser.

The browser holds only a random session id in a cookie; the conversation state and the visible
messages live in `chat_session`. The conversation talks to the API of this same process over
ASGI with a per-process random token (`HttpBackend`, exactly as the Telegram bot does over
HTTP), so both channels share one implementation and one set of checks. Staff replies arrive
through the outbox (channel "web"); the page collects them by polling `/chat/updates`.

Works without JavaScript (plain forms, full pages); with htmx the forms append the new messages
in place and the page polls for replies. No inline script (CSP-ready).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import col, select

from bot.backend import Requester
from bot.conversation import COMMANDS, Context, Conversation, Reply
from bot.delivery import UnknownPayload, render
from bot.texts import t
from hotline.db import Database, utcnow
from hotline.models import Channel, ChatSession, DeliveryStatus, OutboxDelivery
from hotline.settings import Settings

COOKIE = "hl_chat"
MAX_LOG = 150
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

router = APIRouter(include_in_schema=False)


@dataclass
class Chat:
    """One browser's conversation as stored in `chat_session.state`."""

    id: str
    conv: dict[str, Any]
    log: list[dict[str, Any]]
    lang: str
    csrf: str
    seen_nonces: list[str]
    new: bool = False

    @classmethod
    def load(cls, row: ChatSession) -> Chat:
        s = row.state or {}
        return cls(
            id=row.id,
            conv=dict(s.get("conv") or {}),
            log=list(s.get("log") or []),
            lang=str(s.get("lang") or "de"),
            csrf=str(s.get("csrf") or secrets.token_urlsafe(24)),
            seen_nonces=list(s.get("nonces") or []),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "conv": self.conv,
            "log": self.log[-MAX_LOG:],
            "lang": self.lang,
            "csrf": self.csrf,
            "nonces": self.seen_nonces[-30:],
        }

    def add(self, role: str, text: str, buttons: list[list[dict[str, str]]] | None = None) -> None:
        n = (self.log[-1]["n"] + 1) if self.log else 1
        self.log.append({"n": n, "role": role, "text": text, "buttons": buttons or []})

    def add_replies(self, replies: list[Reply]) -> None:
        for reply in replies:
            self.add(
                "bot",
                reply.text,
                [[{"label": b.label, "data": b.data} for b in row] for row in reply.buttons],
            )

    def close_buttons(self) -> list[int]:
        """Buttons answer once: clear those still open, return their message numbers."""
        closed = []
        for item in self.log:
            if item.get("buttons"):
                item["buttons"] = []
                closed.append(item["n"])
        return closed


# --- storage (sync, run in a thread) -----------------------------------------------------------


def _load(db: Database, chat_id: str | None) -> Chat | None:
    if not chat_id:
        return None
    with db.read() as session:
        row = session.get(ChatSession, chat_id)
        return Chat.load(row) if row is not None else None


def _save(db: Database, chat: Chat) -> None:
    with db.write() as session:
        row = session.get(ChatSession, chat.id)
        if row is None:
            if not chat.new:
                return  # erased meanwhile (/loeschen): do not bring it back
            row = ChatSession(id=chat.id)
        row.state = chat.dump()
        row.updated_at = utcnow()
        session.add(row)


def _collect(db: Database, chat_id: str) -> list[dict[str, Any]]:
    """Take the pending web deliveries for this chat (in order) and mark them delivered."""
    with db.write() as session:
        rows = session.exec(
            select(OutboxDelivery)
            .where(
                OutboxDelivery.channel == Channel.web,
                OutboxDelivery.recipient == chat_id,
                OutboxDelivery.status == DeliveryStatus.pending,
            )
            .order_by(col(OutboxDelivery.id))
            .with_for_update()
        ).all()
        payloads = []
        now = utcnow()
        for row in rows:
            payloads.append(dict(row.payload))
            row.status = DeliveryStatus.sent
            row.sent_at = now
            row.attempts += 1
            session.add(row)
        return payloads


# --- the conversation over the in-process API ----------------------------------------------------


def _conversation(request: Request) -> Conversation:
    from hotline.app import in_process_backend

    app = request.app
    conversation: Conversation | None = getattr(app.state, "webchat_conversation", None)
    if conversation is None:
        settings: Settings = app.state.settings
        conversation = Conversation.from_settings(in_process_backend(app), settings)
        app.state.webchat_conversation = conversation
    return conversation


def _context(chat: Chat, nonce: str | None) -> Context:
    # The form's nonce makes a double submit idempotent at the API; hashed with the session so
    # that one browser's nonce can never touch another conversation's requests.
    key = None
    if nonce:
        key = "web-" + hashlib.sha256(f"{chat.id}:{nonce}".encode()).hexdigest()[:40]
    return Context(
        requester=Requester(channel="web", web_session=chat.id),
        language="en" if chat.lang == "en" else "de",
        idempotency_key=key,
    )


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _page(request: Request, chat: Chat, status_code: int = 200) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(
        request,
        "chat.html",
        {"chat": chat, "lang": chat.lang, "t": t, "nonce": secrets.token_urlsafe(12)},
        status_code=status_code,
    )
    _set_cookie(request, response, chat.id)
    return response


def _fragment(request: Request, chat: Chat, start: int, closed: list[int]) -> HTMLResponse:
    items = [item for item in chat.log if item["n"] >= start]
    return TEMPLATES.TemplateResponse(
        request,
        "_messages.html",
        {
            "items": items,
            "closed": closed,
            "chat": chat,
            "lang": chat.lang,
            "t": t,
            "nonce": secrets.token_urlsafe(12),
            "oob": True,
        },
    )


def _set_cookie(request: Request, response: Response, chat_id: str) -> None:
    response.set_cookie(
        COOKIE,
        chat_id,
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


async def _new_chat(request: Request, lang: str) -> Chat:
    chat = Chat(
        id=secrets.token_urlsafe(24),
        conv={},
        log=[],
        lang=lang,
        csrf=secrets.token_urlsafe(24),
        seen_nonces=[],
        new=True,
    )
    replies = await _conversation(request).start(chat.conv, _context(chat, None))
    chat.add_replies(replies)
    await asyncio.to_thread(_save, request.app.state.db, chat)
    chat.new = False
    return chat


def _preferred_language(request: Request) -> str:
    first = request.headers.get("accept-language", "de").split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "de"


# --- routes ----------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def chat_page(request: Request, lang: str | None = None) -> HTMLResponse:
    db: Database = request.app.state.db
    chat = await asyncio.to_thread(_load, db, request.cookies.get(COOKIE))
    wanted = lang if lang in ("de", "en") else None
    if chat is None:
        chat = await _new_chat(request, wanted or _preferred_language(request))
    elif wanted and wanted != chat.lang:
        chat.lang = wanted
        await asyncio.to_thread(_save, db, chat)
    return _page(request, chat)


async def _handle(
    request: Request, csrf: str, nonce: str | None, run: Any, echo: str | None
) -> Response:
    db: Database = request.app.state.db
    chat = await asyncio.to_thread(_load, db, request.cookies.get(COOKIE))
    if chat is None:
        # Expired or deleted: start again (htmx follows HX-Redirect with a full page load).
        if _is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": "/"})
        return RedirectResponse("/", status_code=303)
    if not hmac.compare_digest(csrf.encode(), chat.csrf.encode()):
        return HTMLResponse(f"<p role='alert'>{t('web_expired', chat.lang)}</p>", status_code=403)
    start = (chat.log[-1]["n"] + 1) if chat.log else 1
    closed: list[int] = []
    if nonce and nonce in chat.seen_nonces:
        return (
            _fragment(request, chat, start, closed) if _is_htmx(request) else _page(request, chat)
        )
    if nonce:
        chat.seen_nonces.append(nonce)
    if echo:
        chat.add("citizen", echo)
    closed = chat.close_buttons()
    replies: list[Reply] = await run(chat, _context(chat, nonce))
    chat.add_replies(replies)
    await asyncio.to_thread(_save, db, chat)
    if _is_htmx(request):
        return _fragment(request, chat, start, closed)
    return _page(request, chat)


Text = Annotated[str, Form(max_length=20_000)]
Token = Annotated[str, Form(max_length=100)]
Nonce = Annotated[str | None, Form(max_length=100)]


@router.post("/chat/send", response_class=HTMLResponse)
async def chat_send(request: Request, text: Text, csrf: Token, nonce: Nonce = None) -> Response:
    conversation = _conversation(request)
    message = text.strip()
    if not message:
        return Response(status_code=204)
    command = message[1:].split()[0].lower() if message.startswith("/") and len(message) > 1 else ""

    async def run(chat: Chat, ctx: Context) -> list[Reply]:
        if command in COMMANDS:
            return await conversation.command(chat.conv, ctx, command)
        return await conversation.text(chat.conv, ctx, message)

    return await _handle(request, csrf, nonce, run, echo=message)


@router.post("/chat/button", response_class=HTMLResponse)
async def chat_button(
    request: Request,
    data: Annotated[str, Form(max_length=200)],
    label: Annotated[str, Form(max_length=300)],
    csrf: Token,
    nonce: Nonce = None,
) -> Response:
    conversation = _conversation(request)

    async def run(chat: Chat, ctx: Context) -> list[Reply]:
        return await conversation.button(chat.conv, ctx, data)

    return await _handle(request, csrf, nonce, run, echo=label)


@router.get("/chat/updates", response_class=HTMLResponse)
async def chat_updates(request: Request) -> Response:
    """New messages from the hotline (staff replies, status changes) since the last look."""
    db: Database = request.app.state.db
    chat = await asyncio.to_thread(_load, db, request.cookies.get(COOKIE))
    if chat is None:
        return Response(status_code=204)
    payloads = await asyncio.to_thread(_collect, db, chat.id)
    if not payloads:
        return Response(status_code=204)
    start = (chat.log[-1]["n"] + 1) if chat.log else 1
    for payload in payloads:
        payload = {**payload, "language": chat.lang}
        try:
            chat.add_replies([render(payload)])
        except (UnknownPayload, KeyError):
            continue
    await asyncio.to_thread(_save, db, chat)
    if _is_htmx(request):
        return _fragment(request, chat, start, [])
    return _page(request, chat)
