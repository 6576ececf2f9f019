"""End to end: the real backend (uvicorn on 127.0.0.1), the real HttpBackend and a real aiogram
Bot against the stand-in Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiogram import Bot
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from sqlmodel import select

from bot.app import build_dispatcher, run_polling
from bot.backend import HttpBackend, Requester, TicketDraft, Turn
from hotline import worker
from hotline.db import Database, utcnow
from hotline.models import KBAsk, KBEntry, OutboxDelivery, Service
from hotline.settings import Settings
from tests.bot.conftest import TelegramChat, make_settings
from tests.bot.fake_telegram import FakeTelegram
from tests.conftest import LiveServer, World

pytestmark = pytest.mark.db

ENTRIES = [
    (
        "bayernid-benutzername",
        "BayernID-Benutzername vergessen",
        "bayernid",
        [
            "Ich weiß meinen Benutzernamen für die BayernID nicht mehr.",
            "Wie finde ich meinen BayernID-Benutzernamen heraus?",
            "Benutzername der BayernID vergessen, was nun?",
        ],
        "Wählen Sie auf der Anmeldeseite der BayernID den Link „Benutzername vergessen?“.",
    ),
    (
        "bayernid-konto-gesperrt",
        "BayernID-Konto gesperrt",
        "bayernid",
        [
            "Mein BayernID-Konto ist gesperrt.",
            "Warum ist mein BayernID-Konto gesperrt?",
            "Konto nach falschen Passwörtern gesperrt",
        ],
        "Nach mehreren falschen Passwörtern wird das Konto für 15 Minuten gesperrt.",
    ),
    (
        "bayernid-konto-loeschen",
        "BayernID-Konto löschen",
        "bayernid",
        [
            "Wie lösche ich mein BayernID-Konto?",
            "BayernID-Konto löschen",
            "Ich möchte mein Konto bei der BayernID auflösen.",
        ],
        "Melden Sie sich an und wählen Sie „Konto löschen“.",
    ),
    (
        "epayment-zahlung-fehlgeschlagen",
        "Online-Zahlung fehlgeschlagen",
        "epayment",
        [
            "Meine Zahlung ist fehlgeschlagen.",
            "Die Online-Bezahlung hat nicht funktioniert.",
            "Zahlung mit Kreditkarte abgebrochen",
        ],
        "Prüfen Sie, ob der Betrag abgebucht wurde; wenn nicht, zahlen Sie erneut.",
    ),
]
HANDOVER_QUESTION = "Wo kann ich meinen Hund anmelden?"


@pytest.fixture
def kb_world(db: Database, world: World) -> World:
    with db.write() as session:
        services = {s.key: s.id for s in session.exec(select(Service)).all()}
        for key, title, service, questions, answer in ENTRIES:
            session.add(
                KBEntry(
                    key=key,
                    title=title,
                    questions=questions,
                    answer=answer,
                    service_id=services[service],
                )
            )
    return world


@pytest.fixture
async def http_backend(live_server: LiveServer, kb_world: World) -> AsyncIterator[HttpBackend]:
    async with HttpBackend(live_server.url, kb_world.network_token) as backend:
        yield backend


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{live_server.url}/api/v1") as client:
        yield client


@pytest.fixture
def e2e_chat(
    bot_settings: Settings, http_backend: HttpBackend, bot: Bot, fake_telegram: FakeTelegram
) -> TelegramChat:
    return TelegramChat(build_dispatcher(bot_settings, http_backend), bot, fake_telegram)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the bot")
        await asyncio.sleep(0.02)


async def test_polling_start_question_answer_helped(
    fake_telegram: FakeTelegram, http_backend: HttpBackend, db: Database
) -> None:
    settings = make_settings(fake_telegram)
    polling = asyncio.create_task(run_polling(settings, backend=http_backend, handle_signals=False))
    chat = TelegramChat(None, None, fake_telegram)  # type: ignore[arg-type]
    texts: Callable[[], list[str]] = lambda: fake_telegram.texts(chat.chat_id)  # noqa: E731
    try:
        fake_telegram.queue_update(chat.message("/start"))
        await until(lambda: any("In welcher Stadt" in t for t in texts()))
        fake_telegram.queue_update(chat.callback("München"))
        await until(lambda: any("Wie kann ich helfen" in t for t in texts()))
        fake_telegram.queue_update(chat.message("Ich habe meinen BayernID-Benutzernamen vergessen"))
        await until(lambda: "Hat das geholfen?" in texts())
        assert "Link „Benutzername vergessen?“" in texts()[-2]
        fake_telegram.queue_update(chat.callback("Ja"))
        await until(lambda: any("Schön, dass ich helfen konnte" in t for t in texts()))
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    assert fake_telegram.calls_of("deleteWebhook")
    assert fake_telegram.calls_of("answerCallbackQuery")
    with db.read() as session:
        (ask,) = session.exec(select(KBAsk)).all()
        assert ask.decision == "answer" and ask.helped is True


async def test_question_suggestions_choose_one(e2e_chat: TelegramChat, db: Database) -> None:
    await e2e_chat.say("/start")
    await e2e_chat.press("Augsburg")
    texts = await e2e_chat.say("BayernID Konto")
    assert "Meinten Sie" in texts[0]
    assert set(e2e_chat.buttons()) == {
        "BayernID-Konto löschen",
        "BayernID-Konto gesperrt",
        "Nichts davon",
    }
    texts = await e2e_chat.press("BayernID-Konto gesperrt")
    assert texts == [
        "Nach mehreren falschen Passwörtern wird das Konto für 15 Minuten gesperrt.",
        "Hat das geholfen?",
    ]
    with db.read() as session:
        (ask,) = session.exec(select(KBAsk)).all()
        assert ask.chosen_entry_key == "bayernid-konto-gesperrt"


async def test_a_question_about_another_body_names_it_before_the_choices(
    e2e_chat: TelegramChat, api: httpx.AsyncClient, kb_world: World
) -> None:
    # The real matcher finds the payment entry, whose variants never name a savings bank.
    question = "Meine Zahlung mit der Sparkassen-Karte ist fehlgeschlagen"
    response = await api.post(
        "/kb/ask",
        json={"question": question, "city": "augsburg"},
        headers=kb_world.headers(),
    )
    data = response.json()
    assert (data["entry"]["id"], data["reason"]) == ("epayment-zahlung-fehlgeschlagen", "other_body")
    assert data["other_bodies"] == ["Sparkasse"]
    await e2e_chat.say("/start")
    await e2e_chat.press("Augsburg")
    texts = await e2e_chat.say(question)
    assert texts[0].startswith("Ihre Frage scheint eine andere Stelle zu betreffen („Sparkasse“).")
    assert "Meinten Sie" in texts[1] or "an die Hotline weitergeben" in texts[1]


async def hand_over(chat: TelegramChat) -> str:
    await chat.say("/start")
    await chat.press("Andere Stadt")
    await chat.press("Ohne Angabe weiter")
    texts = await chat.say(HANDOVER_QUESTION)
    assert "an die Hotline weitergeben" in texts[0]
    texts = await chat.press("Ja, an die Hotline")
    assert "richtige Stadt" in texts[0]
    texts = await chat.press("Augsburg")
    assert "Um welchen Online-Dienst" in texts[-1]
    assert chat.buttons() == ["BayernID", "ePayment", "Weiß nicht"]
    await chat.press("Weiß nicht")
    texts = await chat.press("Überspringen")
    assert "Aktenzeichen: HL-" in texts[0]
    return texts[0].split("Aktenzeichen: ")[1].split("\n")[0]


async def test_handover_ticket_with_transcript_then_staff_reply_reaches_the_chat(
    e2e_chat: TelegramChat,
    bot_settings: Settings,
    api: httpx.AsyncClient,
    kb_world: World,
    db: Database,
    bot: Bot,
    fake_telegram: FakeTelegram,
) -> None:
    reference = await hand_over(e2e_chat)
    headers = kb_world.headers()
    ticket = (await api.get(f"/tickets/{reference}", headers=headers)).json()
    assert ticket["origin_city"] == "augsburg" and ticket["channel"] == "telegram"
    assert ticket["subject"] == HANDOVER_QUESTION
    assert ticket["requester"]["telegram_chat_id"] == str(e2e_chat.chat_id)
    city_names = {"muenchen": "München", "augsburg": "Augsburg", "nuernberg": "Nürnberg"}
    created_text = next(t for t in fake_telegram.texts(e2e_chat.chat_id) if reference in t)
    assert f"Zuständig: {city_names[ticket['responsible_city']]}" in created_text
    if ticket["sla"]["first_response_due"]:
        assert " Uhr" in created_text
    messages = (await api.get(f"/tickets/{reference}/messages", headers=headers)).json()
    transcript = next(m["body"] for m in messages if m["kind"] == "bot")
    assert f"Bürger/in: {HANDOVER_QUESTION}" in transcript
    assert "Bot: Dazu habe ich leider keine passende Antwort" in transcript

    # A follow-up goes to the ticket, not to the matcher.
    texts = await e2e_chat.say("Es geht um einen Dackel.")
    assert texts == [f"Danke, ich habe Ihre Nachricht an die Anfrage {reference} angehängt."]
    messages = (await api.get(f"/tickets/{reference}/messages", headers=headers)).json()
    assert [m["body"] for m in messages if m["kind"] == "citizen"][-1] == "Es geht um einen Dackel."

    # A staff reply through the API is queued in the outbox and delivered to this chat.
    reply = await api.post(
        f"/tickets/{reference}/messages",
        json={"kind": "reply", "body": "Die Hundesteuer melden Sie beim Steueramt an."},
        headers=kb_world.headers(ticket["responsible_city"]),
    )
    assert reply.status_code == 201, reply.text
    with db.read() as session:
        rows = session.exec(select(OutboxDelivery).order_by(OutboxDelivery.id)).all()  # type: ignore[arg-type]
        outbox = [(r.recipient, dict(r.payload)) for r in rows if r.payload.get("kind") == "reply"]
    assert len(outbox) == 1
    recipient, _ = outbox[0]
    assert recipient == str(e2e_chat.chat_id)
    # The outbox worker delivers it with the real aiogram client.
    send, close = await worker.telegram_sender(bot_settings)
    try:
        assert await worker.deliver_due(db, {"telegram": send}) == 1
        assert await worker.deliver_due(db, {"telegram": send}) == 0
    finally:
        await close()
    assert fake_telegram.texts(e2e_chat.chat_id)[-1] == (
        f"Antwort der Hotline zu {reference}:\n\nDie Hundesteuer melden Sie beim Steueramt an."
    )


async def test_same_update_twice_makes_one_ticket_and_one_message(
    e2e_chat: TelegramChat,
    bot_settings: Settings,
    http_backend: HttpBackend,
    api: httpx.AsyncClient,
    kb_world: World,
    bot: Bot,
    fake_telegram: FakeTelegram,
) -> None:
    await e2e_chat.say("/start")
    await e2e_chat.press("München")
    await e2e_chat.say(HANDOVER_QUESTION)
    await e2e_chat.press("Ja, an die Hotline")
    await e2e_chat.press("Weiß nicht")
    final = e2e_chat.callback("Überspringen")
    first = await e2e_chat.feed(final)
    assert await e2e_chat.feed(final) == []
    reference = first[0].split("Aktenzeichen: ")[1].split("\n")[0]
    mine = await api.get(
        "/citizen/tickets",
        params={"telegram_chat_id": str(e2e_chat.chat_id)},
        headers=kb_world.headers(),
    )
    assert [t["reference"] for t in mine.json()] == [reference]

    # Two bot processes sharing the conversation state, each seeing the update once: the
    # backend's idempotency key keeps it to one message.
    key = StorageKey(bot_id=bot.id, chat_id=e2e_chat.chat_id, user_id=e2e_chat.chat_id)
    storage = MemoryStorage()
    await storage.set_data(key, await e2e_chat.dp.storage.get_data(key))
    update = e2e_chat.message("Nachtrag zur Anfrage")
    for _ in range(2):
        chat = TelegramChat(
            build_dispatcher(bot_settings, http_backend, storage=storage), bot, fake_telegram
        )
        assert await chat.feed(update) == [
            f"Danke, ich habe Ihre Nachricht an die Anfrage {reference} angehängt."
        ]
    messages = (await api.get(f"/tickets/{reference}/messages", headers=kb_world.headers())).json()
    assert [m["body"] for m in messages].count("Nachtrag zur Anfrage") == 1

    # The same holds for the ticket itself.
    draft = TicketDraft(
        subject="Doppelt?", body="Doppelt?", language="de", transcript=[Turn("citizen", "Doppelt?")]
    )
    who = Requester("telegram", telegram_chat_id="5555")
    one = await http_backend.create_ticket(draft, who, idempotency_key="tg-424242")
    two = await http_backend.create_ticket(draft, who, idempotency_key="tg-424242")
    assert one.reference == two.reference


async def test_delivery_waits_for_the_bot_api_to_come_back(
    e2e_chat: TelegramChat,
    bot_settings: Settings,
    api: httpx.AsyncClient,
    kb_world: World,
    db: Database,
    bot: Bot,
    fake_telegram: FakeTelegram,
) -> None:
    reference = await hand_over(e2e_chat)
    ticket = (await api.get(f"/tickets/{reference}", headers=kb_world.headers())).json()
    await api.post(
        f"/tickets/{reference}/messages",
        json={"kind": "reply", "body": "Bitte wenden Sie sich an das Steueramt."},
        headers=kb_world.headers(ticket["responsible_city"]),
    )
    with db.read() as session:
        row = next(
            r
            for r in session.exec(select(OutboxDelivery)).all()
            if r.payload.get("kind") == "reply"
        )
        recipient = row.recipient
    sent_before = len(fake_telegram.sent(recipient))
    send, close = await worker.telegram_sender(bot_settings)

    def make_due() -> None:
        with db.write() as session:
            for row in session.exec(select(OutboxDelivery)).all():
                row.next_attempt_at = utcnow()
                session.add(row)

    def attempts() -> tuple[str, int]:
        with db.read() as session:
            row = session.exec(
                select(OutboxDelivery).where(OutboxDelivery.recipient == recipient)
            ).one()
            return str(row.status), row.attempts

    try:
        # The Bot API answers 503, then refuses connections: the worker keeps the message.
        fake_telegram.down = "503"
        assert await worker.deliver_due(db, {"telegram": send}) == 0
        assert attempts() == ("pending", 1)
        make_due()
        await fake_telegram.refuse_connections()
        assert await worker.deliver_due(db, {"telegram": send}) == 0
        assert attempts() == ("pending", 2)
        # Back again: delivered exactly once.
        await fake_telegram.accept_connections()
        fake_telegram.down = None
        make_due()
        assert await worker.deliver_due(db, {"telegram": send}) == 1
        make_due()
        assert await worker.deliver_due(db, {"telegram": send}) == 0
    finally:
        await close()
    assert attempts() == ("sent", 3)
    delivered = fake_telegram.texts(recipient)[sent_before:]
    assert delivered == [
        f"Antwort der Hotline zu {reference}:\n\nBitte wenden Sie sich an das Steueramt."
    ]


async def test_the_server_runs_the_bot_and_delivers_replies_itself(
    fake_telegram: FakeTelegram, settings: Settings, kb_world: World, db: Database
) -> None:
    """What `make run` does with TELEGRAM_BOT_TOKEN set: the server polls Telegram in-process
    (talking to its own API) and its outbox worker delivers staff replies to the chat."""
    served = settings.model_copy(
        update={
            "telegram_bot_token": make_settings(fake_telegram).telegram_bot_token,
            "telegram_api_base": fake_telegram.base_url,
            "worker_poll_seconds": 0.1,
            "chat_rate_limit_per_minute": 1_000,
        }
    )
    chat = TelegramChat(None, None, fake_telegram)  # type: ignore[arg-type]
    texts: Callable[[], list[str]] = lambda: fake_telegram.texts(chat.chat_id)  # noqa: E731
    with LiveServer(served) as server:
        fake_telegram.queue_update(chat.message("/start"))
        await until(lambda: any("In welcher Stadt" in t for t in texts()))
        fake_telegram.queue_update(chat.callback("Augsburg"))
        await until(lambda: any("Wie kann ich helfen" in t for t in texts()))
        fake_telegram.queue_update(chat.message(HANDOVER_QUESTION))
        await until(lambda: any("an die Hotline" in b for b in _button_labels(fake_telegram)))
        fake_telegram.queue_update(chat.callback("Ja, an die Hotline"))
        await until(lambda: "Weiß nicht" in _button_labels(fake_telegram))
        fake_telegram.queue_update(chat.callback("Weiß nicht"))
        await until(lambda: "Überspringen" in _button_labels(fake_telegram))
        fake_telegram.queue_update(chat.callback("Überspringen"))
        await until(lambda: any("Aktenzeichen: HL-" in t for t in texts()))
        created = next(t for t in texts() if "Aktenzeichen: " in t)
        reference = created.split("Aktenzeichen: ")[1].split("\n")[0]
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1") as api:
            ticket = (await api.get(f"/tickets/{reference}", headers=kb_world.headers())).json()
            reply = await api.post(
                f"/tickets/{reference}/messages",
                json={"kind": "reply", "body": "Das Steueramt hilft Ihnen weiter."},
                headers=kb_world.headers(ticket["responsible_city"]),
            )
            assert reply.status_code == 201
        await until(lambda: any("Das Steueramt hilft Ihnen weiter." in t for t in texts()))
    assert sum("Das Steueramt hilft Ihnen weiter." in t for t in texts()) == 1


def _button_labels(fake: FakeTelegram) -> list[str]:
    labels: list[str] = []
    for call in fake.sent():
        markup = call.get("reply_markup") or {}
        if isinstance(markup, str):
            markup = json.loads(markup)
        for row in markup.get("inline_keyboard", []):
            labels += [b["text"] for b in row]
    return labels
