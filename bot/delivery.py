"""Outbound messages to a Telegram chat, called by the backend's outbox worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.conversation import Button, Reply
from bot.texts import status_name, t

if TYPE_CHECKING:  # aiogram is heavy to import; the web chat renders payloads without it
    from aiogram import Bot


class UnknownPayload(ValueError):
    """The outbox holds a payload kind this version cannot deliver."""


def render(payload: dict[str, Any]) -> Reply:
    """The message for an outbox payload (`kind` "reply" or "status")."""
    lang = "en" if payload.get("language") == "en" else "de"
    kind = payload.get("kind")
    reference = str(payload.get("reference", ""))
    if kind == "reply":
        return Reply(t("delivery_reply", lang, reference=reference, text=payload["text"]))
    if kind == "status":
        status = str(payload["status"])
        text = t("delivery_status", lang, reference=reference, status=status_name(status, lang))
        if status != "resolved":
            return Reply(text)
        row = [Button(str(n), f"rate:{reference}:{n}") for n in range(1, 6)]
        return Reply(f"{text}\n\n{t('delivery_rate', lang)}", [row])
    raise UnknownPayload(f"cannot deliver an outbox payload of kind {kind!r}")


async def deliver(bot: Bot, chat_id: str, payload: dict[str, Any]) -> None:
    """Send the payload to the chat; any Bot API or network error propagates so the worker
    retries later (the outbox deduplicates, so a retry after a lost answer is harmless)."""
    from bot.telegram import send_reply

    await send_reply(bot, chat_id, render(payload))
