"""POST /telegram/webhook: the secret header, malformed updates, and handling an update."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from bot.app import make_webhook_router
from hotline.settings import Settings
from tests.bot.conftest import FakeBackend, TelegramChat
from tests.bot.fake_telegram import FakeTelegram

SECRET = "webhook-secret-for-tests"


@pytest.fixture
async def webhook(bot_settings: Settings, backend: FakeBackend) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(make_webhook_router(bot_settings, backend=backend))
    # Run the app's lifespan (merged with the router's), which closes the bot's session.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hotline") as client:
            yield client


def start_update(fake: FakeTelegram) -> dict[str, object]:
    chat = TelegramChat(None, None, fake)  # type: ignore[arg-type]
    return chat.message("/start")


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}])
async def test_wrong_or_missing_secret_is_refused(
    webhook: httpx.AsyncClient, fake_telegram: FakeTelegram, headers: dict[str, str]
) -> None:
    response = await webhook.post(
        "/telegram/webhook", json=start_update(fake_telegram), headers=headers
    )
    assert response.status_code == 401
    assert response.json()["code"] == "bad_webhook_secret"
    assert fake_telegram.sent() == []


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'{"message": {"text": "no update id"}}']
)
async def test_malformed_update_is_refused(
    webhook: httpx.AsyncClient, fake_telegram: FakeTelegram, backend: FakeBackend, body: bytes
) -> None:
    response = await webhook.post(
        "/telegram/webhook",
        content=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_update"
    assert fake_telegram.sent() == [] and backend.asks == []


async def test_update_is_handled_once(
    webhook: httpx.AsyncClient, fake_telegram: FakeTelegram
) -> None:
    update = start_update(fake_telegram)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for _ in range(2):
        response = await webhook.post("/telegram/webhook", json=update, headers=headers)
        assert response.status_code == 200
    texts = fake_telegram.texts()
    assert len(texts) == 2 and "Datenschutz" in texts[0] and "In welcher Stadt" in texts[1]


async def test_without_a_configured_secret_everything_is_refused(
    fake_telegram: FakeTelegram, backend: FakeBackend
) -> None:
    settings = Settings(
        env="test",  # type: ignore[arg-type]
        telegram_bot_token="123456:TEST-token",  # type: ignore[arg-type]
        telegram_api_base=fake_telegram.base_url,
        telegram_webhook_secret=None,
    )
    app = FastAPI()
    app.include_router(make_webhook_router(settings, backend=backend))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h"
    ) as client:
        response = await client.post(
            "/telegram/webhook",
            json=start_update(fake_telegram),
            headers={"X-Telegram-Bot-Api-Secret-Token": ""},
        )
    assert response.status_code == 401
