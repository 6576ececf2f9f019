"""The citizen web chat at `/`, end to end over HTTP against the real app and database."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from hotline.db import Database
from hotline.models import ChatSession, KBAsk, Requester, Ticket
from tests.conftest import World

HTMX = {"HX-Request": "true"}


class Browser:
    """A citizen's browser: keeps the cookie, reads the page's CSRF token and nonces."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""
        self.nonce = ""
        self.page = ""

    def open(self, url: str = "/", **headers: str) -> str:
        response = self.client.get(url, headers=headers)
        assert response.status_code == 200
        self.page = response.text
        self.csrf = re.search(r'name="csrf" value="([^"]+)"', self.page).group(1)  # type: ignore[union-attr]
        self.nonce = re.search(r'id="nonce" value="([^"]+)"', self.page).group(1)  # type: ignore[union-attr]
        return self.page

    def _take_nonce(self, html: str) -> None:
        found = re.search(r'id="nonce" value="([^"]+)"', html)
        if found:
            self.nonce = found.group(1)

    def say(self, text: str, *, htmx: bool = True) -> str:
        response = self.client.post(
            "/chat/send",
            data={"text": text, "csrf": self.csrf, "nonce": self.nonce},
            headers=HTMX if htmx else {},
        )
        assert response.status_code == 200, response.text
        self._take_nonce(response.text)
        return response.text

    def buttons(self, html: str) -> dict[str, str]:
        """Label → button data of the choice buttons in `html`."""
        pairs = re.findall(
            r'name="data" value="([^"]+)">\s*<input type="hidden" name="label" value="([^"]+)"',
            html,
        )
        return {label: data for data, label in pairs}

    def press(self, html: str, label: str) -> str:
        data = self.buttons(html)[label]
        response = self.client.post(
            "/chat/button",
            data={
                "data": data,
                "label": label,
                "csrf": self.csrf,
                "nonce": f"{self.nonce}-{label}",
            },
            headers=HTMX,
        )
        assert response.status_code == 200, response.text
        return response.text

    def updates(self) -> tuple[int, str]:
        response = self.client.get("/chat/updates", headers=HTMX)
        return response.status_code, response.text


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def browser(client: TestClient, demo_kb_world: World) -> Browser:
    return Browser(client)


def test_first_visit_greets_with_privacy_notice_and_asks_the_city(browser: Browser) -> None:
    page = browser.open()
    text = text_of(page)
    assert "Datenschutz" in text and "/loeschen" in text and "180 Tagen" in text
    assert set(browser.buttons(page)) >= {"München", "Augsburg", "Nürnberg", "Andere Stadt"}
    assert 'role="log"' in page and 'aria-live="polite"' in page
    assert '<label for="text">' in page
    assert "<script>" not in page  # no inline script (CSP)
    cookie = browser.client.cookies.get("hl_chat")
    assert cookie and len(cookie) >= 32
    # A reload shows the same conversation (the cookie keeps it).
    assert text_of(browser.open()).count("Datenschutz") == 1


def test_question_answer_and_helped(browser: Browser, db: Database) -> None:
    page = browser.open()
    browser.press(page, "München")
    reply = browser.say("Ich habe mein Passwort für die BayernID vergessen")
    assert "Passwort vergessen" in text_of(reply)
    assert "Hat das geholfen?" in text_of(reply)
    thanks = browser.press(reply, "Ja")
    assert "choices-" in thanks and 'hx-swap-oob="delete"' in thanks  # buttons answer once
    with db.read() as session:
        ask = session.exec(select(KBAsk)).one()
        assert ask.helped is True and ask.channel == "web" and ask.client_hash


