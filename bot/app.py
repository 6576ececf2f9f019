"""Factories for the Telegram bot: Bot, Dispatcher, long polling and the webhook route."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Update
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bot.backend import Backend, HttpBackend
from bot.conversation import Conversation
from bot.limits import (
    MemoryRateLimiter,
    MemorySeenUpdates,
    RateLimiter,
    RedisRateLimiter,
    RedisSeenUpdates,
    SeenUpdates,
)
from bot.telegram import DropRedeliveredUpdates, FloodControl, get_routers
from hotline.settings import Settings

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class BotNotConfigured(RuntimeError):
    """The Telegram bot token is missing."""


def build_bot(settings: Settings) -> Bot:
    """A Bot on the configured Bot API base; create it inside the running event loop."""
    if settings.telegram_bot_token is None:
        raise BotNotConfigured(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set its token."
        )
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


def build_dispatcher(
    settings: Settings,
    backend: Backend,
    *,
    storage: BaseStorage | None = None,
    rate_limiter: RateLimiter | None = None,
    seen_updates: SeenUpdates | None = None,
) -> Dispatcher:
    """The dispatcher with the conversation, flood control and redelivery protection.

    State, rate limits and handled update ids live in Redis when `redis_url` is set (several
    bot processes), otherwise in this process.
    """
    if storage is None:
        storage = (
            RedisStorage.from_url(settings.redis_url) if settings.redis_url else MemoryStorage()
        )
    redis = storage.redis if isinstance(storage, RedisStorage) else None
    if rate_limiter is None:
        limit = settings.chat_rate_limit_per_minute
        rate_limiter = RedisRateLimiter(redis, limit) if redis else MemoryRateLimiter(limit)
    if seen_updates is None:
        seen_updates = RedisSeenUpdates(redis) if redis else MemorySeenUpdates()
    dp = Dispatcher(storage=storage)
    dp["conversation"] = Conversation.from_settings(backend, settings)
    dp.update.outer_middleware(DropRedeliveredUpdates(seen_updates))
    flood = FloodControl(rate_limiter)
    dp.message.outer_middleware(flood)
    dp.callback_query.outer_middleware(flood)
    dp.include_routers(*get_routers())
    return dp


async def run_polling(
    settings: Settings, *, backend: Backend | None = None, handle_signals: bool = True
) -> None:
    """Long polling until stopped (Ctrl-C); `hotline bot` runs this."""
    bot = build_bot(settings)
    own_backend: HttpBackend | None = None
    if backend is None:
        own_backend = backend = HttpBackend.from_settings(settings)
    dp = build_dispatcher(settings, backend)
    try:
        # Telegram refuses getUpdates while a webhook is set.
        await bot.delete_webhook(drop_pending_updates=False)
        await dp.start_polling(bot, handle_signals=handle_signals, close_bot_session=True)
    finally:
        await dp.storage.close()
        if own_backend is not None:
            await own_backend.aclose()
        await bot.session.close()


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status)


class _WebhookBot:
    """The bot and dispatcher behind the webhook, made on first use in the server's loop."""

    def __init__(self, settings: Settings, backend: Backend | None) -> None:
        self.settings = settings
        self.backend = backend
        self._own_backend: HttpBackend | None = None
        self._bot: Bot | None = None
        self._dp: Dispatcher | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[Bot, Dispatcher]:
        async with self._lock:
            if self._bot is None or self._dp is None:
                bot = build_bot(self.settings)
                backend = self.backend
                if backend is None:
                    self._own_backend = backend = HttpBackend.from_settings(self.settings)
                self._dp = build_dispatcher(self.settings, backend)
                self._bot = bot
            return self._bot, self._dp

    async def close(self) -> None:
        if self._dp is not None:
            await self._dp.storage.close()
        if self._own_backend is not None:
            await self._own_backend.aclose()
        if self._bot is not None:
            await self._bot.session.close()
        self._bot = self._dp = self._own_backend = None


def make_webhook_router(settings: Settings, *, backend: Backend | None = None) -> APIRouter:
    """`POST /telegram/webhook`: checks Telegram's secret header, then handles the update.

    Mount it with `app.include_router(...)`; its lifespan closes the bot session on shutdown.
    """
    holder = _WebhookBot(settings, backend)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await holder.close()

    router = APIRouter(tags=["telegram"], lifespan=lifespan)

    @router.post("/telegram/webhook", include_in_schema=False)
    async def telegram_webhook(request: Request) -> JSONResponse:
        expected = settings.telegram_webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if expected is None or not hmac.compare_digest(
            given.encode(), expected.get_secret_value().encode()
        ):
            return _error(
                401,
                "bad_webhook_secret",
                f"The {SECRET_HEADER} header is missing or wrong "
                "(set the same secret in setWebhook and TELEGRAM_WEBHOOK_SECRET).",
            )
        try:
            payload = json.loads(await request.body())
            if not isinstance(payload, dict):
                raise ValueError("an update is a JSON object")
            Update.model_validate(payload)
        except (ValueError, ValidationError) as exc:
            return _error(400, "bad_update", f"The body is not a Telegram update: {exc}"[:500])
        try:
            bot, dp = await holder.get()
        except BotNotConfigured as exc:
            return _error(503, "telegram_not_configured", str(exc))
        try:
            await dp.feed_update(bot, Update.model_validate(payload, context={"bot": bot}))
        except Exception:
            # Telegram retries a failed update; the redelivery guard forgot it, so it is handled.
            log.exception("handling a Telegram update failed")
            return _error(500, "update_failed", "The update could not be handled; retry later.")
        return JSONResponse({"ok": True})

    return router
