"""The internal question: staff ask about a digital service; it becomes a routed internal ticket."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.models import City, RoutingRule, Ticket
from hotline.services.rules import bump_generation
from tests.board.conftest import BoardClient

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]


def add_rule(db: Database, key: str, service: str, to_city: str, owner: str = "augsburg") -> None:
    with db.write() as session:
        cities = {c.key: c.id for c in session.exec(select(City)).all()}
        session.add(
            RoutingRule(
                rule_key=key,
                owner_city_id=cities[owner] or 0,
                priority=10,
                conditions={"service": [service]},
                route_to=to_city,
            )
        )
        bump_generation(session)


def ask(bc: BoardClient, **fields: str) -> httpx.Response:
    data = {"subject": "ePayment-Konto einrichten", "body": "Wie richten wir ePayment ein?"}
    data.update({"service": "epayment", "priority": "high"})
    data.update(fields)
    return bc.post("/board/internal", data)


def test_the_form_offers_the_catalogue_and_needs_a_login(board: Board) -> None:
    page = board("agent.muc").get("/board/internal")
    assert page.status_code == 200
    assert "<h1>Interne Anfrage stellen</h1>" in page.text
    assert '<option value="epayment">' in page.text and "BayernID" in page.text
    assert 'name="csrf"' in page.text
    assert board().get("/board/internal", follow_redirects=False).status_code == 303


def test_a_question_becomes_a_routed_internal_ticket(board: Board, db: Database) -> None:
    add_rule(db, "epayment-alle", "epayment", "augsburg")
    bc = board("agent.muc")
    response = ask(bc)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/board/internal?sent=HL-")
    page = bc.get(location).text
    reference = location.split("=", 1)[1]
    summary = re.search(r'<p id="asked-summary">(.*?)</p>', page, re.S)
    assert summary
    text = re.sub(r"<[^>]+>", "", summary.group(1))
    assert text == f"{reference} – zuständig: Augsburg (Regel epayment-alle)"
    assert f"Ihre Frage wurde als {reference} aufgenommen." in page
    with db.read() as session:
        ticket = session.exec(select(Ticket).where(Ticket.reference == reference)).one()
        cities = {c.id: c.key for c in session.exec(select(City)).all()}
    assert ticket.audience == "internal" and ticket.channel == "board"
    assert ticket.priority == "high"
    assert cities[ticket.origin_city_id or 0] == "muenchen"
    assert cities[ticket.responsible_city_id] == "augsburg"
    assert ticket.routing and ticket.routing["rule"] == "epayment-alle"
    # Augsburg's agent finds it in the inbox as an internal question; Munich's does not.
    aux = board("agent.aux").get("/board/inbox?audience=internal").text
    assert reference in aux and "ePayment-Konto einrichten" in aux
    assert reference not in board("agent.muc").get("/board/inbox").text


def test_without_a_matching_rule_the_origin_city_answers(board: Board, db: Database) -> None:
    bc = board("agent.aux")
    response = ask(bc, service="")
    page = bc.get(response.headers["location"]).text
    assert "zuständig: Augsburg (Rückfallregel)" in page


def test_invalid_input_re_renders_the_form_with_messages(board: Board, db: Database) -> None:
    bc = board("agent.muc")
    response = ask(bc, subject="   ", body="", service="gibt-es-nicht", priority="sofort")
    assert response.status_code == 422
    html = response.text
    assert "Bitte korrigieren Sie die markierten Angaben." in html
    assert "Bitte geben Sie einen Betreff an" in html
    assert "Bitte beschreiben Sie Ihre Frage" in html
    assert "Bitte wählen Sie einen Dienst aus der Liste." in html
    assert "Bitte wählen Sie eine Priorität aus der Liste." in html
    assert 'aria-invalid="true"' in html
    only_body = ask(bc, body="  \n ")
    assert only_body.status_code == 422
    assert 'value="ePayment-Konto einrichten"' in only_body.text
    with db.read() as session:
        assert session.exec(select(Ticket)).all() == []


def test_without_csrf_nothing_is_created(board: Board, db: Database) -> None:
    bc = board("agent.muc")
    response = bc.post(
        "/board/internal", {"csrf": "falsch", "subject": "x", "body": "y", "priority": "normal"}
    )
    assert response.status_code == 403
    with db.read() as session:
        assert session.exec(select(Ticket)).all() == []


def test_the_confirmation_shows_only_the_askers_own_question(board: Board, db: Database) -> None:
    add_rule(db, "epayment-alle", "epayment", "augsburg")
    asker = board("agent.muc")
    reference = ask(asker).headers["location"].split("=", 1)[1]
    other = board("agent2.muc").get(f"/board/internal?sent={reference}").text
    assert "asked-summary" not in other and "zuständig:" not in other
    # Even an agent of the answering city sees it in the inbox, not on the ask page.
    assert "zuständig:" not in board("agent.aux").get(f"/board/internal?sent={reference}").text


def test_a_coordinator_without_city_can_ask(board: Board, db: Database) -> None:
    add_rule(db, "epayment-alle", "epayment", "augsburg")
    bc = board("koordination")
    response = ask(bc)
    assert response.status_code == 303
    page = bc.get(response.headers["location"]).text
    assert "zuständig: Augsburg (Regel epayment-alle)" in page
    with db.read() as session:
        ticket = session.exec(select(Ticket)).one()
    assert ticket.origin_city_id is None and ticket.audience == "internal"
