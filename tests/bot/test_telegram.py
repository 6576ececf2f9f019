"""The Telegram handlers with a real aiogram Bot on the stand-in server and a fake backend."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Dispatcher

from bot.app import build_dispatcher
from bot.backend import BackendError, Requester
from bot.limits import MemoryRateLimiter
from tests.bot.conftest import FakeBackend, TelegramChat, answer, make_settings, suggest
from tests.bot.fake_telegram import FakeTelegram


async def start_in(chat: TelegramChat, city: str = "Augsburg") -> None:
    await chat.say("/start")
    await chat.press(city)


async def test_start_greets_with_privacy_notice_and_asks_the_city(chat: TelegramChat) -> None:
    texts = await chat.say("/start")
    assert "Datenschutz" in texts[0]
    assert "180 Tagen" in texts[0] and "30 Tagen" in texts[0] and "/loeschen" in texts[0]
    for command in ("/stadt", "/status", "/neu", "/hilfe"):
        assert command in texts[0]
    assert "In welcher Stadt" in texts[1]
    assert chat.buttons() == ["München", "Augsburg", "Nürnberg", "Andere Stadt"]


async def test_city_button_is_remembered_and_used_for_matching(
    chat: TelegramChat, backend: FakeBackend, fake_telegram: FakeTelegram
) -> None:
    await chat.say("/start")
    texts = await chat.press("Nürnberg")
    assert "Nürnberg" in texts[0]
    # The buttons are gone from the question once one was chosen, and the choice is shown.
    edit = fake_telegram.calls_of("editMessageText")[-1]
    assert edit["text"].endswith("→ Nürnberg") and "reply_markup" not in edit
    assert fake_telegram.calls_of("answerCallbackQuery")
    await chat.say("Wie beantrage ich einen Ausweis?")
    assert backend.asks[-1]["city"] == "nuernberg"
    assert backend.asks[-1]["requester"] == Requester("telegram", telegram_chat_id="4242")


async def test_postcode_sets_the_city_and_unknown_postcode_is_explained(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    await chat.say("/start")
    texts = await chat.say("12345")
    assert "12345" in texts[0] and "keiner Stadt" in texts[0]
    texts = await chat.say("86150")
    assert "Augsburg" in texts[0]
    await chat.say("Frage zum Ausweis")
    assert backend.asks[-1]["city"] == "augsburg"
    texts = await chat.say("/stadt")
    await chat.press("Andere Stadt")
    texts = await chat.say("80331")
    assert "München" in texts[0]


async def test_question_before_the_city_is_answered_after_it(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    entry = backend.entry("pw", "Passwort vergessen", "Klicken Sie auf „Passwort vergessen“.")
    backend.on("passwort", answer(entry))
    texts = await chat.say("Passwort vergessen, was tun?")
    # Without /start first, the privacy notice still comes first.
    assert "Datenschutz" in texts[0] and "Bevor ich antworte" in texts[1]
    texts = await chat.press("München")
    assert "Klicken Sie auf „Passwort vergessen“." in texts
    assert backend.asks[-1]["city"] == "muenchen"


async def test_answer_then_helped(chat: TelegramChat, backend: FakeBackend) -> None:
    entry = backend.entry("pw", "Passwort vergessen", "Klicken Sie auf „Passwort vergessen“.")
    backend.on("passwort", answer(entry))
    await start_in(chat)
    texts = await chat.say("Ich habe mein Passwort vergessen")
    assert texts == ["Klicken Sie auf „Passwort vergessen“.", "Hat das geholfen?"]
    assert chat.buttons() == ["Ja", "Nein"]
    texts = await chat.press("Ja")
    assert "Schön" in texts[0]
    assert backend.feedback_given == [(1, True)]
    assert backend.tickets == {}


async def test_suggestions_then_choose_one(chat: TelegramChat, backend: FakeBackend) -> None:
    one = backend.entry("a", "Konto gesperrt", "Warten Sie 15 Minuten.")
    two = backend.entry("b", "Konto löschen", "Unter Einstellungen → Konto löschen.")
    backend.on("konto", suggest(one, two))
    await start_in(chat)
    texts = await chat.say("Problem mit dem Konto")
    assert "Meinten Sie" in texts[0]
    assert chat.buttons() == ["Konto gesperrt", "Konto löschen", "Nichts davon"]
    texts = await chat.press("Konto löschen")
    assert texts == ["Unter Einstellungen → Konto löschen.", "Hat das geholfen?"]
    assert backend.choices == [(1, "b")]


async def test_handover_collects_service_and_email_and_opens_a_ticket(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    one = backend.entry("a", "Konto gesperrt", "Warten Sie 15 Minuten.", service=None)
    two = backend.entry("b", "Konto löschen", "Unter Einstellungen.", service=None)
    backend.on("konto", suggest(one, two))
    await start_in(chat, "Augsburg")
    await chat.say("Mein Konto macht Probleme")
    texts = await chat.press("Nichts davon")
    assert "an die Hotline weitergeben" in texts[0]
    texts = await chat.press("Ja, an die Hotline")
    assert "Um welchen Online-Dienst" in texts[0]
    assert chat.buttons() == ["BayernID", "ePayment", "Weiß nicht"]
    texts = await chat.press("ePayment")
    assert "E-Mail" in texts[0]
    texts = await chat.say("keine mail")
    assert "sieht nicht wie eine E-Mail-Adresse aus" in texts[0]
    texts = await chat.say("erika@example.org")
    assert "Aktenzeichen: HL-2026-000001" in texts[0]
    assert "Zuständig: Augsburg" in texts[0]
    # 12:00 UTC in May is 14:00 in Berlin.
    assert "Di. 12.05.2026, 14:00 Uhr" in texts[0]
    (ticket,) = backend.tickets.values()
    draft = ticket.draft
    assert draft.subject == "Mein Konto macht Probleme"
    assert draft.origin_city == "augsburg" and draft.service == "epayment"
    assert draft.email == "erika@example.org" and draft.language == "de"
    assert [o.entry for o in draft.kb_offers] == ["a", "b"]
    assert {o.decision for o in draft.kb_offers} == {"suggest"}
    roles = [turn.role for turn in draft.transcript]
    assert roles[0] == "citizen" and "bot" in roles
    assert draft.transcript[0].text == "Mein Konto macht Probleme"
    assert any(turn.text == "Nichts davon" for turn in draft.transcript)
    assert ticket.requester == Requester("telegram", telegram_chat_id="4242")


async def test_none_of_the_suggestions_means_the_service_is_asked(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    wrong = backend.entry("p", "Bewohnerparkausweis verlängern", "…", service="bewohnerparken")
    backend.on("angelschein", suggest(wrong))
    await start_in(chat, "Augsburg")
    await chat.say("Angelschein online verlängern")
    await chat.press("Nichts davon")
    texts = await chat.press("Ja, an die Hotline")
    assert "Um welchen Online-Dienst" in texts[0]
    await chat.press("Weiß nicht")
    await chat.press("Überspringen")
    (ticket,) = backend.tickets.values()
    assert ticket.draft.service is None


async def test_handover_without_city_asks_it_and_skips_service_when_known(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    entry = backend.entry("pw", "Passwort", "So geht es.", service="bayernid")
    backend.on("passwort", answer(entry))
    await chat.say("/start")
    await chat.press("Andere Stadt")
    await chat.press("Ohne Angabe weiter")
    await chat.say("Passwort geht nicht")
    await chat.press("Nein")
    assert backend.feedback_given == [(1, False)]
    texts = await chat.press("Ja, an die Hotline")
    assert "richtige Stadt" in texts[0]
    texts = await chat.press("Nürnberg")
    assert "E-Mail" in texts[-1]  # the service is known from the answer
    texts = await chat.press("Überspringen")
    assert "Aktenzeichen" in texts[0]
    (ticket,) = backend.tickets.values()
    assert ticket.draft.origin_city == "nuernberg" and ticket.draft.service == "bayernid"
    assert ticket.draft.email is None
    assert ticket.draft.kb_offers[0].decision == "answer"


async def handover(chat: TelegramChat) -> str:
    await start_in(chat)
    await chat.say("Etwas ganz Seltenes")
    await chat.press("Ja, an die Hotline")
    await chat.press("Weiß nicht")
    texts = await chat.press("Überspringen")
    return texts[0].split("Aktenzeichen: ")[1].split("\n")[0]


async def test_follow_up_text_is_appended_to_the_ticket(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    reference = await handover(chat)
    asks = len(backend.asks)
    texts = await chat.say("Noch eine Ergänzung")
    assert texts == [f"Danke, ich habe Ihre Nachricht an die Anfrage {reference} angehängt."]
    assert backend.tickets[reference].messages == ["Noch eine Ergänzung"]
    assert len(backend.asks) == asks  # the bot does not answer on its own
    texts = await chat.say("/neu")
    assert "neue Frage" in texts[0]
    await chat.say("Eine neue Frage")
    assert len(backend.asks) == asks + 1


async def test_text_to_a_closed_ticket_becomes_a_new_question(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    reference = await handover(chat)
    backend.tickets[reference].status = "closed"
    texts = await chat.say("Wieder ein Problem")
    assert "bereits abgeschlossen" in texts[0]
    assert backend.asks[-1]["question"] == "Wieder ein Problem"
    assert "an die Hotline weitergeben" in texts[-1]


async def test_redelivered_update_creates_one_ticket(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    await start_in(chat)
    await chat.say("Etwas ganz Seltenes")
    await chat.press("Ja, an die Hotline")
    await chat.press("Weiß nicht")
    update = chat.callback("Überspringen")
    first = await chat.feed(update)
    again = await chat.feed(update)
    assert "Aktenzeichen" in first[0] and again == []
    assert len(backend.tickets) == 1
    follow_up = chat.message("Nachtrag")
    await chat.feed(follow_up)
    await chat.feed(follow_up)
    (ticket,) = backend.tickets.values()
    assert ticket.messages == ["Nachtrag"]


async def test_status_lists_tickets_in_words(chat: TelegramChat, backend: FakeBackend) -> None:
    texts = await chat.say("/status")
    assert "keine Anfragen" in texts[0]
    reference = await handover(chat)
    backend.tickets[reference].status = "waiting"
    texts = await chat.say("/status")
    assert f"{reference} – wartet auf Ihre Rückmeldung – Augsburg" in texts[0]


async def test_erase_asks_for_confirmation(chat: TelegramChat, backend: FakeBackend) -> None:
    await handover(chat)
    texts = await chat.say("/loeschen")
    assert "wirklich löschen" in texts[0]
    texts = await chat.press("Nein, behalten")
    assert "nichts gelöscht" in texts[0] and backend.erased == []
    await chat.say("/loeschen")
    texts = await chat.press("Ja, löschen")
    assert "1 Anfrage(n) anonymisiert" in texts[0]
    assert backend.erased == [Requester("telegram", telegram_chat_id="4242")]
    # The conversation starts afresh: privacy notice, no ticket attached, the city again.
    texts = await chat.say("Neue Frage")
    assert "Datenschutz" in texts[0] and "Bevor ich antworte" in texts[1]


async def test_rating_callback(chat: TelegramChat, backend: FakeBackend) -> None:
    reference = await handover(chat)
    texts = await chat.feed(chat.callback_data(f"rate:{reference}:4"))
    assert "sobald Ihre Anfrage" in texts[0]
    backend.tickets[reference].status = "resolved"
    texts = await chat.feed(chat.callback_data(f"rate:{reference}:4"))
    assert "4 von 5" in texts[0]
    assert backend.tickets[reference].rating == 4
    texts = await chat.feed(chat.callback_data("rate:HL-2026-999999:5"))
    assert "nicht zuordnen" in texts[0]


async def test_stale_button_is_explained(chat: TelegramChat) -> None:
    await start_in(chat)
    texts = await chat.feed(chat.callback_data("fb:yes"))
    assert "nicht mehr aktuell" in texts[0]


@pytest.mark.parametrize(
    "content",
    [
        {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]},
        {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 2}},
        {
            "sticker": {
                "file_id": "s",
                "file_unique_id": "s",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            }
        },
        {"location": {"latitude": 48.1, "longitude": 11.5}},
    ],
)
async def test_non_text_is_explained(chat: TelegramChat, content: dict[str, Any]) -> None:
    texts = await chat.feed(chat.message(**content))
    assert "nur Textnachrichten" in texts[0]


def document(file_id: str, size: int, name: str = "bescheid.pdf") -> dict[str, Any]:
    return {
        "document": {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": name,
            "mime_type": "application/pdf",
            "file_size": size,
        }
    }


async def test_documents_are_attached_to_the_ticket_up_to_the_limit(
    chat: TelegramChat, backend: FakeBackend, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.add_file("doc1", b"%PDF-1.4 small", "documents/file_1.pdf")
    texts = await chat.feed(chat.message(**document("doc1", 14)))
    assert "nur an eine Anfrage" in texts[0]
    reference = await handover(chat)
    texts = await chat.feed(chat.message(**document("doc1", 14)))
    assert f"„bescheid.pdf“ an die Anfrage {reference}" in texts[0]
    assert backend.tickets[reference].attachments == [("bescheid.pdf", b"%PDF-1.4 small")]
    texts = await chat.feed(chat.message(**document("doc2", 50_000_000)))
    assert "zu groß (höchstens 5 MB)" in texts[0]
    assert len(backend.tickets[reference].attachments) == 1
    assert fake_telegram.calls_of("download") == [{"path": "documents/file_1.pdf"}]


async def test_over_long_message_is_refused(chat: TelegramChat, backend: FakeBackend) -> None:
    await start_in(chat)
    texts = await chat.say("x" * 2_001)
    assert "zu lang (höchstens 2000 Zeichen)" in texts[0]
    assert backend.asks == []


async def test_long_answers_are_split_for_telegram(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    entry = backend.entry("long", "Lang", ("Absatz. " * 100 + "\n") * 12)
    backend.on("lang", answer(entry))
    await start_in(chat)
    texts = await chat.say("eine lange Antwort bitte")
    # 9,600 characters: three messages, split at line breaks, then the question.
    assert len(texts) == 4 and texts[-1] == "Hat das geholfen?"
    assert all(len(text) <= 4096 for text in texts)
    assert "".join(texts[:3]).count("Absatz.") == 1200


async def test_flood_is_limited_with_one_message(
    fake_telegram: FakeTelegram, bot, backend: FakeBackend
) -> None:
    now = [0.0]
    settings = make_settings(fake_telegram, chat_rate_limit_per_minute=3)
    dp = build_dispatcher(
        settings, backend, rate_limiter=MemoryRateLimiter(3, clock=lambda: now[0])
    )
    chat = TelegramChat(dp, bot, fake_telegram)
    await start_in(chat)  # two updates
    await chat.say("Frage eins")
    texts = await chat.say("Frage zwei")
    assert texts == [
        "Sie schreiben gerade sehr schnell hintereinander. Bitte warten Sie eine Minute; "
        "bis dahin kann ich keine weiteren Nachrichten bearbeiten."
    ]
    assert await chat.say("Frage drei") == []
    assert len(backend.asks) == 1
    now[0] = 61.0
    texts = await chat.say("Frage vier")
    assert texts and "schnell" not in texts[0]
    assert len(backend.asks) == 2


async def test_english_client_gets_english_texts(
    dispatcher: Dispatcher, bot, fake_telegram: FakeTelegram
) -> None:
    chat = TelegramChat(dispatcher, bot, fake_telegram, chat_id=99, language="en-GB")
    texts = await chat.say("/start")
    assert "Privacy" in texts[0] and "180 days" in texts[0]
    assert chat.buttons()[-1] == "Other city"
    await chat.press("Munich" if "Munich" in chat.buttons() else "München")
    texts = await chat.say("Something unusual")
    assert "pass your question to the hotline" in texts[0]
    assert chat.buttons() == ["Yes, to the hotline", "No"]


async def test_backend_down_gives_a_friendly_error_and_keeps_the_state(
    chat: TelegramChat, backend: FakeBackend
) -> None:
    entry = backend.entry("pw", "Passwort", "So geht es.")
    backend.on("passwort", answer(entry))
    await start_in(chat)
    backend.fail_with = BackendError("backend_unavailable", "connection refused")
    texts = await chat.say("Passwort vergessen")
    assert "nicht erreichbar" in texts[0]
    backend.fail_with = None
    texts = await chat.say("Passwort vergessen")
    assert texts[0] == "So geht es."


async def test_help(chat: TelegramChat) -> None:
    texts = await chat.say("/hilfe")
    assert "/stadt" in texts[0] and "/loeschen" in texts[0]