def test_handover_creates_a_ticket_and_the_staff_reply_appears(
    browser: Browser, client: TestClient, demo_kb_world: World, db: Database
) -> None:
    page = browser.open()
    browser.press(page, "Augsburg")
    reply = browser.say("Wo kann ich einen Angelschein online beantragen?")
    assert "Hotline" in text_of(reply)
    buttons = browser.buttons(reply)
    yes = next(label for label in buttons if label.startswith("Ja"))
    step = browser.press(reply, yes)
    # The service question (the matcher did not know it), then the optional e-mail.
    if "Weiß nicht" in browser.buttons(step):
        step = browser.press(step, "Weiß nicht")
    done = browser.press(step, "Überspringen")
    found = re.search(r"HL-\d{4}-\d{6}", text_of(done))
    assert found, text_of(done)
    reference = found.group(0)

    headers = demo_kb_world.headers()
    ticket = client.get(f"/api/v1/tickets/{reference}", headers=headers).json()
    assert ticket["channel"] == "web" and ticket["origin_city"] == "augsburg"
    messages = client.get(f"/api/v1/tickets/{reference}/messages", headers=headers).json()
    assert any(m["kind"] == "bot" and "Angelschein" in m["body"] for m in messages)
    # The bot's question is linked to the ticket it ended in (first-contact-resolution KPI).
    with db.read() as session:
        asks = session.exec(select(KBAsk).where(col(KBAsk.question).contains("Angelschein"))).all()
        assert [a.ticket_id for a in asks] == [ticket["id"]]

    # Nothing new yet.
    assert browser.updates()[0] == 204
    # Follow-ups go to the ticket.
    follow = browser.say("Ich wohne in Haunstetten.")
    assert reference in text_of(follow)
    reply = client.post(
        f"/api/v1/tickets/{reference}/messages",
        json={"kind": "reply", "body": "Den Fischereischein gibt es beim Ordnungsamt."},
        headers=demo_kb_world.headers(ticket["responsible_city"]),
    )
    assert reply.status_code == 201
    status, html = browser.updates()
    assert status == 200 and "Ordnungsamt" in text_of(html)
    assert browser.updates()[0] == 204  # delivered once
    # The page shows it after a reload, too.
    assert "Ordnungsamt" in text_of(browser.open())


def test_works_without_javascript(browser: Browser) -> None:
    browser.open()
    page = browser.say("/hilfe", htmx=False)
    assert page.startswith("<!doctype html>")
    assert "/stadt" in text_of(page)


def test_wrong_csrf_token_is_refused(browser: Browser, client: TestClient) -> None:
    browser.open()
    response = client.post(
        "/chat/send", data={"text": "Hallo", "csrf": "forged", "nonce": "x"}, headers=HTMX
    )
    assert response.status_code == 403
    assert "abgelaufen" in response.text


def test_double_submit_is_handled_once(browser: Browser, db: Database) -> None:
    page = browser.open()
    browser.press(page, "München")
    nonce = browser.nonce
    first = browser.client.post(
        "/chat/send",
        data={"text": "BayernID Passwort vergessen", "csrf": browser.csrf, "nonce": nonce},
        headers=HTMX,
    )
    again = browser.client.post(
        "/chat/send",
        data={"text": "BayernID Passwort vergessen", "csrf": browser.csrf, "nonce": nonce},
        headers=HTMX,
    )
    assert first.status_code == again.status_code == 200
    with db.read() as session:
        assert len(session.exec(select(KBAsk)).all()) == 1


def test_english_switch(browser: Browser) -> None:
    page = browser.open("/?lang=en")
    assert '<html lang="en">' in page
    assert "Send" in text_of(page)


def test_delete_my_data(browser: Browser, db: Database) -> None:
    page = browser.open()
    browser.press(page, "München")
    browser.say("BayernID Passwort vergessen")
    confirm = browser.say("/loeschen")
    yes = next(label for label in browser.buttons(confirm) if label.startswith("Ja"))
    done = browser.press(confirm, yes)
    assert "gelöscht" in text_of(done)
    with db.read() as session:
        assert session.exec(select(ChatSession)).all() == []
        assert session.exec(select(KBAsk)).all() == []
    # The next visit starts a fresh conversation.
    assert "Datenschutz" in text_of(browser.open())


def test_requester_and_ticket_are_linked_to_the_web_session(browser: Browser, db: Database) -> None:
    page = browser.open()
    browser.press(page, "Nürnberg")
    reply = browser.say(
        "Kann ich online einen Bewohnerparkausweis für mein Wohnmobil bekommen und wie lange dauert das?"
    )
    labels = browser.buttons(reply)
    handover = next((label for label in labels if label.startswith("Ja, an")), None)
    if handover is None:  # suggestions first: none of these, then hand over
        reply = browser.press(reply, next(label for label in labels if label.startswith("Nichts")))
        handover = next(label for label in browser.buttons(reply) if label.startswith("Ja"))
    step = browser.press(reply, handover)
    if "Weiß nicht" in browser.buttons(step):
        step = browser.press(step, "Weiß nicht")
    browser.press(step, "Überspringen")
    with db.read() as session:
        requester = session.exec(select(Requester)).one()
        assert requester.web_session == browser.client.cookies.get("hl_chat")
        assert session.exec(select(Ticket)).one().requester_id == requester.id
