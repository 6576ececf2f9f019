"""The dashboard in the browser: charts render (Chart.js), the period changes, accessibility."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from hotline.board.dashboard import today
from tests.browser.conftest import TABLET, Visit

Visitor = Callable[..., Visit]
CHARTS = ("#chart-first-response", "#chart-first-contact", "#chart-daily")


def _charts_drawn(v: Visit) -> None:
    v.page.wait_for_selector("html[data-charts='ready']")
    for selector in CHARTS:
        box = v.page.locator(selector).bounding_box()
        assert box and box["width"] > 150 and box["height"] > 150, selector
    # Chart.js keeps one chart per canvas; each has its datasets (bars + target line).
    counts = v.page.evaluate(
        "ids => ids.map(id => { const c = Chart.getChart(document.querySelector(id));"
        " return c ? c.data.datasets.length : 0; })",
        list(CHARTS),
    )
    assert counts[0] == 2 and counts[1] == 2 and counts[2] >= 3, counts


def test_coordinator_sees_charts_and_changes_the_period(visit: Visitor) -> None:
    v = visit("koordination")
    v.go("/board/dashboard")
    assert v.page.get_by_role("heading", name="Dashboard: Kennzahlen").is_visible()
    assert v.page.get_by_role("heading", name="Netzwerk gesamt im Detail").is_visible()
    _charts_drawn(v)
    # The demo's tickets are from the last days: they show up in the default period.
    new_tickets = v.page.locator("table.compare tr", has_text="Neue Tickets im Zeitraum")
    assert new_tickets.locator("td").last.inner_text().strip() != "0"
    v.shot("default")
    v.check_accessible("default")

    first = today() - timedelta(days=6)
    v.page.get_by_label("Von", exact=True).fill(first.isoformat())
    v.page.get_by_label("Detailansicht").select_option("augsburg")
    v.page.get_by_role("button", name="Anzeigen").click()
    v.page.wait_for_load_state("networkidle")
    assert f"from={first.isoformat()}" in v.page.url
    assert v.page.get_by_role("heading", name="Augsburg im Detail").is_visible()
    _charts_drawn(v)
    labels = v.page.evaluate("Chart.getChart(document.querySelector('#chart-daily')).data.labels")
    assert len(labels) == 7
    v.shot("seven-days-augsburg")
    v.check_accessible("seven-days-augsburg")
    v.assert_no_console_errors()

    # A reversed period is refused next to the field, without figures.
    v.page.get_by_label("Von", exact=True).fill(today().isoformat())
    v.page.get_by_label("Bis", exact=True).fill(first.isoformat())
    v.page.get_by_role("button", name="Anzeigen").click()
    v.page.wait_for_load_state("networkidle")
    assert "vor dem Enddatum" in v.page.get_by_role("alert").inner_text()
    assert v.page.locator("canvas").count() == 0
    v.check_accessible("refused")
    v.shot("refused")


@pytest.mark.parametrize("viewport", [TABLET], ids=["tablet"])
def test_agent_dashboard_at_tablet_width(visit: Visitor, viewport: dict[str, int]) -> None:
    v = visit("agent1.muenchen", viewport=viewport)
    v.go("/board/dashboard")
    assert v.page.get_by_role("heading", name="München im Detail").is_visible()
    _charts_drawn(v)
    # The page itself does not scroll sideways (wide tables scroll in their own box).
    assert v.page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    v.page.get_by_text("Tabelle mit allen Werten").click()
    v.shot("tablet")
    v.check_accessible("tablet")
    v.assert_no_console_errors()
