"""The channel-neutral conversation as the web chat uses it: JSON state, web identity."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from bot.backend import AskResult, BackendError, Requester
from bot.conversation import Context, Conversation, Reply, State, format_due
from tests.bot.conftest import FakeBackend, answer, suggest

WEB = Context(Requester("web", web_session="sess-abcdefgh"), "de", "web-1")


def roundtrip(state: State) -> State:
    """What the web chat does between turns: store the state as JSON and read it back."""
    return json.loads(json.dumps(state))


async def test_web_conversation_with_json_state(backend: FakeBackend) -> None:
    entry = backend.entry("pw", "Passwort", "So setzen Sie es zurück.")
    backend.on("passwort", answer(entry))
    conversation = Conversation(backend)
    state: State = {}
    replies = await conversation.start(state, WEB)
    assert [b.data for row in replies[-1].buttons for b in row][-1] == "city:other"
    state = roundtrip(state)
    await conversation.button(state, WEB, "city:muenchen")
    state = roundtrip(state)
    replies = await conversation.text(state, WEB, "Passwort vergessen")
    assert replies[0] == Reply("So setzen Sie es zurück.")
    state = roundtrip(state)
    await conversation.button(state, WEB, "fb:no")
    state = roundtrip(state)
    await conversation.button(state, WEB, "ho:yes")  # city and service are known
    replies = await conversation.button(state, WEB, "email:skip")
    assert "Aktenzeichen" in replies[0].text
    (ticket,) = backend.tickets.values()
    assert ticket.requester == Requester("web", web_session="sess-abcdefgh")
    assert conversation.attached_ticket(state) == ticket.reference
    # Typed commands work in the web chat, too.
    replies = await conversation.text(state, WEB, "/status")
    assert ticket.reference in replies[0].text


async def test_transcript_is_bounded(backend: FakeBackend) -> None:
    conversation = Conversation(backend, transcript_limit=30)
    state: State = {"greeted": True, "city_asked": True}
    for i in range(40):
        await conversation.text(state, WEB, f"Frage {i}")
    assert len(state["transcript"]) == 30
    assert state["transcript"][-2] == {"role": "citizen", "text": "Frage 39"}


async def test_failed_turn_leaves_the_state_unchanged(backend: FakeBackend) -> None:
    conversation = Conversation(backend)
    state: State = {"greeted": True, "city_asked": True, "city": "augsburg"}
    before = json.dumps(state, sort_keys=True)
    backend.fail_with = BackendError("backend_unavailable")
    replies = await conversation.text(state, WEB, "Frage")
    assert "nicht erreichbar" in replies[0].text
    assert json.dumps(state, sort_keys=True) == before


def test_due_time_is_berlin_local_time_in_german_format() -> None:
    assert format_due(datetime(2026, 1, 5, 7, 30, tzinfo=UTC), "de") == "Mo. 05.01.2026, 08:30 Uhr"
    assert format_due(datetime(2026, 7, 5, 7, 30, tzinfo=UTC), "en") == "Sun 05.07.2026, 09:30"


async def test_a_question_about_another_body_says_where_to_turn(backend: FakeBackend) -> None:
    pin = backend.entry("pin", "PIN gesperrt", "Mit der PUK entsperren Sie die PIN.")
    puk = backend.entry("puk", "PUK gesperrt", "Beantragen Sie einen Rücksetzbrief.")
    backend.on("sparkasse", replace(suggest(pin, puk), other_bodies=("Sparkasse",)))
    backend.on("finanzamt", AskResult(0, "handover", 20.0, other_bodies=("Finanzamt", "ELSTER")))
    backend.on("ausweis", replace(answer(pin), other_bodies=("Bank",)))
    conversation = Conversation(backend)
    state: State = {"greeted": True, "city_asked": True, "city": "muenchen"}
    replies = await conversation.text(state, WEB, "PIN der Sparkasse gesperrt")
    assert replies[0].text.startswith("Ihre Frage scheint eine andere Stelle zu betreffen („Sparkasse“)")
    assert "Meinten Sie" in replies[1].text
    labels = [b.label for row in replies[1].buttons for b in row]
    assert labels == ["PIN gesperrt", "PUK gesperrt", "Nichts davon"]
    assert state["transcript"][-2]["text"] == replies[0].text  # staff see it in the ticket
    replies = await conversation.text(state, WEB, "Finanzamt will Unterlagen")
    assert "(„Finanzamt“ und „ELSTER“)" in replies[0].text
    assert "an die Hotline weitergeben" in replies[1].text
    # A confident answer stays an answer, without the note.
    replies = await conversation.text(state, WEB, "ausweis pin")
    assert replies[0] == Reply("Mit der PUK entsperren Sie die PIN.")
    english = Context(WEB.requester, "en", "web-1")
    state = {"greeted": True, "city_asked": True, "city": "muenchen", "lang": "en"}
    replies = await conversation.text(state, english, "PIN der Sparkasse gesperrt")
    assert replies[0].text.startswith("Your question seems to concern another body (“Sparkasse”)")
