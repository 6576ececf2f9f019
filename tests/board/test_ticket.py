"""The ticket page: one timeline, the routing reason, KB help, actions, conflicts and isolation."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.models import (
    City,
    KBEntry,
    Message,
    OutboxDelivery,
    RoutingRule,
    StaffAccess,
    StaffUser,
    Ticket,
)
from hotline.services.rules import bump_generation
from tests.board.conftest import BoardClient
from tests.conftest import World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
KINDS = re.compile(r'<li class="tl tl-([a-z]+)">')
VERSION = re.compile(r'name="version" value="(\d+)"')


def new_ticket(bc: BoardClient, world: World, who: str = "network", **fields: Any) -> str:
    """A ticket created through the API as a channel would; returns its reference."""
    payload = {
        "subject": "BayernID gesperrt",
        "body": "Mein Konto ist nach drei Fehlversuchen gesperrt.",
        "audience": "external",
        "channel": "web",
        "origin_city": "muenchen",
        **fields,
    }
    response = bc.client.post("/api/v1/tickets", json=payload, headers=world.headers(who))
    assert response.status_code == 201, response.text
    reference: str = response.json()["reference"]
    return reference


def url(ref: str, action: str = "") -> str:
    return f"/board/tickets/{ref}" + (f"/{action}" if action else "")


def ticket(db: Database, ref: str) -> Ticket:
    with db.read() as session:
        return session.exec(select(Ticket).where(Ticket.reference == ref)).one()


def version_of(page: str) -> str:
    match = VERSION.search(page)
    assert match, "the action forms carry the ticket version"
    return match.group(1)


def username_of(db: Database, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    with db.read() as session:
        return session.get_one(StaffUser, user_id).username


# --- reading ---------------------------------------------------------------------------------


def test_page_shows_header_and_one_timeline_in_time_order(
    board: Board, world: World, db: Database
) -> None:
    bc = board("agent.muc")
    ref = new_ticket(
        bc,
        world,
        service="bayernid",
        channel="telegram",
        requester={"name": "Lena Hofbauer", "telegram_chat_id": "4711"},
        transcript=[
            {"role": "citizen", "text": "Konto gesperrt"},
            {"role": "bot", "text": "Meinten Sie: Passwort vergessen?"},
        ],
    )
    page = bc.get(url(ref))
    assert page.status_code == 200
    version = version_of(page.text)
    assert (
        bc.post(url(ref, "note"), {"body": "Rückruf vereinbart", "version": version}).status_code
        == 303
    )
    version = version_of(bc.get(url(ref)).text)
    assert (
        bc.post(
            url(ref, "reply"), {"body": "Bitte warten Sie 15 Minuten.", "version": version}
        ).status_code
        == 303
    )

    text = bc.get(url(ref)).text
    # created + routed, the bot transcript, the citizen's question, the note, the reply and the
    # status change the reply caused: one list, oldest first.
    assert KINDS.findall(text) == ["event", "event", "bot", "citizen", "note", "reply", "event"]
    assert "Ticket angelegt über Telegram." in text
    assert "Status: neu → in Bearbeitung." in text
    # The bot transcript is folded; the note is visibly internal.
    assert '<details class="tl-bot">' in text and "Verlauf mit dem Bot anzeigen" in text
    note = text.split('<li class="tl tl-note">')[1].split("</li>")[0]
    assert ">intern<" in note and "Rückruf vereinbart" in note
    # Header: reference, subject, status, cities, service, channel, audience, SLA, version.
    assert f"{ref}</span>" in text and "BayernID gesperrt" in text
    for fact in ("in Bearbeitung", "München", "BayernID", "Telegram", "extern", "Lena Hofbauer"):
        assert fact in text
    assert "Erste Antwort fällig" in text and "Lösung fällig" in text
    assert re.search(
        r'class="badge (ok|warn|danger)">(erledigt|im Plan|bald fällig|überschritten)', text
    )
    assert "<dt>Version</dt><dd>3</dd>" in text


def test_routing_reason_in_words_with_the_full_trace(
    board: Board, world: World, db: Database
) -> None:
    with db.write() as session:
        augsburg = session.exec(select(City).where(City.key == "augsburg")).one()
        session.add(
            RoutingRule(
                rule_key="epayment-alle",
                owner_city_id=augsburg.id or 0,
                priority=10,
                conditions={"service": ["epayment"]},
                route_to="augsburg",
                description="ePayment-Fragen aller Städte",
            )
        )
        bump_generation(session)
    bc = board("agent.aux")
    ref = new_ticket(bc, world, service="epayment", subject="Zahlung abgebrochen")
    text = bc.get(url(ref)).text
    assert re.search(
        r"<strong>Augsburg</strong> —\s*Regel <em>epayment-alle</em>: ePayment-Fragen aller Städte",
        text,
    )
    assert '<details class="trace">' in text and "Regel passt: zuständig ist Augsburg." in text

    fallback = new_ticket(bc, world, origin_city="augsburg", service="bayernid")
    assert "Rückfallregel" in bc.get(url(fallback)).text


def test_opening_the_ticket_writes_the_access_log(board: Board, world: World, db: Database) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    assert bc.get(url(ref)).status_code == 200
    assert bc.get(url(ref)).status_code == 200
    with db.read() as session:
        rows = session.exec(select(StaffAccess)).all()
        user = session.exec(select(StaffUser).where(StaffUser.username == "agent.muc")).one()
    assert [(r.staff_id, r.ticket_id) for r in rows] == [(user.id, ticket(db, ref).id)] * 2


def test_another_citys_agent_is_refused_and_nothing_is_logged(
    board: Board, world: World, db: Database
) -> None:
    ref = new_ticket(board("agent.muc"), world)
    aux = board("agent.aux")
    page = aux.get(url(ref))
    assert page.status_code == 404
    assert "gibt es nicht oder es liegt nicht in Ihrem Zuständigkeitsbereich" in page.text
    assert "Mein Konto ist nach drei Fehlversuchen" not in page.text
    refused = aux.post(url(ref, "reply"), {"body": "Hallo", "version": "1"})
    assert refused.status_code == 404
    assert (
        aux.post(
            url(ref, "transfer"), {"to_city": "augsburg", "reason": "x", "version": "1"}
        ).status_code
        == 404
    )
    with db.read() as session:
        assert session.exec(select(StaffAccess)).all() == []
        assert [m.kind for m in session.exec(select(Message)).all()] == ["citizen"]
    # The coordinator sees every city's tickets.
    assert board("koordination").get(url(ref)).status_code == 200


def test_html_in_a_citizen_message_is_shown_as_text(board: Board, world: World) -> None:
    bc = board("agent.muc")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    ref = new_ticket(bc, world, body=f"Hallo {evil}", subject="<b>Betreff</b>")
    text = bc.get(url(ref)).text
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>Betreff" not in text
    assert html.escape(evil, quote=False) in text or "&lt;script&gt;alert(" in text
    assert "&lt;b&gt;Betreff&lt;/b&gt;" in text


# --- replies and notes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "requester", "recipient"),
    [
        ("telegram", {"telegram_chat_id": "4711"}, "4711"),
        ("web", {"web_session": "chat-session-0001"}, "chat-session-0001"),
    ],
)
def test_reply_is_delivered_to_the_requesters_channel(
    board: Board,
    world: World,
    db: Database,
    channel: str,
    requester: dict[str, str],
    recipient: str,
) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world, channel=channel, requester=requester)
    page = bc.get(url(ref)).text
    assert f"Wird per {'Telegram' if channel == 'telegram' else 'Web-Chat'} zugestellt." in page
    response = bc.post(
        url(ref, "reply"), {"body": "Ihr Konto ist entsperrt.", "version": version_of(page)}
    )
    assert response.status_code == 303 and response.headers["location"] == url(ref)
    after = bc.get(url(ref)).text
    assert "Die Antwort wurde gespeichert und wird zugestellt." in after
    with db.read() as session:
        deliveries = session.exec(select(OutboxDelivery)).all()
    assert [(d.channel, d.recipient, d.payload["text"]) for d in deliveries] == [
        (channel, recipient, "Ihr Konto ist entsperrt.")
    ]
    assert ticket(db, ref).status == "open" and ticket(db, ref).first_responded_at is not None


def test_internal_note_is_not_delivered(board: Board, world: World, db: Database) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world, channel="telegram", requester={"telegram_chat_id": "4711"})
    page = bc.get(url(ref)).text
    response = bc.post(url(ref, "note"), {"body": "Nur für uns", "version": version_of(page)})
    assert response.status_code == 303
    assert "Die interne Notiz wurde gespeichert." in bc.get(url(ref)).text
    with db.read() as session:
        assert session.exec(select(OutboxDelivery)).all() == []
        note = session.exec(select(Message).where(Message.kind == "note")).one()
    assert note.body == "Nur für uns"
    assert ticket(db, ref).status == "new"


def test_empty_reply_is_refused_with_a_message(board: Board, world: World, db: Database) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    response = bc.post(url(ref, "reply"), {"body": "   ", "version": "1"})
    assert response.status_code == 422
    assert "Bitte schreiben Sie einen Text" in response.text
    with db.read() as session:
        assert [m.kind for m in session.exec(select(Message)).all()] == ["citizen"]


def test_version_conflict_keeps_the_typed_reply(board: Board, world: World, db: Database) -> None:
    anna, ben = board("agent.muc"), board("agent2.muc")
    ref = new_ticket(anna, world, channel="telegram", requester={"telegram_chat_id": "4711"})
    seen = version_of(anna.get(url(ref)).text)
    # A colleague claims the ticket meanwhile.
    claim = ben.post(
        url(ref, "assign"),
        {"assignee": "agent2.muc", "version": version_of(ben.get(url(ref)).text)},
    )
    assert claim.status_code == 303

    typed = "Guten Tag,\nbitte <warten> Sie & versuchen es erneut."
    response = anna.post(url(ref, "reply"), {"body": typed, "version": seen})
    assert response.status_code == 409
    assert "Ein Kollege hat das Ticket inzwischen geändert" in response.text
    assert 'id="reply-error"' in response.text  # also said next to the form
    assert html.escape(typed, quote=False) in response.text  # still in the textarea
    assert version_of(response.text) == str(ticket(db, ref).version)  # the current state
    assert "agent2.muc" in response.text
    with db.read() as session:
        assert session.exec(select(Message).where(Message.kind == "reply")).all() == []
        assert session.exec(select(OutboxDelivery)).all() == []

    # htmx gets just the ticket fragment (swapped into #ticket), with the text kept as well.
    fragment = anna.htmx("POST", url(ref, "note"), {"body": "Notiz bleibt", "version": seen})
    assert fragment.status_code == 409
    assert fragment.text.lstrip().startswith('<div id="ticket"') and "<html" not in fragment.text
    assert "Notiz bleibt</textarea>" in fragment.text

    # Sent again with the current version, the reply goes through.
    again = anna.post(url(ref, "reply"), {"body": typed, "version": version_of(response.text)})
    assert again.status_code == 303


def test_htmx_post_redirects_with_hx_redirect(board: Board, world: World) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    response = bc.htmx("POST", url(ref, "note"), {"body": "per htmx", "version": "1"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == url(ref)


# --- claim, assign, status, transfer, merge ------------------------------------------------------------


def test_claim_assign_and_change_status(board: Board, world: World, db: Database) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    page = bc.get(url(ref)).text
    assert "Selbst übernehmen" in page
    assert (
        bc.post(
            url(ref, "assign"), {"assignee": "agent.muc", "version": version_of(page)}
        ).status_code
        == 303
    )
    page = bc.get(url(ref)).text
    assert "Sie bearbeiten das Ticket jetzt." in page
    assert username_of(db, ticket(db, ref).assignee_id) == "agent.muc"

    # The colleague list holds the responsible city's active staff only.
    options = re.findall(
        r'<option value="([^"]+)"', page.split('id="assignee"')[1].split("</select>")[0]
    )
    assert set(options) == {"agent.muc", "agent2.muc", "admin.muc"}
    assert (
        bc.post(
            url(ref, "assign"), {"assignee": "agent2.muc", "version": version_of(page)}
        ).status_code
        == 303
    )
    assert username_of(db, ticket(db, ref).assignee_id) == "agent2.muc"

    page = bc.get(url(ref)).text
    allowed = re.findall(
        r'<option value="([a-z]+)"', page.split('id="status-to"')[1].split("</select>")[0]
    )
    assert allowed == ["open", "waiting", "resolved", "closed"]
    response = bc.post(url(ref, "status"), {"to": "waiting", "version": version_of(page)})
    assert response.status_code == 303
    page = bc.get(url(ref)).text
    assert "Der Status ist jetzt „wartet auf Rückmeldung“." in page
    assert ticket(db, ref).status == "waiting"
    # A transition outside the table is refused with a sentence, nothing changes.
    bad = bc.post(url(ref, "status"), {"to": "reopened", "version": version_of(page)})
    assert bad.status_code == 409 and "Dieser Statuswechsel ist nicht erlaubt." in bad.text
    assert ticket(db, ref).status == "waiting"


def test_agent_cannot_assign_a_user_of_another_city(
    board: Board, world: World, db: Database
) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    response = bc.post(url(ref, "assign"), {"assignee": "agent.aux", "version": "1"})
    assert response.status_code == 422
    assert "arbeitet nicht für die zuständige Stadt" in response.text
    assert ticket(db, ref).assignee_id is None and ticket(db, ref).version == 1


def test_transfer_needs_a_reason_and_moves_the_ticket_out_of_scope(
    board: Board, world: World, db: Database
) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    missing = bc.post(url(ref, "transfer"), {"to_city": "augsburg", "reason": "  ", "version": "1"})
    assert missing.status_code == 422 and "Bitte geben Sie einen Grund" in missing.text
    assert ticket(db, ref).version == 1

    response = bc.post(
        url(ref, "transfer"),
        {"to_city": "augsburg", "reason": "ePayment betreut Augsburg", "version": "1"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/board/inbox"
    with db.read() as session:
        augsburg = session.exec(select(City).where(City.key == "augsburg")).one()
    assert ticket(db, ref).responsible_city_id == augsburg.id
    # München no longer sees it; Augsburg sees it with the reason in the timeline.
    assert bc.get(url(ref)).status_code == 404
    page = board("agent.aux").get(url(ref)).text
    assert "Weitergeleitet von München an Augsburg. Grund: ePayment betreut Augsburg" in page


def test_merge_asks_for_confirmation_then_closes_the_duplicate(
    board: Board, world: World, db: Database
) -> None:
    bc = board("agent.muc")
    survivor = new_ticket(bc, world, subject="BayernID gesperrt (erste Meldung)")
    duplicate = new_ticket(bc, world)
    ask = bc.post(url(duplicate, "merge"), {"into": survivor.lower(), "version": "1"})
    assert ask.status_code == 200
    assert (
        "Zusammenführen bestätigen" in ask.text and "BayernID gesperrt (erste Meldung)" in ask.text
    )
    assert ticket(db, duplicate).status == "new"  # nothing happened yet

    done = bc.post(url(duplicate, "merge"), {"into": survivor, "confirmed": "yes", "version": "1"})
    assert done.status_code == 303 and done.headers["location"] == url(survivor)
    assert f"{duplicate} wurde in dieses Ticket zusammengeführt" in bc.get(url(survivor)).text
    merged = ticket(db, duplicate)
    assert merged.status == "closed" and merged.merged_into_id == ticket(db, survivor).id
    page = bc.get(url(duplicate)).text
    assert f'Zusammengeführt in <a href="/board/tickets/{survivor}">' in page
    assert 'action="/board/tickets/' + duplicate + '/reply"' not in page  # closed: no actions


def test_merge_into_an_unknown_or_foreign_ticket_is_refused(
    board: Board, world: World, db: Database
) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    foreign = new_ticket(bc, world, origin_city="augsburg")
    for target in ("HL-1999-999999", foreign, ref):
        response = bc.post(url(ref, "merge"), {"into": target, "confirmed": "yes", "version": "1"})
        assert response.status_code == 422, target
        assert 'id="merge-error"' in response.text
    assert ticket(db, ref).status == "new" and ticket(db, foreign).status == "new"


# --- the knowledge base ---------------------------------------------------------------------------------


def _reply(bc: BoardClient, db: Database, ref: str, body: str) -> int:
    page = bc.get(url(ref)).text
    assert (
        bc.post(url(ref, "reply"), {"body": body, "version": version_of(page)}).status_code == 303
    )
    with db.read() as session:
        return (
            session.exec(select(Message).where(Message.kind == "reply", Message.body == body))
            .one()
            .id
            or 0
        )


@pytest.mark.parametrize("user", ["agent.muc", "admin.muc"])
def test_save_a_reply_as_kb_draft(board: Board, world: World, db: Database, user: str) -> None:
    bc = board(user)
    ref = new_ticket(bc, world, service="bayernid", subject="BayernID nach Umzug gesperrt")
    message_id = _reply(bc, db, ref, "Bitte melden Sie sich mit dem Online-Ausweis an.")
    response = bc.post(url(ref, "kb-draft"), {"message_id": str(message_id)})
    assert response.status_code == 303
    flash = bc.get(url(ref)).text
    expected = "zur Prüfung angelegt" if user == "agent.muc" else "Prüfen und veröffentlichen"
    assert expected in flash and "bayernid-nach-umzug-gesperrt" in flash
    # A second draft from the same ticket gets its own key.
    assert bc.post(url(ref, "kb-draft"), {"message_id": str(message_id)}).status_code == 303
    with db.read() as session:
        entries = session.exec(select(KBEntry).order_by(KBEntry.id)).all()  # type: ignore[arg-type]
        muenchen = session.exec(select(City).where(City.key == "muenchen")).one()
    assert [e.key for e in entries] == [
        "bayernid-nach-umzug-gesperrt",
        "bayernid-nach-umzug-gesperrt-2",
    ]
    entry = entries[0]
    assert entry.status == "draft" and entry.title == "BayernID nach Umzug gesperrt"
    assert entry.questions == ["BayernID nach Umzug gesperrt"]
    assert entry.answer == "Bitte melden Sie sich mit dem Online-Ausweis an."
    assert entry.city_id == muenchen.id and entry.service_id == ticket(db, ref).service_id


def test_only_replies_become_kb_drafts(board: Board, world: World, db: Database) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world)
    with db.read() as session:
        citizen = session.exec(select(Message).where(Message.kind == "citizen")).one()
    response = bc.post(url(ref, "kb-draft"), {"message_id": str(citizen.id)})
    assert response.status_code == 422
    assert "Nur eine Antwort dieses Tickets" in response.text
    with db.read() as session:
        assert session.exec(select(KBEntry)).all() == []
    # Another city's agent cannot draft from a ticket they cannot see.
    message_id = _reply(bc, db, ref, "Antwort")
    assert (
        board("agent.aux").post(url(ref, "kb-draft"), {"message_id": str(message_id)}).status_code
        == 404
    )


def test_kb_suggestions_and_offers(board: Board, demo_kb_world: World, db: Database) -> None:
    bc = board("agent.muc")
    ref = new_ticket(
        bc,
        demo_kb_world,
        subject="Konto gesperrt",
        body="Ich habe zu oft das falsche Passwort eingegeben, jetzt ist meine BayernID gesperrt.",
        service="bayernid",
        kb_offers=[{"entry": "bayernid-passwort-vergessen", "score": 61.5}],
    )
    page = bc.get(url(ref)).text
    suggestions = page.split('id="suggest-title"')[1].split("</section>")[0]
    keys = re.findall(r'href="/board/kb/([a-z0-9-]+)"', suggestions)
    assert 1 <= len(keys) <= 3 and keys[0] == "bayernid-konto-gesperrt"
    assert "BayernID nach Fehlversuchen gesperrt" in suggestions
    assert "<p>Nach mehreren falschen Passworteingaben" in suggestions  # rendered Markdown
    assert (
        'data-insert-target="#reply-body"' in suggestions and "In Antwort einfügen" in suggestions
    )
    # Other cities' entries never appear for a München ticket.
    assert not any(k.endswith(("-augsburg", "-nuernberg")) for k in keys)
    # The bot's offers, with their titles, linking to the KB page.
    offers = page.split('id="offers-title"')[1].split("</section>")[0]
    assert (
        'href="/board/kb/bayernid-passwort-vergessen"' in offers and "Treffer 62 von 100" in offers
    )

    # Without JavaScript the link reloads the page with the answer in the reply box.
    filled = bc.get(url(ref) + "?insert=bayernid-konto-gesperrt").text
    reply_box = filled.split('id="reply-body"')[1].split("</textarea>")[0]
    assert "Nach mehreren falschen Passworteingaben" in reply_box
    # An entry of another city is not inserted.
    other = bc.get(url(ref) + "?insert=bewohnerparken-augsburg").text
    assert "Augsburg" not in other.split('id="reply-body"')[1].split("</textarea>")[0]


def test_the_page_speaks_english_when_asked(board: Board, world: World) -> None:
    bc = board("agent.muc")
    ref = new_ticket(bc, world, channel="telegram", requester={"telegram_chat_id": "4711"})
    bc.get("/board/lang/en?next=/board/", follow_redirects=False)
    text = bc.get(url(ref)).text
    for phrase in ("History", "Reply to the requester", "Delivered via Telegram.", "Send reply"):
        assert phrase in text
    assert "Antwort senden" not in text
