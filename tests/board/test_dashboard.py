"""The dashboard page: period validation, own-city detail, isolation, the coordinator's view."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import select

from hotline.board.dashboard import today
from hotline.db import Database, utcnow
from hotline.domain import Audience, Channel
from hotline.models import City, Ticket, TicketStatus
from tests.board.conftest import BoardClient

pytestmark = pytest.mark.db

Board = Callable[[str], BoardClient]


def _add(db: Database, city: str, n: int, channel: Channel, subject: str) -> list[str]:
    refs = []
    with db.write() as s:
        city_id = s.exec(select(City).where(City.key == city)).one().id or 0
        for i in range(n):
            ref = f"HL-2099-{city[:3].upper()}{i:03d}"
            s.add(
                Ticket(
                    reference=ref,
                    subject=subject,
                    audience=Audience.external,
                    channel=channel,
                    status=TicketStatus.open,
                    responsible_city_id=city_id,
                    created_at=utcnow() - timedelta(hours=1),
                    first_response_due=utcnow() + timedelta(hours=5),
                )
            )
            refs.append(ref)
    return refs


def _table(html: str, caption: str) -> str:
    start = html.index(caption)
    return html[start : html.index("</table>", start)]


def _chart(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', html)
    assert match, "no chart data on the page"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_default_period_is_the_last_30_days_with_charts_tables_and_definitions(
    board: Board,
) -> None:
    page = board("agent.muc").get("/board/dashboard")
    assert page.status_code == 200
    html = page.text
    first = (today() - timedelta(days=29)).isoformat()
    assert f'name="from" type="date" value="{first}"' in html
    assert f'name="to" type="date" value="{today().isoformat()}"' in html
    assert "München im Detail" in html and "(Ihre Stadt)" in html
    for canvas in ("chart-first-response", "chart-first-contact", "chart-daily"):
        assert re.search(rf'<canvas id="{canvas}" role="img" aria-label="[^"]+"', html)
    assert html.count('<th scope="col"') > 10 and 'th scope="row"' in html
    assert '<h2 id="definitions-heading">Definitionen</h2>' in html
    assert "Erstkontaktlösung" in html and "75" in html and "65" in html
    assert "<script>" not in html and "style=" not in html  # CSP: no inline script or style
    data = _chart(html)
    assert data["cities"] == ["Augsburg", "München", "Nürnberg"]  # active cities, by name
    assert len(data["days"]) == 30  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2025-03-10&to=2025-03-01", "Das Startdatum muss vor dem Enddatum liegen"),
        ("from=2020-01-01&to=2025-01-01", "höchstens zwei Jahre"),
        ("from=gestern&to=2025-01-01", "gültiges Datum"),
        ("from=2025-01-01&to=2999-01-01", "nicht in der Zukunft"),
        ("from=1999-12-01&to=2000-01-02", "nicht vor dem 01.01.2000"),
    ],
)
def test_bad_periods_are_refused_with_a_friendly_message(
    board: Board, query: str, message: str
) -> None:
    page = board("agent.muc").get(f"/board/dashboard?{query}")
    assert page.status_code == 422
    assert message in page.text and 'role="alert"' in page.text
    assert 'aria-invalid="true"' in page.text
    assert "dashboard-data" not in page.text  # no figures for a refused period
    assert "Definitionen" in page.text  # the page itself still stands


def test_two_years_is_the_longest_period_and_long_periods_count_per_week(board: Board) -> None:
    last = today()
    first = last - timedelta(days=730)
    page = board("agent.muc").get(f"/board/dashboard?from={first}&to={last}")
    assert page.status_code == 200
    assert "Neue Tickets pro Woche je Stadt" in page.text
    assert len(_chart(page.text)["days"]) in (105, 106)  # type: ignore[arg-type]


def test_agent_sees_own_city_in_detail_and_others_only_as_figures(
    board: Board, db: Database
) -> None:
    muc = _add(db, "muenchen", 2, Channel.telegram, "Münchner Geheimnis")
    aux = _add(db, "augsburg", 3, Channel.phone, "Augsburger Geheimnis")
    html = board("agent.muc").get("/board/dashboard").text
    assert "München im Detail" in html
    channels = _table(html, "Neue Tickets nach Kanal")
    assert "Telegram" in channels and ">2<" in channels and "Telefon" not in channels
    status = _table(html, "Offene Tickets nach Status")
    assert re.search(r"in Bearbeitung</th><td class=\"num\">2<", status)
    # The comparison shows every city's totals side by side ...
    compare = _table(html, "Kennzahlen je Stadt und für das Netzwerk")
    new_row = compare[compare.index("Neue Tickets im Zeitraum") :].split("</tr>")[0]
    # Augsburg, München, Nürnberg, the network.
    assert re.findall(r"<td><span class=\"value\">(\d+)", new_row) == ["3", "2", "0", "5"]
    assert sum(_chart(html)["daily"][0]) == 3  # type: ignore[index, arg-type]
    # ... but no ticket of any city, no subject, no reference.
    for text in ("Geheimnis", *muc, *aux):
        assert text not in html


def test_agent_cannot_open_another_citys_detail(board: Board, db: Database) -> None:
    _add(db, "augsburg", 1, Channel.phone, "Augsburger Geheimnis")
    agent = board("agent.muc")
    refused = agent.get("/board/dashboard?city=augsburg")
    assert refused.status_code == 403
    assert "nur deren Mitarbeitenden" in refused.text and "Augsburg im Detail" not in refused.text
    admin = board("admin.muc")
    assert admin.get("/board/dashboard?city=augsburg").status_code == 403
    own = admin.get("/board/dashboard?city=muenchen")
    assert own.status_code == 200 and "München im Detail" in own.text
    assert 'id="city"' not in own.text  # only the coordination chooses a city


def test_augsburg_agent_sees_augsburg_detail(board: Board, db: Database) -> None:
    _add(db, "muenchen", 2, Channel.telegram, "Münchner Geheimnis")
    _add(db, "augsburg", 1, Channel.phone, "Augsburger Geheimnis")
    html = board("agent.aux").get("/board/dashboard").text
    assert "Augsburg im Detail" in html and "München im Detail" not in html
    channels = _table(html, "Neue Tickets nach Kanal")
    assert "Telefon" in channels and "Telegram" not in channels


def test_coordinator_sees_the_network_and_any_city(board: Board, db: Database) -> None:
    _add(db, "muenchen", 2, Channel.telegram, "x")
    _add(db, "augsburg", 1, Channel.phone, "y")
    coordinator = board("koordination")
    html = coordinator.get("/board/dashboard").text
    assert "Netzwerk gesamt im Detail" in html
    assert all(f'<option value="{k}"' in html for k in ("muenchen", "augsburg", "nuernberg"))
    channels = _table(html, "Neue Tickets nach Kanal")
    assert "Telegram" in channels and "Telefon" in channels
    aux = coordinator.get("/board/dashboard?city=augsburg").text
    assert "Augsburg im Detail" in aux
    assert "Telegram" not in _table(aux, "Neue Tickets nach Kanal")
    unknown = coordinator.get("/board/dashboard?city=atlantis")
    assert unknown.status_code == 422 and "Stadt aus der Liste" in unknown.text


def test_dashboard_needs_a_login_and_speaks_english(board: Board) -> None:
    anonymous = board(None)  # type: ignore[arg-type]
    response = anonymous.get("/board/dashboard", follow_redirects=False)
    assert response.status_code == 303 and "/board/login" in response.headers["location"]
    client = board("agent.muc")
    client.get("/board/lang/en?next=/board/dashboard")
    html = client.get("/board/dashboard").text
    assert "Cities compared" in html and "First-contact resolution" in html
    assert "Definitions" in html
