"""The outbox worker: order per recipient, retries with backoff, permanent failures, leases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from hotline import worker
from hotline.db import Database, utcnow
from hotline.models import Channel, DeliveryStatus, OutboxDelivery


def _queue(
    db: Database, recipient: str, texts: list[str], channel: Channel = Channel.telegram
) -> None:
    with db.write() as session:
        for text in texts:
            session.add(
                OutboxDelivery(
                    channel=channel,
                    recipient=recipient,
                    payload={"kind": "reply", "text": text, "reference": "HL-2026-000001"},
                    dedup_key=f"{recipient}:{text}",
                )
            )


def _rows(db: Database) -> list[OutboxDelivery]:
    with db.read() as session:
        return list(session.exec(select(OutboxDelivery).order_by(col(OutboxDelivery.id))).all())


def _make_due(db: Database) -> None:
    with db.write() as session:
        for row in session.exec(select(OutboxDelivery)).all():
            row.next_attempt_at = utcnow() - timedelta(seconds=1)
            session.add(row)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.down = False
        self.blocked: set[str] = set()

    async def __call__(self, recipient: str, payload: dict[str, Any]) -> None:
        if recipient in self.blocked:
            raise worker.PermanentFailure("Forbidden: bot was blocked by the user")
        if self.down:
            raise ConnectionError("Bot API unreachable")
        self.sent.append((recipient, payload["text"]))


async def test_delivers_in_order_per_chat_once(db: Database) -> None:
    _queue(db, "1", ["a1", "a2", "a3"])
    _queue(db, "2", ["b1"])
    _queue(db, "web-session-1", ["w1"], channel=Channel.web)
    sender = Recorder()
    rounds = 0
    while await worker.deliver_due(db, {"telegram": sender}):
        rounds += 1
    assert [t for r, t in sender.sent if r == "1"] == ["a1", "a2", "a3"]
    assert [t for r, t in sender.sent if r == "2"] == ["b1"]
    assert rounds == 3  # one message per chat and round keeps each chat in order
    statuses = {r.dedup_key: r.status for r in _rows(db)}
    assert statuses["web-session-1:w1"] == DeliveryStatus.pending  # the web chat collects these
    assert all(s == DeliveryStatus.sent for k, s in statuses.items() if not k.startswith("web"))
    assert await worker.deliver_due(db, {"telegram": sender}) == 0
    assert len(sender.sent) == 4


async def test_outage_is_retried_with_backoff_and_order_kept(db: Database) -> None:
    _queue(db, "1", ["first", "second"])
    sender = Recorder()
    sender.down = True
    assert await worker.deliver_due(db, {"telegram": sender}) == 0
    first, second = _rows(db)
    assert first.status == DeliveryStatus.pending and first.attempts == 1
    assert first.next_attempt_at > utcnow()  # backoff
    assert "ConnectionError" in (first.last_error or "")
    assert second.attempts == 0  # waits behind the first message of its chat
    # Not due yet: nothing happens, even when the channel is back.
    sender.down = False
    assert await worker.deliver_due(db, {"telegram": sender}) == 0
    _make_due(db)
    while await worker.deliver_due(db, {"telegram": sender}):
        pass
    assert sender.sent == [("1", "first"), ("1", "second")]


async def test_backoff_grows_and_is_capped() -> None:
    delays = [worker._backoff(n).total_seconds() for n in range(1, 10)]
    assert delays[:4] == [1, 2, 4, 8]
    assert max(delays) == worker.MAX_BACKOFF_SECONDS


async def test_permanent_failure_is_not_retried(db: Database) -> None:
    _queue(db, "7", ["x", "y"])
    sender = Recorder()
    sender.blocked.add("7")
    await worker.deliver_due(db, {"telegram": sender})
    await worker.deliver_due(db, {"telegram": sender})
    rows = _rows(db)
    assert [r.status for r in rows] == [DeliveryStatus.failed, DeliveryStatus.failed]
    assert sender.sent == []


async def test_claim_leases_rows_so_a_second_worker_skips_them(db: Database) -> None:
    _queue(db, "1", ["m1"])
    _queue(db, "2", ["m2"])
    first = worker.claim_due(db, {"telegram"})
    second = worker.claim_due(db, {"telegram"})
    assert {c.recipient for c in first} == {"1", "2"}
    assert second == []  # leased: a crashed worker's rows come back only after the lease
    assert all(r.next_attempt_at > utcnow() + timedelta(seconds=30) for r in _rows(db))
