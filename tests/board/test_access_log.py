"""The staff access log page: coordinators see who opened which ticket and when."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import select

from hotline.db import Database, utcnow
from hotline.models import StaffAccess, StaffUser, Ticket
from tests.board.conftest import BoardClient
from tests.conftest import World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
PAGE = "/board/access-log"


def _ticket(bc: BoardClient, world: World, subject: str = "Frage zum Konto") -> str:
    response = bc.client.post(
        "/api/v1/tickets",
        json={"subject": subject, "body": "Konto gesperrt.", "origin_city": "muenchen"},
        headers=world.headers("muenchen"),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


def _rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return [html.unescape(r) for r in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)]


def test_an_opened_ticket_shows_up_for_the_coordinator_only(
    board: Board, world: World, db: Database
) -> None:
    agent, coord = board("agent.muc"), board("koordination")
    ref = _ticket(agent, world)
    before = _rows(coord.get(PAGE).text)
    assert agent.get(f"/board/tickets/{ref}").status_code == 200

    page = coord.get(PAGE)
    assert page.status_code == 200
    rows = _rows(page.text)
    assert len(rows) == len(before) + 1
    newest = rows[0]
    assert ref in newest and "agent.muc" in newest and "München" in newest

    for username in ("agent.muc", "admin.muc"):  # other cities' staff: see test_access.py
        assert board(username).get(PAGE).status_code == 403, username
    anonymous = board().get(PAGE, follow_redirects=False)
    assert anonymous.status_code == 303 and "/board/login" in anonymous.headers["location"]


def test_filters_by_user_ticket_and_date(board: Board, world: World, db: Database) -> None:
    agent, other, coord = board("agent.muc"), board("agent2.muc"), board("koordination")
    first, second = _ticket(agent, world, "Erste Frage"), _ticket(agent, world, "Zweite Frage")
    agent.get(f"/board/tickets/{first}")
    other.get(f"/board/tickets/{second}")

    by_user = _rows(coord.get(PAGE, params={"user": "agent2.muc"}).text)
    assert len(by_user) == 1 and second in by_user[0]
    by_ticket = _rows(coord.get(PAGE, params={"ticket": first.lower()}).text)
    assert len(by_ticket) == 1 and "agent.muc" in by_ticket[0]
    today = utcnow().date()
    assert len(_rows(coord.get(PAGE, params={"since": today.isoformat()}).text)) == 2
    tomorrow = (today + timedelta(days=2)).isoformat()
    assert _rows(coord.get(PAGE, params={"since": tomorrow}).text) == []
    assert "Keine Zugriffe gefunden." in coord.get(PAGE, params={"since": tomorrow}).text
    yesterday = (today - timedelta(days=2)).isoformat()
    assert _rows(coord.get(PAGE, params={"until": yesterday}).text) == []
    # A date that does not parse is ignored rather than an error.
    assert coord.get(PAGE, params={"since": "gestern"}).status_code == 200


def test_pages_with_a_keyset_cursor(board: Board, world: World, db: Database) -> None:
    coord = board("koordination")
    ref = _ticket(coord, world)
    with db.write() as s:
        staff = s.exec(select(StaffUser).where(StaffUser.username == "agent.muc")).one()
        ticket = s.exec(select(Ticket).where(Ticket.reference == ref)).one()
        start = utcnow() - timedelta(hours=1)
        for i in range(30):
            s.add(
                StaffAccess(
                    staff_id=staff.id or 0,
                    ticket_id=ticket.id or 0,
                    at=start + timedelta(minutes=i),
                )
            )
    first = coord.get(PAGE, params={"limit": "25", "user": "agent.muc"})
    assert len(_rows(first.text)) == 25
    match = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert match, "no link to the next page"
    second = coord.get(html.unescape(match.group(1)))
    assert len(_rows(second.text)) == 5 and 'rel="next"' not in second.text
    assert "Erste Seite" in second.text
    broken = coord.get(PAGE, params={"cursor": "kaputt", "user": "agent.muc"})
    assert broken.status_code == 200 and len(_rows(broken.text)) == 30
    assert "Der Link zur Seite ist ungültig" in broken.text


def test_the_page_speaks_english(board: Board, world: World) -> None:
    coord = board("koordination")
    coord.get("/board/lang/en?next=/board/access-log")
    page = coord.get(PAGE)
    assert (
        page.status_code == 200
        and "Access log" in page.text
        and "Zugriffsprotokoll" not in page.text
    )
