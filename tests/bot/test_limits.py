"""Flood control and redelivery protection, in memory and shared through a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiogram import Bot
from aiogram.fsm.storage.redis import RedisStorage

from bot.app import build_dispatcher
from bot.limits import MemoryRateLimiter, MemorySeenUpdates, Verdict
from tests.bot.conftest import FakeBackend, TelegramChat, make_settings
from tests.bot.fake_telegram import FakeTelegram
from tests.processes import redis_for_tests


async def test_memory_rate_limiter_warns_once_per_window() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(2, clock=lambda: now[0])
    verdicts = [await limiter.hit("1") for _ in range(4)]
    assert verdicts == [Verdict.allow, Verdict.allow, Verdict.warn, Verdict.drop]
    assert await limiter.hit("2") is Verdict.allow  # other chats are not affected
    now[0] = 60.0
    assert await limiter.hit("1") is Verdict.allow


async def test_seen_updates_are_bounded_and_can_be_forgotten() -> None:
    seen = MemorySeenUpdates(size=2)
    assert await seen.first_time(1) and not await seen.first_time(1)
    await seen.forget(1)
    assert await seen.first_time(1)
    assert await seen.first_time(2) and await seen.first_time(3)
    assert await seen.first_time(1)  # pushed out by newer ids


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


@pytest.fixture
async def redis_chats(
    redis_url: str, fake_telegram: FakeTelegram, bot: Bot, backend: FakeBackend
) -> AsyncIterator[tuple[TelegramChat, TelegramChat]]:
    """Two bot processes sharing one Redis (state, rate limit, handled updates)."""
    settings = make_settings(fake_telegram, redis_url=redis_url, chat_rate_limit_per_minute=4)
    first = build_dispatcher(settings, backend)
    second = build_dispatcher(settings, backend)
    assert isinstance(first.storage, RedisStorage)
    await first.storage.redis.flushdb()
    try:
        yield (
            TelegramChat(first, bot, fake_telegram, chat_id=31),
            TelegramChat(second, bot, fake_telegram, chat_id=31),
        )
    finally:
        await first.storage.close()
        await second.storage.close()


async def test_redis_shares_state_redeliveries_and_rate_limit_between_processes(
    redis_chats: tuple[TelegramChat, TelegramChat], backend: FakeBackend
) -> None:
    one, two = redis_chats
    await one.say("/start")
    # The other process knows the state: the city button works there.
    texts = await two.press("Augsburg")
    assert "Augsburg" in texts[0]
    update = one.message("Etwas Seltenes")
    assert await one.feed(update)
    assert await two.feed(update) == []  # already handled by the first process
    assert len(backend.asks) == 1
    # Three messages counted so far (the redelivery was dropped before the flood control):
    # the fourth is allowed, the fifth gets the one warning, then silence.
    texts = await two.say("Noch eine Frage")
    assert texts and "schnell" not in texts[0]
    texts = await one.say("Und noch eine")
    assert len(texts) == 1 and "schnell" in texts[0]
    assert await two.say("Und noch eine zweite") == []
