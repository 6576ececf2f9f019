"""Flood control per chat and a memory of handled updates, in process or shared in Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

WINDOW_SECONDS = 60


class Verdict(StrEnum):
    allow = "allow"
    # The first message over the limit: tell the citizen once.
    warn = "warn"
    # Further messages in the same window: ignore silently.
    drop = "drop"


class RateLimiter(Protocol):
    async def hit(self, chat: str) -> Verdict: ...


class SeenUpdates(Protocol):
    async def first_time(self, update_id: int) -> bool:
        """True the first time an update id is seen (and remember it)."""
        ...

    async def forget(self, update_id: int) -> None:
        """Forget an update whose handling failed, so that a redelivery is handled again."""
        ...


def _verdict(count: int, limit: int) -> Verdict:
    if count <= limit:
        return Verdict.allow
    return Verdict.warn if count == limit + 1 else Verdict.drop


class MemoryRateLimiter:
    """A fixed window per chat that starts with the chat's first message."""

    def __init__(
        self,
        limit: int,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_chats: int = 100_000,
    ) -> None:
        self.limit, self.window, self.clock, self.max_chats = limit, window, clock, max_chats
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    async def hit(self, chat: str) -> Verdict:
        now = self.clock()
        started, count = self._windows.pop(chat, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        count += 1
        self._windows[chat] = (started, count)
        while len(self._windows) > self.max_chats:
            self._windows.popitem(last=False)
        return _verdict(count, self.limit)


class MemorySeenUpdates:
    """The last `size` update ids handled by this process."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def first_time(self, update_id: int) -> bool:
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    async def forget(self, update_id: int) -> None:
        self._seen.pop(update_id, None)


class RedisRateLimiter:
    """The same fixed window, counted in Redis so that all bot processes share it."""

    def __init__(
        self, redis: Any, limit: int, *, window: int = WINDOW_SECONDS, prefix: str = "hotline:bot"
    ) -> None:
        self.redis, self.limit, self.window, self.prefix = redis, limit, window, prefix

    async def hit(self, chat: str) -> Verdict:
        key = f"{self.prefix}:rate:{chat}"
        count = int(await self.redis.incr(key))
        if count == 1:
            await self.redis.expire(key, self.window)
        return _verdict(count, self.limit)


class RedisSeenUpdates:
    """Update ids in Redis for a day (Telegram redelivers for at most 24 hours)."""

    def __init__(self, redis: Any, *, ttl: int = 86_400, prefix: str = "hotline:bot") -> None:
        self.redis, self.ttl, self.prefix = redis, ttl, prefix

    async def first_time(self, update_id: int) -> bool:
        return bool(
            await self.redis.set(f"{self.prefix}:update:{update_id}", 1, nx=True, ex=self.ttl)
        )

    async def forget(self, update_id: int) -> None:
        await self.redis.delete(f"{self.prefix}:update:{update_id}")
