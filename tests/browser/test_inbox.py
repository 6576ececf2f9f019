"""The inbox and the internal question in a real browser: filter, search, page, ask; axe."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.browser.conftest import TABLET, Visit

Visitor = Callable[..., Visit]
REF = re.compile(r"HL-\d{4}-\d{6}")


def shown_refs(v: Visit) -> list[str]:
    return REF.findall(v.page.inner_text("table.inbox-table tbody"))


def test_agent_filters_searches_and_pages_through_the_inbox(visit: Visitor) -> None:
    v = visit("agent1.muenchen")
    v.go("/board/")
    assert v.page.url.endswith("/board/inbox")
    assert v.page.get_by_role("heading", level=1).inner_text().startswith("Posteingang")
    assert "München" in v.page.get_by_role("heading", level=1).inner_text()
    everything = shown_refs(v)
    assert everything, "the demo has Munich tickets"
    v.check_accessible("inbox")
    v.shot("inbox")

    # Filter by status with the form (keyboard-usable checkboxes) — only open tickets remain.
    v.page.get_by_label("In Bearbeitung", exact=True).check()
    with v.page.expect_navigation():
        v.page.get_by_role("button", name="Anwenden").click()
    v.page.wait_for_load_state("networkidle")
    assert "status=open" in v.page.url
    statuses = v.page.locator("table.inbox-table tbody td:nth-child(2)").all_inner_texts()
    assert statuses and all(s.strip() == "In Bearbeitung" for s in statuses)
    tab = v.page.locator('.status-tabs a[href$="status=open"]')
    assert tab.inner_text().split()[-1] == str(len(statuses))
    v.check_accessible("inbox-open")

    # Search (reset the status first via the link).
    with v.page.expect_navigation():
        v.page.get_by_role("link", name="Filter zurücksetzen").first.click()
    v.page.wait_for_load_state("networkidle")
    v.page.get_by_role("searchbox", name="Suche").fill("Reisepass")
    with v.page.expect_navigation():
        v.page.keyboard.press("Enter")
    v.page.wait_for_load_state("networkidle")
    rows = v.page.locator("table.inbox-table tbody tr").all_inner_texts()
    assert rows and all("Reisepass" in r or "HL-" in r for r in rows)
    assert any("Reisepass" in r for r in rows)
    v.shot("inbox-search")

    # Ten per page: the next page continues without repeating a ticket.
    v.go("/board/inbox")
    v.page.get_by_label("Pro Seite").select_option("10")
    with v.page.expect_navigation():
        v.page.get_by_role("button", name="Anwenden").click()
    v.page.wait_for_load_state("networkidle")
    first = shown_refs(v)
    assert len(first) == 10
    with v.page.expect_navigation():
        v.page.get_by_role("link", name="Nächste Seite").click()
    v.page.wait_for_load_state("networkidle")
    second = shown_refs(v)
    assert second and not set(first) & set(second)
    assert v.page.get_by_role("link", name="Erste Seite").is_visible()
    v.check_accessible("inbox-page2")
    v.shot("inbox-page2")

    # A row opens the ticket page.
    link = v.page.locator("table.inbox-table tbody a").first
    assert (link.get_attribute("href") or "").startswith("/board/tickets/HL-")
    v.assert_no_console_errors()


def test_internal_question_is_routed_and_confirmed(visit: Visitor) -> None:
    v = visit("agent1.nuernberg")
    v.go("/board/internal")
    v.check_accessible("internal")
    # Submitting empty shows the messages next to the fields.
    v.page.get_by_role("button", name="Frage senden").click()
    v.page.wait_for_load_state("networkidle")
    assert "Bitte geben Sie einen Betreff an" in v.page.inner_text("main")
    v.check_accessible("internal-errors")
    v.shot("internal-errors")
    # The browser logs the intended 422 answer as a failed resource; nothing else may appear.
    assert all("422" in e for e in v.console_errors)
    v.console_errors.clear()
    v.page.get_by_label("Betreff").fill("ePayment für neue Gebühr einrichten")
    v.page.get_by_label("Dienst", exact=True).select_option("epayment")
    v.page.get_by_label("Priorität").select_option("high")
    v.page.get_by_label("Ihre Frage").fill("Wie legen wir eine neue Gebührenart im ePayment an?")
    v.page.get_by_role("button", name="Frage senden").click()
    v.page.wait_for_load_state("networkidle")
    summary = v.page.inner_text("#asked-summary")
    assert REF.search(summary) and "zuständig:" in summary
    v.check_accessible("internal-sent")
    v.shot("internal-sent")
    v.assert_no_console_errors()


@pytest.mark.parametrize("viewport", [TABLET], ids=["tablet"])
def test_inbox_at_tablet_width(visit: Visitor, viewport: dict[str, int]) -> None:
    v = visit("koordination", viewport=viewport)
    v.go("/board/inbox?city=augsburg")
    assert "Augsburg" in v.page.get_by_role("heading", level=1).inner_text()
    # The table scrolls inside its box; the page itself does not get wider than the screen.
    width = v.page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"]
    v.check_accessible("inbox-tablet")
    v.shot("inbox-tablet")
    v.assert_no_console_errors()
