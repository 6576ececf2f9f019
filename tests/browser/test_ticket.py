"""The ticket page in a real browser: read, insert a KB answer, reply (with a conflicting
colleague in between), transfer, and another city's agent being refused."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect
from sqlmodel import col, select

from hotline.db import Database
from hotline.models import City, Message, Ticket
from hotline.schemas import TicketCreate
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.rules import RouterCache
from tests.browser.conftest import TABLET, Visit
from tests.conftest import LiveServer

Visitor = Callable[..., Visit]


def _db(server: LiveServer) -> Database:
    db: Database = server.server.config.app.state.db
    return db


def _munich_ticket(db: Database) -> Ticket:
    """An open demo ticket of München with a telegram requester (the reply is delivered)."""
    with db.read() as session:
        muenchen = session.exec(select(City).where(City.key == "muenchen")).one()
        rows = session.exec(
            select(Ticket)
            .where(
                Ticket.responsible_city_id == muenchen.id,
                col(Ticket.status).in_(["new", "open", "waiting"]),
            )
            .order_by(col(Ticket.id))
        ).all()
    assert rows, "the demo data has open München tickets"
    return rows[0]


def _fresh_munich_ticket(db: Database, subject: str) -> str:
    """A new ticket of München for changes that must not disturb the demo tickets."""
    with db.write() as session:
        created = svc.create_ticket(
            session,
            Actor(label="kanal:web", city_id=None, network=True),
            TicketCreate(
                subject=subject,
                body="Ich komme nicht weiter und bitte um Rückruf.",
                channel="web",  # type: ignore[arg-type]
                origin_city="muenchen",
                service="bayernid",
            ),
            default_city="muenchen",
            sla=svc.SLAPolicy(8, 40),
            router_cache=RouterCache(),
        )
        city = session.get_one(City, created.responsible_city_id)
        assert city.key == "muenchen"
        return created.reference


def _no_console_errors_but_expected(v: Visit) -> None:
    """The conflict (409) and the refused ticket (404) are logged by the browser and htmx as
    failed requests; anything else on the console is a fault of the page."""
    unexpected = [e for e in v.console_errors if "409" not in e and "404" not in e]
    assert not unexpected, f"browser console errors: {unexpected}"


def test_agent_reads_replies_and_transfers(visit: Visitor, live_demo: LiveServer) -> None:
    db = _db(live_demo)
    ref = _munich_ticket(db).reference
    v = visit("agent1.muenchen")
    v.go(f"/board/tickets/{ref}")
    page = v.page
    assert ref in page.get_by_role("heading", level=1).inner_text()
    assert page.get_by_role("heading", name="Verlauf").is_visible()
    assert page.get_by_role("heading", name="Zuständigkeit").is_visible()
    v.check_accessible("ticket")
    v.shot("ticket")
    # Playwright's screenshot leaves a <style> the page's CSP refuses once the DOM changes;
    # open the ticket afresh so the console shows only what the page itself does.
    v.go(f"/board/tickets/{ref}")

    # A colleague changes the ticket while the agent writes: the reply is not lost.
    other = visit("agent2.muenchen")
    other.go(f"/board/tickets/{ref}")
    other.page.get_by_label("Interne Notiz").fill("Ich rufe die Bürgerin heute noch an.")
    other.page.get_by_role("button", name="Notiz speichern").click()
    expect(other.page.locator("#flash")).to_contain_text("Die interne Notiz wurde gespeichert.")

    text = "Guten Tag, wir haben Ihr Konto entsperrt. Bitte melden Sie sich erneut an."
    page.get_by_label("Antwort an die anfragende Person").fill(text)
    page.get_by_role("button", name="Antwort senden").click()
    expect(page.locator("#conflict")).to_contain_text(
        "Ein Kollege hat das Ticket inzwischen geändert"
    )
    assert page.get_by_label("Antwort an die anfragende Person").input_value() == text
    assert "Ich rufe die Bürgerin heute noch an." in page.locator(".timeline").inner_text()
    v.check_accessible("ticket-conflict")
    v.shot("ticket-conflict")

    # Sent again (now against the current version) it goes through.
    page.get_by_role("button", name="Antwort senden").click()
    expect(page.locator("#flash")).to_contain_text("Die Antwort wurde gespeichert")
    page.wait_for_load_state("networkidle")
    assert text in page.locator(".timeline").inner_text()
    with db.read() as session:
        stored = session.exec(select(Message).where(Message.body == text)).one()
    assert stored.kind == "reply"
    v.check_accessible("ticket-replied")
    v.shot("ticket-replied")

    # A KB suggestion goes into the reply box with one click (JavaScript).
    insert = page.get_by_role("link", name="In Antwort einfügen").first
    if insert.count():
        insert.click()
        assert page.get_by_label("Antwort an die anfragende Person").input_value().strip()

    # Transfer a fresh ticket: it leaves München's scope.
    fresh = _fresh_munich_ticket(db, "BayernID – Rückfrage zur Gewerbeanmeldung")
    v.go(f"/board/tickets/{fresh}")
    page.get_by_label("Stadt, die übernimmt").select_option(label="Augsburg")
    page.get_by_label("Grund (Pflichtfeld)").fill("Gewerbe online betreut Augsburg.")
    page.get_by_role("button", name="Weiterleiten").click()
    page.wait_for_url(f"{v.base}/board/inbox")
    page.wait_for_load_state("networkidle")
    assert f"Das Ticket {fresh} wurde an Augsburg weitergeleitet." in page.inner_text("#flash")
    v.check_accessible("transferred-inbox")
    with db.read() as session:
        moved = session.exec(select(Ticket).where(Ticket.reference == fresh)).one()
        augsburg = session.exec(select(City).where(City.key == "augsburg")).one()
    assert moved.responsible_city_id == augsburg.id
    response = v.go(f"/board/tickets/{fresh}")
    assert response.status == 404
    v.check_accessible("transferred-gone")
    _no_console_errors_but_expected(v)
    v.shot("transferred-gone")


def test_ticket_at_tablet_width(visit: Visitor, live_demo: LiveServer) -> None:
    ref = _munich_ticket(_db(live_demo)).reference
    v = visit("agent1.muenchen", viewport=TABLET)
    v.go(f"/board/tickets/{ref}")
    v.page.locator("details.trace summary").click()
    assert v.page.locator("details.trace ol").is_visible()
    # Nothing wider than the window: no horizontal scrolling at 800 px.
    width = v.page.evaluate("document.documentElement.scrollWidth")
    assert width <= TABLET["width"]
    v.check_accessible("ticket-tablet")
    v.shot("ticket-tablet")
    v.assert_no_console_errors()


def test_other_citys_agent_is_refused(visit: Visitor, live_demo: LiveServer) -> None:
    munich = _munich_ticket(_db(live_demo))
    v = visit("agent1.augsburg")
    response = v.go(f"/board/tickets/{munich.reference}")
    assert response.status == 404
    assert "nicht in Ihrem Zuständigkeitsbereich" in v.page.get_by_role("alert").inner_text()
    assert munich.subject not in v.page.content()
    v.check_accessible("refused")
    v.shot("refused")
