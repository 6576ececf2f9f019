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

Staff notifications use the same machinery: the SLA escalation pass (services/escalation.py,
every `HOTLINE_SLA_CHECK_SECONDS`) writes e-mails (`city_email`, sent over SMTP) and webhook
calls (`city_webhook`, a signed JSON POST) for the responsible cities into the outbox.

Alongside the deliveries the worker runs the data-retention job (services/retention.py) every
`HOTLINE_RETENTION_INTERVAL_HOURS`. Its counters (deliveries, escalations) go to the app's
/metrics when it runs inside `hotline serve`; `hotline worker` serves its own on
`HOTLINE_WORKER_METRICS_PORT` when that is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlmodel import col, select

from hotline.db import Database, utcnow
from hotline.metrics import Metrics
from hotline.models import Channel, DeliveryStatus, OutboxDelivery
from hotline.services.escalation import (
    CITY_EMAIL,
    CITY_WEBHOOK,
    EscalationReport,
    email_message,
    escalate_overdue,
    message_id,
    sign,
    webhook_body,
)
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
    # Most rounds find nothing: look first without taking the write lock (SQLite).
    with db.read() as session:
        anything_due = session.exec(
            select(OutboxDelivery.id)
            .where(
                OutboxDelivery.status == DeliveryStatus.pending,
                col(OutboxDelivery.channel).in_(sorted(channels)),
                col(OutboxDelivery.next_attempt_at) <= now,
            )
            .limit(1)
        ).first()
    if anything_due is None:
        return []
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


async def deliver_due(
    db: Database, senders: dict[str, Sender], *, metrics: Metrics | None = None
) -> int:
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
        if metrics is not None:
            metrics.record_delivery(item.channel, status)
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


# --- staff notifications (SLA escalation) ------------------------------------------------------


def email_sender(settings: Settings) -> Sender:
    """A sender for e-mails to cities over the configured SMTP server (smtplib in a thread)."""

    async def send(recipient: str, payload: dict[str, Any]) -> None:
        message = email_message(payload, sender=settings.smtp_from)
        await asyncio.to_thread(_smtp_send, settings, message)

    return send


def citizen_email_sender(settings: Settings) -> Sender:
    """A sender for replies and status changes to citizens who left an e-mail address."""

    async def send(recipient: str, payload: dict[str, Any]) -> None:
        message = citizen_email(payload, recipient=recipient, sender=settings.smtp_from)
        await asyncio.to_thread(_smtp_send, settings, message)

    return send


_CITIZEN_SUBJECT = {
    "de": "Ihre Anfrage {reference} bei der Hotline",
    "en": "Your request {reference} at the hotline",
}
_CITIZEN_FOOTER = {
    "de": "Bitte antworten Sie nicht auf diese E-Mail. Ihre Vorgangsnummer: {reference}.",
    "en": "Please do not reply to this e-mail. Your reference: {reference}.",
}


def citizen_email(payload: dict[str, Any], *, recipient: str, sender: str) -> EmailMessage:
    """The e-mail for a citizen's outbox message (the same texts as the bot, in their language).

    Its Message-ID is derived from the reference and the message, so a retry after a lost
    server answer is recognisable as the same e-mail.
    """
    from bot.delivery import UnknownPayload
    from bot.texts import status_name, t

    lang = "en" if payload.get("language") == "en" else "de"
    reference = str(payload.get("reference", ""))
    kind = payload.get("kind")
    if kind == "reply":
        body = t("delivery_reply", lang, reference=reference, text=payload["text"])
        marker = f"m{payload.get('message_id', '')}"
    elif kind == "status":
        status = str(payload["status"])
        body = t("delivery_status", lang, reference=reference, status=status_name(status, lang))
        marker = f"s-{status}-{payload.get('version', '')}"
    else:
        raise PermanentFailure(str(UnknownPayload(f"cannot e-mail a payload of kind {kind!r}")))
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = _CITIZEN_SUBJECT[lang].format(reference=reference)
    msg["Message-ID"] = message_id(f"{reference}.{marker}", sender)
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(f"{body}\n\n-- \n{_CITIZEN_FOOTER[lang].format(reference=reference)}\n")
    return msg


def _smtp_send(settings: Settings, message: EmailMessage) -> None:
    host, port = settings.smtp_host or "", settings.smtp_port
    timeout = settings.smtp_timeout_seconds
    context = ssl.create_default_context()
    try:
        client = (
            smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            if settings.smtp_ssl
            else smtplib.SMTP(host, port, timeout=timeout)
        )
        with client:
            if not settings.smtp_ssl and settings.smtp_starttls:
                client.starttls(context=context)
            if settings.smtp_username:
                password = settings.smtp_password
                client.login(
                    settings.smtp_username, password.get_secret_value() if password else ""
                )
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        # The exception text names the address; the code is enough for the outbox row.
        raise PermanentFailure("the mail server refused the recipient") from exc
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        if 500 <= exc.smtp_code < 600:
            raise PermanentFailure(
                f"the mail server refused the message ({exc.smtp_code})"
            ) from exc
        raise RuntimeError(f"the mail server deferred the message ({exc.smtp_code})") from exc


