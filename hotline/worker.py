"""The outbox worker: delivers queued messages to citizens' channels with retries.

Every message to a citizen is an `OutboxDelivery` row written in the same transaction as the
ticket change. The worker claims due rows in a short transaction (row locks with SKIP LOCKED on
PostgreSQL, so several processes never claim the same row), sends them outside the
transaction, and records the result. Per recipient only the oldest pending message is sent, so
a chat receives its messages in order even when the channel was down for a while.

A claimed row gets a lease (`next_attempt_at` in the future): if the process dies mid-send the
row becomes due again after the lease. Temporary failures are retried with exponential backoff
(capped, so an outage of minutes costs at most a minute of extra delay); permanent ones (the
citizen blocked the bot, the chat is gone) and messages older than `GIVE_UP_AFTER` end as
`failed`. Web-chat messages are not pushed: the web chat page collects them itself.

Alongside the deliveries the worker runs the data-retention job (services/retention.py) every
`HOTLINE_RETENTION_INTERVAL_HOURS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from hotline.db import Database, utcnow
from hotline.models import Channel, DeliveryStatus, OutboxDelivery
from hotline.services.retention import RetentionReport, run_retention
from hotline.settings import Settings

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_BACKOFF_SECONDS = 60
GIVE_UP_AFTER = timedelta(days=2)
BATCH = 50

# A sender raises PermanentFailure when retrying cannot help; any other exception is retried.
Sender = Callable[[str, dict[str, Any]], Awaitable[None]]


class PermanentFailure(Exception):
    """The channel refused the message for good (e.g. the user blocked the bot)."""


class RetryLater(Exception):
    """The channel asked us to wait (e.g. Telegram's flood control)."""

    def __init__(self, seconds: float, detail: str = "") -> None:
        super().__init__(detail or f"retry after {seconds} s")
        self.seconds = seconds


@dataclass(slots=True)
class Claimed:
    id: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int


def claim_due(db: Database, channels: set[str], limit: int = BATCH) -> list[Claimed]:
    """Claim the oldest due message of each recipient (in one short write transaction)."""
    now = utcnow()
    claimed: list[Claimed] = []
    with db.write() as session:
        pending = session.exec(
            select(OutboxDelivery)
            .where(
                OutboxDelivery.status == DeliveryStatus.pending,
                col(OutboxDelivery.channel).in_(sorted(channels)),
            )
            .order_by(col(OutboxDelivery.id))
            .limit(limit * 4)
        ).all()
        blocked: set[tuple[str, str]] = set()
        due_ids = []
        for row in pending:
            who = (str(row.channel), row.recipient)
            if who in blocked:
                continue
            blocked.add(who)  # later messages to this recipient wait for this one
            if row.next_attempt_at <= now:
                due_ids.append(row.id)
            if len(due_ids) >= limit:
                break
        if not due_ids:
            return []
        # Lock what we are about to take; another worker skips these rows (PostgreSQL).
        rows = session.exec(
            select(OutboxDelivery)
            .where(col(OutboxDelivery.id).in_(due_ids))
            .where(OutboxDelivery.status == DeliveryStatus.pending)
            .where(col(OutboxDelivery.next_attempt_at) <= now)
            .order_by(col(OutboxDelivery.id))
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            session.add(row)
            claimed.append(
                Claimed(
                    id=row.id or 0,
                    channel=str(row.channel),
                    recipient=row.recipient,
                    payload=dict(row.payload),
                    attempts=row.attempts,
                )
            )
    return claimed


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def record(db: Database, item: Claimed, error: BaseException | None) -> str:
    """Store the outcome of one attempt; returns the new status."""
    now = utcnow()
    with db.write() as session:
        row = session.get(OutboxDelivery, item.id)
        if row is None or row.status != DeliveryStatus.pending:
            return "gone"
        if error is None:
            row.status = DeliveryStatus.sent
            row.sent_at = now
            row.last_error = None
        elif isinstance(error, PermanentFailure) or now - row.created_at > GIVE_UP_AFTER:
            row.status = DeliveryStatus.failed
            row.last_error = f"{type(error).__name__}: {error}"[:500]
        else:
            wait = (
                timedelta(seconds=error.seconds)
                if isinstance(error, RetryLater)
                else _backoff(row.attempts)
            )
            row.next_attempt_at = now + wait
            row.last_error = f"{type(error).__name__}: {error}"[:500]
        session.add(row)
        return str(row.status)


async def deliver_due(db: Database, senders: dict[str, Sender]) -> int:
    """One round: claim due messages and send them; returns how many were sent."""
    items = await asyncio.to_thread(claim_due, db, set(senders))
    sent = 0
    for item in items:
        error: BaseException | None = None
        try:
            await senders[item.channel](item.recipient, item.payload)
        except Exception as exc:  # any failure is recorded and retried
            error = exc
        status = await asyncio.to_thread(record, db, item, error)
        if error is None:
            sent += 1
        else:
            # No recipient or text in the log: the delivery id is enough to find it.
            log.warning(
                "delivery %s via %s: attempt %s failed (%s), now %s",
                item.id,
                item.channel,
                item.attempts,
                type(error).__name__,
                status,
            )
    return sent


async def telegram_sender(settings: Settings) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    """A sender for Telegram chats (aiogram Bot on the configured API base) and its closer."""
    from aiogram.exceptions import (
        TelegramBadRequest,
        TelegramForbiddenError,
        TelegramNotFound,
        TelegramRetryAfter,
        TelegramUnauthorizedError,
    )

    from bot.app import build_bot
    from bot.delivery import deliver

    bot = build_bot(settings)

    async def send(recipient: str, payload: dict[str, Any]) -> None:
        try:
            await deliver(bot, recipient, payload)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.retry_after, "Telegram flood control") from exc
        except (TelegramForbiddenError, TelegramNotFound, TelegramBadRequest) as exc:
            raise PermanentFailure(exc.message) from exc
        except TelegramUnauthorizedError as exc:
            raise RuntimeError("the bot token was refused") from exc

    return send, bot.session.close


async def run_worker(
    db: Database, settings: Settings, stop: asyncio.Event, *, poll_seconds: float | None = None
) -> None:
    """Deliver until `stop` is set (in `hotline serve`'s event loop or `hotline worker`), and
    run the retention job on its schedule alongside."""
    retention = asyncio.create_task(run_retention_schedule(db, settings, stop), name="retention")
    try:
        await _deliver_until_stopped(db, settings, stop, poll_seconds=poll_seconds)
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention


async def _deliver_until_stopped(
    db: Database, settings: Settings, stop: asyncio.Event, *, poll_seconds: float | None = None
) -> None:
    senders: dict[str, Sender] = {}
    closers: list[Callable[[], Awaitable[None]]] = []
    if settings.telegram_bot_token is not None:
        send, close = await telegram_sender(settings)
        senders[Channel.telegram.value] = send
        closers.append(close)
    if not senders:
        log.info("outbox worker: no push channel configured (web chat collects its messages)")
        await stop.wait()
        return
    interval = poll_seconds if poll_seconds is not None else settings.worker_poll_seconds
    log.info("outbox worker started for %s", ", ".join(sorted(senders)))
    try:
        while not stop.is_set():
            try:
                sent = await deliver_due(db, senders)
            except Exception:  # the database may be briefly unavailable: keep the worker alive
                log.exception("outbox worker round failed")
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        for close in closers:
            await close()


# --- data retention ------------------------------------------------------------------------------

# The first run waits a little after start, so a restart loop or a short-lived test server
# never runs it; then it runs every `retention_interval_hours`.
RETENTION_FIRST_DELAY_SECONDS = 600.0


def retention_job(db: Database, settings: Settings, *, dry_run: bool = False) -> RetentionReport:
    """One run of the retention job (DSGVO): what the worker schedules and the CLI runs.
    It logs one line of counts, never names or texts."""
    return run_retention(
        db,
        log_retention_days=settings.log_retention_days,
        batch_size=settings.retention_batch_size,
        dry_run=dry_run,
    )


async def run_retention_schedule(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    *,
    first_delay: float = RETENTION_FIRST_DELAY_SECONDS,
) -> int:
    """Run the retention job every `retention_interval_hours` until `stop`; returns the number
    of runs. An interval of 0 turns it off (run `hotline retention run` from cron instead)."""
    interval = settings.retention_interval_hours * 3600
    if interval <= 0:
        return 0
    runs = 0
    delay = min(first_delay, interval)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return runs
        try:
            await asyncio.to_thread(retention_job, db, settings)
        except Exception as exc:  # keep the schedule alive; the type only (no row data)
            log.error("retention job failed: %s", type(exc).__name__)
        runs += 1
        delay = interval
