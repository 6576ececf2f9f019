"""Telegram ↔ conversation: handlers, middlewares and sending replies; no dialogue rules here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiogram import BaseMiddleware, Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
    Update,
    User,
)

from bot.backend import Requester
from bot.conversation import COMMANDS, Button, Context, Conversation, FetchError, Reply, State
from bot.limits import RateLimiter, SeenUpdates, Verdict
from bot.texts import language_for, t

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
STATE_KEY = "conversation"


# --- sending ------------------------------------------------------------------------------


def keyboard(buttons: list[list[Button]]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.label, callback_data=b.data) for b in row]
            for row in buttons
        ]
    )


def _chunks(text: str, size: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split a long text at line breaks (or hard, if a line is too long) into Telegram's size."""
    parts: list[str] = []
    rest = text
    while len(rest) > size:
        cut = rest.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        parts.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    parts.append(rest)
    return parts


async def send_reply(bot: Bot, chat_id: int | str, reply: Reply) -> None:
    """Send one reply; a long text goes in several messages, the buttons under the last one."""
    parts = _chunks(reply.text)
    for i, part in enumerate(parts):
        markup = keyboard(reply.buttons) if i == len(parts) - 1 else None
        await bot.send_message(chat_id=chat_id, text=part, reply_markup=markup)


async def send_replies(bot: Bot, chat_id: int | str, replies: list[Reply]) -> None:
    for reply in replies:
        await send_reply(bot, chat_id, reply)


# --- middlewares --------------------------------------------------------------------------


class DropRedeliveredUpdates(BaseMiddleware):
    """An update id is handled once; a failed one is forgotten so Telegram's retry is handled."""

    def __init__(self, seen: SeenUpdates) -> None:
        self.seen = seen

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        if not await self.seen.first_time(event.update_id):
            log.info("dropped redelivered update %s", event.update_id)
            return None
        try:
            return await handler(event, data)
        except BaseException:
            await self.seen.forget(event.update_id)
            raise