def webhook_sender(settings: Settings) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    """A sender for webhook calls to cities (httpx), signed when HOTLINE_WEBHOOK_SECRET is set;
    and its closer. Failures never name the URL (it may hold a token)."""
    client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
    secret = settings.webhook_secret

    async def send(recipient: str, payload: dict[str, Any]) -> None:
        url = payload.get("webhook_url")
        if not url:
            raise PermanentFailure("the notification has no webhook address")
        body = webhook_body(payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "hotline-worker",
            "X-Hotline-Event": str(payload.get("kind", "")),
            "X-Hotline-Delivery": str(payload.get("id", "")),
        }
        if secret is not None:
            stamp = str(int(time.time()))
            headers["X-Hotline-Timestamp"] = stamp
            headers["X-Hotline-Signature"] = sign(secret.get_secret_value(), stamp, body)
        try:
            response = await client.post(str(url), content=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentFailure("the webhook address is not a valid http(s) URL") from exc
        except httpx.HTTPError as exc:
            raise ConnectionError(f"webhook unreachable ({type(exc).__name__})") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        retry_after = response.headers.get("retry-after", "")
        if status in (429, 503) and retry_after.isdigit():
            raise RetryLater(float(retry_after), f"the webhook answered {status}")
        if 300 <= status < 500 and status not in (408, 425, 429):
            raise PermanentFailure(f"the webhook answered {status}")
        raise RuntimeError(f"the webhook answered {status}")

    return send, client.aclose


async def run_worker(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    *,
    poll_seconds: float | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Deliver until `stop` is set (in `hotline serve`'s event loop or `hotline worker`), and
    run the retention job and the SLA escalation pass on their schedules alongside.

    `metrics`: the app's (in `hotline serve`); without, the worker keeps its own and serves
    them on HOTLINE_WORKER_METRICS_PORT when that is set."""
    server = None
    if metrics is None:
        metrics = Metrics()
        if settings.metrics_enabled and settings.worker_metrics_port:
            from prometheus_client import start_http_server

            server, _thread = start_http_server(
                settings.worker_metrics_port,
                addr=settings.worker_metrics_host,
                registry=metrics.registry,
            )
            log.info("worker metrics on port %s", settings.worker_metrics_port)
    side_jobs = [
        asyncio.create_task(run_retention_schedule(db, settings, stop), name="retention"),
        asyncio.create_task(
            run_escalation_schedule(db, settings, stop, metrics=metrics), name="sla-escalation"
        ),
    ]
    try:
        await _deliver_until_stopped(db, settings, stop, poll_seconds=poll_seconds, metrics=metrics)
    finally:
        for job in side_jobs:
            job.cancel()
        for job in side_jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if server is not None:
            server.shutdown()
            server.server_close()


async def _deliver_until_stopped(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    *,
    poll_seconds: float | None = None,
    metrics: Metrics | None = None,
) -> None:
    senders: dict[str, Sender] = {}
    closers: list[Callable[[], Awaitable[None]]] = []
    if settings.telegram_bot_token is not None:
        send, close = await telegram_sender(settings)
        senders[Channel.telegram.value] = send
        closers.append(close)
    # Notifications to cities (web-chat messages are not pushed: the page collects them).
    send, close = webhook_sender(settings)
    senders[CITY_WEBHOOK] = send
    closers.append(close)
    if settings.smtp_host:
        senders[CITY_EMAIL] = email_sender(settings)
        # Citizens who left only an e-mail address get replies and status changes by mail.
        senders[Channel.email.value] = citizen_email_sender(settings)
    interval = poll_seconds if poll_seconds is not None else settings.worker_poll_seconds
    log.info("outbox worker started for %s", ", ".join(sorted(senders)))
    try:
        while not stop.is_set():
            try:
                sent = await deliver_due(db, senders, metrics=metrics)
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


# --- SLA escalation ------------------------------------------------------------------------------


def escalation_job(db: Database, settings: Settings) -> EscalationReport:
    """One escalation pass: what the worker schedules. It logs counts per city key only."""
    report = escalate_overdue(
        db, public_url=settings.public_url, email_enabled=bool(settings.smtp_host)
    )
    if report.total:
        log.info(
            "sla escalation: %s ticket(s) escalated (%s), %s notification(s) queued",
            report.total,
            ", ".join(f"{city}={n}" for city, n in sorted(report.escalated.items())),
            report.notifications,
        )
    return report


async def run_escalation_schedule(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: Metrics | None = None,
    first_delay: float | None = None,
) -> int:
    """Run the escalation pass every `sla_check_seconds` until `stop`; returns the number of
    runs. The first run waits one interval (a short-lived process changes nothing); 0 = off."""
    interval = settings.sla_check_seconds
    if interval <= 0:
        return 0
    if not settings.smtp_host:
        log.info(
            "sla escalation: HOTLINE_SMTP_HOST is not set, cities are notified by webhook only"
        )
    runs = 0
    delay = interval if first_delay is None else first_delay
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return runs
        try:
            report = await asyncio.to_thread(escalation_job, db, settings)
        except Exception as exc:  # keep the schedule alive; the type only (no row data)
            log.error("sla escalation failed: %s", type(exc).__name__)
        else:
            if metrics is not None:
                metrics.record_escalations(report.escalated)
        runs += 1
        delay = interval
