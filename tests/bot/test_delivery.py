"""Outbound messages: staff replies and status changes in the citizen's chat."""

from __future__ import annotations

import pytest
from aiogram import Bot

from bot.delivery import UnknownPayload, deliver
from tests.bot.fake_telegram import FakeTelegram


async def test_reply_is_sent_with_the_reference(bot: Bot, fake_telegram: FakeTelegram) -> None:
    payload = {
        "kind": "reply",
        "reference": "HL-2026-000123",
        "language": "de",
        "text": "Hallo!",
        "message_id": 7,
    }
    await deliver(bot, "4242", payload)
    (sent,) = fake_telegram.sent("4242")
    assert sent["text"] == "Antwort der Hotline zu HL-2026-000123:\n\nHallo!"


async def test_status_in_words_and_rating_buttons_when_resolved(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await deliver(
        bot,
        "4242",
        {"kind": "status", "reference": "HL-2026-000123", "language": "de", "status": "waiting"},
    )
    await deliver(
        bot,
        "4242",
        {"kind": "status", "reference": "HL-2026-000123", "language": "en", "status": "resolved"},
    )
    waiting, resolved = fake_telegram.sent("4242")
    assert waiting["text"] == "Ihre Anfrage HL-2026-000123: wartet auf Ihre Rückmeldung."
    assert "reply_markup" not in waiting
    assert resolved["text"].startswith("Your request HL-2026-000123: resolved.")
    buttons = resolved["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
    assert buttons[4]["callback_data"] == "rate:HL-2026-000123:5"


async def test_failures_are_raised_for_the_worker_to_retry(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.down = "503"
    with pytest.raises(Exception, match="Service Unavailable"):
        await deliver(bot, "4242", {"kind": "reply", "reference": "HL-1", "text": "x"})
    fake_telegram.down = None
    with pytest.raises(UnknownPayload):
        await deliver(bot, "4242", {"kind": "carrier-pigeon", "reference": "HL-1"})
    assert fake_telegram.sent() == []
