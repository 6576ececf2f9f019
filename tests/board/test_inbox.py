"""The board's inbox: scope per city, filters, search, sorting, paging, counts, SLA, polling."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import select

from hotline.db import Database, utcnow
from hotline.models import Message, MessageKind, StaffUser, Ticket, TicketStatus
from hotline.schemas import TicketCreate
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.rules import RouterCache
from tests.board.conftest import BoardClient

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
REF = re.compile(r"HL-\d{4}-\d{6}")


def make_ticket(
    db: Database,
    subject: str,
    origin: str = "muenchen",
    *,
    status: str = "new",
    service: str | None = None,
    channel: str = "web",
    audience: str = "external",
    body: str = "Bitte um Hilfe.",
    assignee: str | None = None,
    due_in: timedelta | None = None,
    responded: bool = False,
) -> str:
    """A ticket routed by the default fallback (origin city), then put in the wanted state."""
    with db.write() as session:
        ticket = svc.create_ticket(
            session,
            Actor.system(),
            TicketCreate(
                subject=subject,
                body=body,
                origin_city=origin,
                service=service,
                channel=channel,  # type: ignore[arg-type]
                audience=audience,  # type: ignore[arg-type]
            ),
            default_city="muenchen",
            sla=svc.SLAPolicy(24, 120),
            router_cache=RouterCache(),
        )
        ticket.status = TicketStatus(status)
        if assignee:
            user = session.exec(select(StaffUser).where(StaffUser.username == assignee)).one()
            ticket.assignee_id = user.id
        if due_in is not None:
            ticket.first_response_due = utcnow() + due_in
            ticket.resolution_due = utcnow() + due_in + timedelta(days=5)
        if responded:
            ticket.first_responded_at = utcnow()
        session.add(ticket)
        return ticket.reference


def refs(html: str) -> list[str]:
    """The ticket references in the inbox table, in the order shown."""
    table = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return list(dict.fromkeys(REF.findall(table)))


def next_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">', html)
    return match.group(1).replace("&amp;", "&") if match else None


def tab_count(html: str, label: str) -> str:
    match = re.search(rf">{label} <span class=\"count\">([^<]+)</span>", html)
    assert match, f"no tab {label}"
    return match.group(1)


def test_board_start_page_leads_to_the_inbox(board: Board) -> None:
    bc = board("agent.muc")
    response = bc.get("/board/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/board/inbox"
    anonymous = board().get("/board/inbox", follow_redirects=False)
    assert anonymous.status_code == 303 and "/board/login" in anonymous.headers["location"]


def test_agent_sees_only_their_city_even_when_asking_for_another(
    board: Board, db: Database
) -> None:
    muc = make_ticket(db, "Münchner Anliegen zum Reisepass")
    aux = make_ticket(db, "Augsburger Anliegen zum Reisepass", "augsburg")
    page = board("agent.aux").get("/board/inbox")
    assert page.status_code == 200
    assert "Posteingang" in page.text and "Augsburg" in page.text
    assert refs(page.text) == [aux]
    for url in (
        "/board/inbox?city=muenchen",
        "/board/inbox?city=muenchen&q=Reisepass",
        f"/board/inbox?q={muc}",
        "/board/inbox?status=new&city=muenchen&sort=oldest",
    ):
        shown = board("agent.aux").get(url).text
        assert muc not in refs(shown) and "Münchner Anliegen" not in shown, url
    # The polling endpoint counts only the viewer's city too.
    poll = board("agent.aux").get("/board/inbox/new?since=0&city=muenchen")
    assert "1 neues Ticket" in poll.text
    # Munich's agent sees Munich's ticket, not Augsburg's.
    assert refs(board("agent.muc").get("/board/inbox").text) == [muc]


def test_coordinator_sees_every_city_and_filters_by_city(board: Board, db: Database) -> None:
    muc = make_ticket(db, "Anliegen aus München")
    aux = make_ticket(db, "Anliegen aus Augsburg", "augsburg")
    bc = board("koordination")
    assert set(refs(bc.get("/board/inbox").text)) == {muc, aux}
    only = bc.get("/board/inbox?city=augsburg").text
    assert refs(only) == [aux]
    assert 'id="f-city"' in only
    # Agents get no city filter at all.
    assert 'id="f-city"' not in board("agent.muc").get("/board/inbox").text


def test_filters_status_service_audience_channel_and_assignment(board: Board, db: Database) -> None:
    new = make_ticket(db, "Neu per Telegram", channel="telegram", service="bayernid")
    open_ = make_ticket(db, "Offen und meins", status="open", assignee="agent.muc")
    waiting = make_ticket(
        db, "Wartet, intern", status="waiting", audience="internal", assignee="agent2.muc"
    )
    closed = make_ticket(db, "Geschlossen", status="closed", service="epayment")
    bc = board("agent.muc")
    assert set(refs(bc.get("/board/inbox?status=new&status=open").text)) == {new, open_}
    assert refs(bc.get("/board/inbox?status=closed").text) == [closed]
    assert refs(bc.get("/board/inbox?service=bayernid").text) == [new]
    assert refs(bc.get("/board/inbox?audience=internal").text) == [waiting]
    assert refs(bc.get("/board/inbox?channel=telegram").text) == [new]
    assert refs(bc.get("/board/inbox?assigned=mine").text) == [open_]
    assert set(refs(bc.get("/board/inbox?assigned=unassigned").text)) == {new, closed}
    # Filters combine, and the form shows what is chosen (bookmarkable GET).
    combined = bc.get("/board/inbox?assigned=unassigned&status=closed").text
    assert refs(combined) == [closed]
    assert 'value="closed" checked' in combined
    assert 'value="unassigned" selected' in combined
    # Unknown values are ignored rather than failing.
    assert bc.get("/board/inbox?status=bogus&channel=fax&sort=x&limit=7").status_code == 200


def test_search_looks_at_subject_reference_and_messages(board: Board, db: Database) -> None:
    by_subject = make_ticket(db, "Transport-PIN vergessen")
    by_message = make_ticket(db, "Frage", body="Der Zahlungsdienst meldet Fehler 4711")
    other = make_ticket(db, "Etwas anderes")
    bc = board("agent.muc")
    assert refs(bc.get("/board/inbox?q=transport-pin").text) == [by_subject]
    assert refs(bc.get("/board/inbox?q=Fehler 4711").text) == [by_message]
    assert refs(bc.get(f"/board/inbox?q={other}").text) == [other]
    # A reply added later is searched too.
    with db.write() as session:
        ticket = session.exec(select(Ticket).where(Ticket.reference == other)).one()
        session.add(Message(ticket_id=ticket.id or 0, kind=MessageKind.reply, body="Kassenzeichen"))
    assert refs(bc.get("/board/inbox?q=kassenzeichen").text) == [other]
    # LIKE wildcards are plain text.
    empty = bc.get("/board/inbox?q=%25").text
    assert refs(empty) == [] and "Keine Tickets gefunden." in empty


def test_sorting_and_keyset_pages_stay_stable(board: Board, db: Database) -> None:
    made = [
        make_ticket(db, f"Ticket Nummer {i}", due_in=timedelta(hours=30 - i)) for i in range(13)
    ]
    bc = board("agent.muc")
    first = bc.get("/board/inbox?limit=10").text
    assert refs(first) == made[::-1][:10]
    link = next_link(first)
    assert link and "cursor=" in link and "limit=10" in link
    # A ticket arriving meanwhile does not shift page 2 (no OFFSET): it keeps the older three.
    make_ticket(db, "Ganz neu")
    second = bc.get(link).text
    assert refs(second) == made[::-1][10:]
    assert next_link(second) is None and "Erste Seite" in second
    oldest = bc.get("/board/inbox?sort=oldest&limit=10").text
    assert refs(oldest) == made[:10]
    # Page 2 of "oldest first" continues after the tenth and ends with the newest ticket.
    assert refs(bc.get(next_link(oldest) or "").text)[:3] == made[10:]
    # Due soonest: the last made is due first; answered tickets are left out of this view.
    due = bc.get("/board/inbox?sort=due&limit=10").text
    assert refs(due)[:3] == [made[12], made[11], made[10]]
    assert "noch auf eine erste Antwort warten" in due
    due2 = bc.get(next_link(due) or "").text
    assert set(refs(due)) | set(refs(due2)) >= set(made)
    assert not set(refs(due)) & set(refs(due2))


def test_oldest_first_pages_through_everything_once(board: Board, db: Database) -> None:
    made = [make_ticket(db, f"Alt {i}") for i in range(12)]
    bc = board("agent.muc")
    page1 = bc.get("/board/inbox?sort=oldest&limit=10").text
    page2 = bc.get(next_link(page1) or "").text
    assert refs(page1) + refs(page2) == made


def test_a_cursor_of_another_sort_or_garbage_is_refused_kindly(board: Board) -> None:
    bc = board("agent.muc")
    response = bc.get("/board/inbox?cursor=not-a-cursor")
    assert response.status_code == 422
    assert "Verweis auf die nächste Seite ist ungültig" in response.text


def test_status_counts_for_the_scope(board: Board, db: Database) -> None:
    for status in ("new", "new", "open", "waiting", "closed"):
        make_ticket(db, f"Status {status}", status=status)
    make_ticket(db, "Augsburg zählt nicht", "augsburg")
    page = board("agent.muc").get("/board/inbox").text
    assert tab_count(page, "Alle") == "5"
    assert tab_count(page, "Neu") == "2"
    assert tab_count(page, "In Bearbeitung") == "1"
    assert tab_count(page, "Wartet auf Rückmeldung") == "1"
    assert tab_count(page, "Geschlossen") == "1"
    assert tab_count(page, "Gelöst") == "0"
    # The status tabs keep the other filters; the counts follow them.
    filtered = board("agent.muc").get("/board/inbox?channel=telegram").text
    assert tab_count(filtered, "Alle") == "0"
    assert 'href="/board/inbox?status=new&amp;channel=telegram"' in filtered


def test_sla_badges_in_words_and_breached_filter(board: Board, db: Database) -> None:
    late = make_ticket(db, "Überfällig", due_in=timedelta(hours=-3))
    soon = make_ticket(db, "Bald fällig", status="open", due_in=timedelta(minutes=45))
    fine = make_ticket(db, "Im Plan", due_in=timedelta(hours=20))
    answered = make_ticket(
        db, "Beantwortet", status="open", due_in=timedelta(hours=-1), responded=True
    )
    done = make_ticket(db, "Erledigt", status="resolved", due_in=timedelta(hours=-50))
    bc = board("agent.muc")
    page = bc.get("/board/inbox").text
    rows = {ref: chunk for ref, chunk in zip(refs(page), page.split("<tr>")[2:], strict=True)}
    assert "SLA überschritten" in rows[late] and "seit 3 h" in rows[late]
    assert "Bald fällig" in rows[soon] and "in 4" in rows[soon]  # "in 44 min"
    assert "Im Plan" in rows[fine]
    assert "Im Plan" in rows[answered]  # answered in time, resolution still days away
    assert "erledigt" in rows[done]
    breached = bc.get("/board/inbox?breached=1").text
    assert refs(breached) == [late]


def test_polling_announces_new_tickets_once(board: Board, db: Database) -> None:
    make_ticket(db, "Schon da")
    bc = board("agent.muc")
    page = bc.get("/board/inbox").text
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 15s"', page)
    assert poll and 'aria-live="polite"' in page
    url = poll.group(1).replace("&amp;", "&")
    quiet = bc.client.get(url, headers={"HX-Request": "true"})
    assert quiet.status_code == 204  # nothing new, nothing re-announced
    make_ticket(db, "Neu 1")
    make_ticket(db, "Neu 2")
    make_ticket(db, "Anderswo", "augsburg")
    fresh = bc.client.get(url, headers={"HX-Request": "true"})
    assert fresh.status_code == 200
    assert "2 neue Tickets – anzeigen" in fresh.text
    assert 'href="/board/inbox"' in fresh.text
    # The returned poller remembers the number, so the same news is not announced again.
    again = re.search(r'hx-get="([^"]+)"', fresh.text)
    assert again and "known=2" in again.group(1)
    repeat = bc.client.get(again.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert repeat.status_code == 204
    # Filters apply: no new closed tickets.
    assert "neue Tickets" not in bc.get(url + "&status=closed").text


def test_rows_show_assignee_channel_service_city_and_link_to_the_ticket(
    board: Board, db: Database
) -> None:
    ref = make_ticket(
        db, "Mit allem", service="epayment", channel="telegram", assignee="agent2.muc"
    )
    page = board("agent.muc").get("/board/inbox").text
    assert f'href="/board/tickets/{ref}"' in page
    row = page.split("<tbody>", 1)[1]
    for text in ("agent2.muc", "Telegram", "ePayment", "München", "0 min"):
        assert text in row, text


def test_english_inbox(board: Board, db: Database) -> None:
    make_ticket(db, "Auf Englisch")
    bc = board("agent.muc")
    page = bc.get("/board/lang/en?next=/board/inbox").text
    assert "Inbox" in page and "Newest first" in page and "Reset filters" not in page
