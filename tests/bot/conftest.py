"""Fixtures for the bot: the stand-in Bot API server, a real aiogram Bot on it, a chat driver
and an in-memory Backend for the handler tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.app import build_bot, build_dispatcher
from bot.backend import (
    AskResult,
    AttachmentInfo,
    BackendError,
    City,
    CreatedTicket,
    Entry,
    ErasureResult,
    Requester,
    ServiceRef,
    Suggestion,
    TicketDraft,
    TicketSummary,
)
from hotline.settings import Settings
from tests.bot.fake_telegram import FakeTelegram

TOKEN = "123456:TEST-token"


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def make_settings(fake: FakeTelegram, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": "sqlite:///:memory:",
        "telegram_bot_token": TOKEN,
        "telegram_api_base": fake.base_url,
        "telegram_webhook_secret": "webhook-secret-for-tests",
        "api_token": "unused",
        "chat_rate_limit_per_minute": 1_000,
        # Pinned, so that a developer's environment cannot switch the tests to Redis.
        "redis_url": None,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def bot_settings(fake_telegram: FakeTelegram) -> Settings:
    return make_settings(fake_telegram)


@pytest.fixture
async def bot(bot_settings: Settings) -> AsyncIterator[Bot]:
    telegram_bot = build_bot(bot_settings)
    try:
        yield telegram_bot
    finally:
        await telegram_bot.session.close()


# --- an in-memory backend -------------------------------------------------------------------


@dataclass
class StoredTicket:
    reference: str
    draft: TicketDraft
    requester: Requester
    status: str = "new"
    messages: list[str] = field(default_factory=list)
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    rating: int | None = None


class FakeBackend:
    """The Backend Protocol in memory; `on(word, …)` says how questions containing a word match."""

    CITIES = (
        City("muenchen", "München"),
        City("augsburg", "Augsburg"),
        City("nuernberg", "Nürnberg"),
    )
    POSTCODES: ClassVar[dict[str, str]] = {
        "80331": "muenchen",
        "86150": "augsburg",
        "90402": "nuernberg",
    }

    def __init__(self) -> None:
        self.rules: list[tuple[str, AskResult]] = []
        self.entries: dict[str, Entry] = {}
        self.asks: list[dict[str, Any]] = []
        self.feedback_given: list[tuple[int, bool]] = []
        self.choices: list[tuple[int, str]] = []
        self.tickets: dict[str, StoredTicket] = {}
        self.by_key: dict[str, str] = {}
        self.message_keys: set[str] = set()
        self.erased: list[Requester] = []
        self.due: datetime | None = datetime(2026, 5, 12, 12, 0, tzinfo=UTC)
        self.fail_with: BackendError | None = None
        self._ask_ids = itertools.count(1)
        self._refs = itertools.count(1)

    def entry(self, id: str, title: str, answer: str, service: str | None = "bayernid") -> Entry:
        self.entries[id] = Entry(id=id, title=title, answer=answer, service=service)
        return self.entries[id]

    def on(self, word: str, result: AskResult) -> None:
        self.rules.append((word.lower(), result))

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def ask(
        self, question: str, *, city: str | None, requester: Requester, language: str
    ) -> AskResult:
        self._check()
        ask_id = next(self._ask_ids)
        self.asks.append({"question": question, "city": city, "requester": requester, "id": ask_id})
        for word, result in self.rules:
            if word in question.lower():
                return replace(result, ask_id=ask_id)
        return AskResult(ask_id=ask_id, decision="handover", score=12.0)

    async def feedback(self, ask_id: int, *, helped: bool) -> None:
        self._check()
        self.feedback_given.append((ask_id, helped))

    async def choose(self, ask_id: int, entry_id: str) -> Entry:
        self._check()
        self.choices.append((ask_id, entry_id))
        return self.entries[entry_id]

    async def cities(self) -> list[City]:
        self._check()
        return list(self.CITIES)

    async def city_by_postcode(self, postcode: str) -> City | None:
        self._check()
        key = self.POSTCODES.get(postcode)
        return next((c for c in self.CITIES if c.key == key), None)

    async def services(self) -> list[ServiceRef]:
        self._check()
        return [ServiceRef("bayernid", "BayernID"), ServiceRef("epayment", "ePayment")]

    async def create_ticket(
        self, draft: TicketDraft, requester: Requester, *, idempotency_key: str | None
    ) -> CreatedTicket:
        self._check()
        if idempotency_key and idempotency_key in self.by_key:
            reference = self.by_key[idempotency_key]
        else:
            reference = f"HL-2026-{next(self._refs):06d}"
            self.tickets[reference] = StoredTicket(reference, draft, requester)
            if idempotency_key:
                self.by_key[idempotency_key] = reference
        city = draft.origin_city or "muenchen"
        name = next(c.name for c in self.CITIES if c.key == city)
        return CreatedTicket(reference, "new", city, name, self.due)

    async def add_message(self, reference: str, body: str, *, idempotency_key: str | None) -> None:
        self._check()
        ticket = self.tickets[reference]
        if ticket.status == "closed":
            raise BackendError("ticket_closed", "closed", 409)
        if idempotency_key and idempotency_key in self.message_keys:
            return
        if idempotency_key:
            self.message_keys.add(idempotency_key)
        ticket.messages.append(body)
        if ticket.status == "resolved":
            ticket.status = "reopened"

    async def add_attachment(
        self,
        reference: str,
        filename: str,
        content: bytes,
        content_type: str,
        *,
        idempotency_key: str | None,
    ) -> AttachmentInfo:
        self._check()
        self.tickets[reference].attachments.append((filename, content))
        return AttachmentInfo(len(self.tickets[reference].attachments), filename, len(content))

    async def citizen_tickets(self, requester: Requester) -> list[TicketSummary]:
        self._check()
        names = {c.key: c.name for c in self.CITIES}
        return [
            TicketSummary(
                t.reference,
                t.draft.subject,
                t.status,
                t.draft.origin_city or "muenchen",
                names[t.draft.origin_city or "muenchen"],
                t.rating,
            )
            for t in reversed(self.tickets.values())
            if t.requester == requester
        ]

    async def erase(self, requester: Requester) -> ErasureResult:
        self._check()
        self.erased.append(requester)
        mine = [r for r, t in self.tickets.items() if t.requester == requester]
        for reference in mine:
            del self.tickets[reference]
        return ErasureResult(tickets_anonymised=len(mine), asks_deleted=len(self.asks))

    async def rate(self, reference: str, rating: int) -> None:
        self._check()
        ticket = self.tickets[reference]
        if ticket.status not in ("resolved", "closed"):
            raise BackendError("not_resolved", "not resolved", 409)
        ticket.rating = rating


def answer(entry: Entry, score: float = 88.0) -> AskResult:
    return AskResult(ask_id=0, decision="answer", score=score, entry=entry, service=entry.service)


def suggest(*entries: Entry) -> AskResult:
    return AskResult(
        ask_id=0,
        decision="suggest",
        score=55.0,
        entry=entries[0],
        suggestions=[Suggestion(e.id, e.title, 55.0 - i) for i, e in enumerate(entries)],
        service=entries[0].service,
    )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def dispatcher(bot_settings: Settings, backend: FakeBackend) -> Dispatcher:
    return build_dispatcher(bot_settings, backend)


# --- driving a chat -------------------------------------------------------------------------


class TelegramChat:
    """One citizen's private chat: sends updates through the dispatcher, reads what the bot
    sent back from the stand-in server."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        fake: FakeTelegram,
        *,
        chat_id: int = 4242,
        language: str = "de",
    ) -> None:
        self.dp, self.bot, self.fake = dp, bot, fake
        self.chat_id, self.language = chat_id, language
        self._callbacks = itertools.count(1)

    @property
    def user(self) -> dict[str, Any]:
        return {
            "id": self.chat_id,
            "is_bot": False,
            "first_name": "Erika",
            "language_code": self.language,
        }

    def message(self, text: str | None = None, **content: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._callbacks) + 10_000,
            "date": int(datetime.now(UTC).timestamp()),
            "chat": {"id": self.chat_id, "type": "private"},
            "from": self.user,
            **content,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                length = len(text.split()[0])
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return {"update_id": self.fake.next_update_id(), "message": message}

    async def feed(self, update: dict[str, Any]) -> list[str]:
        before = len(self.fake.sent(self.chat_id))
        await self.dp.feed_update(
            self.bot, Update.model_validate(update, context={"bot": self.bot})
        )
        return self.fake.texts(self.chat_id)[before:]

    async def say(self, text: str) -> list[str]:
        return await self.feed(self.message(text))

    def last_with_buttons(self) -> dict[str, Any]:
        for sent in reversed(self.fake.sent(self.chat_id)):
            if sent.get("reply_markup"):
                return sent
        raise AssertionError("the bot sent no buttons")

    def buttons(self) -> list[str]:
        markup = self.last_with_buttons()["reply_markup"]
        return [b["text"] for row in markup["inline_keyboard"] for b in row]

    def callback(self, label: str) -> dict[str, Any]:
        sent = self.last_with_buttons()
        markup = sent["reply_markup"]
        data = next(
            (
                b["callback_data"]
                for row in markup["inline_keyboard"]
                for b in row
                if b["text"] == label
            ),
            None,
        )
        assert data is not None, f"no button {label!r} in {self.buttons()}"
        return self.callback_data(data, sent)

    def callback_data(self, data: str, sent: dict[str, Any] | None = None) -> dict[str, Any]:
        sent = sent or self.fake.sent(self.chat_id)[-1]
        message = {
            "message_id": sent["message_id"],
            "date": int(datetime.now(UTC).timestamp()),
            "chat": {"id": self.chat_id, "type": "private"},
            "from": {"id": 777000111, "is_bot": True, "first_name": "Hotline"},
            "text": sent["text"],
        }
        if sent.get("reply_markup"):
            message["reply_markup"] = sent["reply_markup"]
        return {
            "update_id": self.fake.next_update_id(),
            "callback_query": {
                "id": f"cb-{next(self._callbacks)}",
                "from": self.user,
                "chat_instance": "instance-1",
                "data": data,
                "message": message,
            },
        }

    async def press(self, label: str) -> list[str]:
        return await self.feed(self.callback(label))


@pytest.fixture
def chat(dispatcher: Dispatcher, bot: Bot, fake_telegram: FakeTelegram) -> TelegramChat:
    return TelegramChat(dispatcher, bot, fake_telegram)
