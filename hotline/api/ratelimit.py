"""Rate limits per client on the API's costly intake endpoints (ask, ticket creation).

A client is the API token (or staff user) plus, when the request names the citizen it acts
for (`client` on an ask, the requester's chat id, web session or e-mail on a ticket), that
citizen: a channel token such as the web chat or the bot carries many citizens, and one of
them flooding must not lock out the others. The citizen's identity is only used as a keyed
hash, so neither the process memory nor Redis holds a chat id or an e-mail address.

The counters live in memory, or in Redis when `redis_url` is set (shared by all processes),
with the same fixed-window limiters the bot and the board login use (`bot.limits`).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import Depends, Request

from bot.limits import (
    WINDOW_SECONDS,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    Verdict,
)
from hotline.api.deps import ActorDep, SettingsDep
from hotline.errors import HotlineError
from hotline.schemas import RateLimitedOut
from hotline.services.actors import Actor
from hotline.services.asking import client_hash
from hotline.settings import Settings

# For the route decorators: documents the 429 answer in the OpenAPI schema.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": RateLimitedOut,
        "description": "Too many requests from this client; retry after `retry_after` seconds",
        "headers": {
            "Retry-After": {
                "description": "Seconds until the limit resets",
                "schema": {"type": "integer"},
            }
        },
    }
}


class RateLimited(HotlineError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


def _limiter(request: Request, settings: Settings, kind: str, per_minute: int) -> RateLimiter:
    name = f"{kind}_limiter"
    limiter: RateLimiter | None = getattr(request.app.state, name, None)
    if limiter is None:
        if settings.redis_url:
            from redis.asyncio import Redis

            limiter = RedisRateLimiter(
                Redis.from_url(settings.redis_url), per_minute, prefix=f"hotline:api:{kind}"
            )
        else:
            limiter = MemoryRateLimiter(per_minute)
        setattr(request.app.state, name, limiter)
    return limiter


async def close_limiters(state: Any) -> None:
    """Close the Redis connections of the limiters on `app.state` (call on shutdown)."""
    for name in ("ask_limiter", "ticket_limiter", "login_limiter"):
        limiter = getattr(state, name, None)
        if isinstance(limiter, RedisRateLimiter):
            await limiter.redis.aclose()
        if limiter is not None:
            delattr(state, name)


async def _retry_after(limiter: RateLimiter, key: str) -> int:
    """Seconds until the client's window resets (the whole window when it cannot be told)."""
    if isinstance(limiter, RedisRateLimiter):
        ttl = int(await limiter.redis.ttl(f"{limiter.prefix}:rate:{key}"))
        return ttl if ttl > 0 else limiter.window
    if isinstance(limiter, MemoryRateLimiter):
        started = limiter._windows.get(key, (limiter.clock(), 0))[0]
        return max(1, math.ceil(limiter.window - (limiter.clock() - started)))
    return WINDOW_SECONDS


def _client_of(actor: Actor) -> str:
    # The in-process web chat has neither token nor staff id: its label names the channel.
    scope = actor.scope
    return actor.label if scope == "system" else scope


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON body as a dict (empty when it is not one; the route's validation says why)."""
    try:
        data = json.loads(await request.body() or b"null")
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _citizen(body: dict[str, Any], *, ask: bool) -> tuple[str, str] | None:
    channel = str(body.get("channel") or "api")[:40]
    if ask:
        client = body.get("client")
        return (channel, client) if isinstance(client, str) and client else None
    requester = body.get("requester")
    if not isinstance(requester, dict):
        return None
    for name in ("telegram_chat_id", "web_session", "email"):
        value = requester.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return channel, f"{name}:{value}"
    return None


async def _check(
    request: Request, actor: Actor, settings: Settings, *, kind: str, per_minute: int
) -> None:
    client = _client_of(actor)
    citizen = _citizen(await _json_body(request), ask=kind == "ask")
    if citizen is not None:
        client += f":{citizen[0]}:{citizen[1][:200]}"
    # Keyed hash: no chat id or e-mail in memory or Redis, and deployments (secrets) sharing
    # one Redis do not count each other's clients.
    key = client_hash(settings.secret_key, kind, client)
    limiter = _limiter(request, settings, kind, per_minute)
    if await limiter.hit(key) == Verdict.allow:
        return
    retry_after = await _retry_after(limiter, key)
    what = "questions" if kind == "ask" else "new tickets"
    raise RateLimited(
        f"Too many {what} from this client (limit {per_minute} a minute); "
        f"please retry in {retry_after} seconds.",
        retry_after=retry_after,
    )


async def limit_asks(request: Request, actor: ActorDep, settings: SettingsDep) -> None:
    """`POST /kb/ask`: at most `ask_rate_per_minute` a minute per client."""
    await _check(request, actor, settings, kind="ask", per_minute=settings.ask_rate_per_minute)


async def limit_ticket_creation(request: Request, actor: ActorDep, settings: SettingsDep) -> None:
    """`POST /tickets`: at most `ticket_rate_per_minute` a minute per client."""
    await _check(
        request, actor, settings, kind="ticket", per_minute=settings.ticket_rate_per_minute
    )


AskLimit = Annotated[None, Depends(limit_asks)]
TicketLimit = Annotated[None, Depends(limit_ticket_creation)]