class FloodControl(BaseMiddleware):
    """More than the limit per minute from one chat: one polite message, then silence."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat_id = _chat_id(event)
        if chat_id is None:
            return await handler(event, data)
        verdict = await self.limiter.hit(str(chat_id))
        if verdict is Verdict.allow:
            return await handler(event, data)
        user = getattr(event, "from_user", None)
        lang = language_for(user.language_code if isinstance(user, User) else None)
        bot: Bot = data["bot"]
        if isinstance(event, CallbackQuery):
            await _answer_callback(
                event, t("rate_limited", lang) if verdict is Verdict.warn else None
            )
        elif verdict is Verdict.warn:
            await bot.send_message(chat_id=chat_id, text=t("rate_limited", lang))
        return None


def _chat_id(event: TelegramObject) -> int | None:
    if isinstance(event, Message):
        return event.chat.id
    if isinstance(event, CallbackQuery):
        if event.message is not None:
            return event.message.chat.id
        return event.from_user.id
    return None


async def _answer_callback(query: CallbackQuery, text: str | None = None) -> None:
    try:
        await query.answer(text=text)
    except TelegramBadRequest as exc:
        # Too old to answer (Telegram allows a few seconds); the choice is still handled.
        log.info("could not answer callback query: %s", exc.message)


# --- handlers -----------------------------------------------------------------------------


def _context(chat_id: int, user: User | None, update: Update) -> Context:
    return Context(
        requester=Requester(channel="telegram", telegram_chat_id=str(chat_id)),
        language=language_for(user.language_code if user else None),
        idempotency_key=f"tg-{update.update_id}",
    )


async def _load(state: FSMContext) -> State:
    data = await state.get_data()
    return dict(data.get(STATE_KEY) or {})


async def _save(state: FSMContext, conversation_state: State) -> None:
    await state.update_data({STATE_KEY: conversation_state})


async def on_start(
    message: Message,
    state: FSMContext,
    conversation: Conversation,
    event_update: Update,
    bot: Bot,
) -> None:
    st = await _load(state)
    replies = await conversation.start(
        st, _context(message.chat.id, message.from_user, event_update)
    )
    await _save(state, st)
    await send_replies(bot, message.chat.id, replies)


async def on_command(
    message: Message,
    state: FSMContext,
    conversation: Conversation,
    event_update: Update,
    bot: Bot,
) -> None:
    name = (message.text or "/").split(maxsplit=1)[0][1:].split("@", 1)[0].lower()
    st = await _load(state)
    ctx = _context(message.chat.id, message.from_user, event_update)
    replies = await conversation.command(st, ctx, name)
    await _save(state, st)
    await send_replies(bot, message.chat.id, replies)


async def on_text(
    message: Message,
    state: FSMContext,
    conversation: Conversation,
    event_update: Update,
    bot: Bot,
) -> None:
    st = await _load(state)
    ctx = _context(message.chat.id, message.from_user, event_update)
    replies = await conversation.text(st, ctx, message.text or "")
    await _save(state, st)
    await send_replies(bot, message.chat.id, replies)


async def on_document(
    message: Message,
    state: FSMContext,
    conversation: Conversation,
    event_update: Update,
    bot: Bot,
) -> None:
    document = message.document
    assert document is not None  # guaranteed by the filter

    async def fetch() -> bytes:
        try:
            file = await bot.get_file(document.file_id)
            if not file.file_path:
                raise FetchError("Telegram returned no file path")
            stream = await bot.download_file(file.file_path)
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(str(exc)) from exc
        return stream.read() if stream is not None else b""

    st = await _load(state)
    replies = await conversation.document(
        st,
        _context(message.chat.id, message.from_user, event_update),
        filename=document.file_name or "dokument",
        size=document.file_size,
        content_type=document.mime_type or "application/octet-stream",
        fetch=fetch,
    )
    await _save(state, st)
    await send_replies(bot, message.chat.id, replies)


async def on_other(message: Message, bot: Bot) -> None:
    """Photos, voice, stickers, videos, locations…: explain that only text is read."""
    lang = language_for(message.from_user.language_code if message.from_user else None)
    await bot.send_message(chat_id=message.chat.id, text=t("not_text", lang))


async def on_button(
    query: CallbackQuery,
    state: FSMContext,
    conversation: Conversation,
    event_update: Update,
    bot: Bot,
) -> None:
    await _answer_callback(query)
    message = query.message
    chat_id = message.chat.id if message is not None else query.from_user.id
    if isinstance(message, Message):
        await _mark_chosen(message, query.data or "")
    st = await _load(state)
    replies = await conversation.button(
        st, _context(chat_id, query.from_user, event_update), query.data or ""
    )
    await _save(state, st)
    await send_replies(bot, chat_id, replies)


async def _mark_chosen(message: Message, data: str) -> None:
    """Remove the buttons once one was chosen, and show the choice under the text."""
    label = None
    if message.reply_markup is not None:
        for row in message.reply_markup.inline_keyboard:
            for button in row:
                if button.callback_data == data:
                    label = button.text
    try:
        text = message.text
        if text and label and len(text) + len(label) + 4 <= TELEGRAM_TEXT_LIMIT:
            await message.edit_text(text=f"{text}\n\n→ {label}", reply_markup=None)
        else:
            await message.edit_reply_markup(reply_markup=None)
    except TelegramBadRequest as exc:
        # E.g. the message is too old to edit; the choice itself still counts.
        log.info("could not remove buttons: %s", exc.message)


def get_routers() -> list[Router]:
    """Fresh routers (a router belongs to one dispatcher), commands before plain text."""
    commands = Router(name="commands")
    commands.message.register(on_start, CommandStart())
    commands.message.register(on_command, Command(*(c for c in COMMANDS if c != "start")))
    messages = Router(name="messages")
    messages.message.register(on_text, F.text)
    messages.message.register(on_document, F.document)
    messages.message.register(on_other)
    buttons = Router(name="buttons")
    buttons.callback_query.register(on_button)
    return [commands, messages, buttons]
