"""Routing pages in the browser: a city admin runs a dry run, reads coverage and the other
tools; every page is checked with axe, at laptop and once at tablet width."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.browser.conftest import TABLET, Visit

Visitor = Callable[..., Visit]


def test_admin_dry_runs_a_question_and_reads_coverage(visit: Visitor) -> None:
    v = visit("admin.muenchen")
    v.go("/board/routing")
    assert v.page.get_by_role("heading", name="Routing-Regeln", level=1).is_visible()
    rules = v.page.locator("table.routing-rules")
    assert "epayment-alle" in rules.inner_text() and "nue-kfz-an-augsburg" in rules.inner_text()
    # München's own rule is editable, Augsburg's only readable.
    assert v.page.locator('a[href="/board/routing/rules/konten-intern-muenchen/edit"]').count() == 1
    assert v.page.locator('a[href="/board/routing/rules/epayment-alle/edit"]').count() == 0
    v.check_accessible("overview")
    v.shot("overview")

    v.page.get_by_role("link", name="Probelauf").click()
    v.page.wait_for_load_state("networkidle")
    v.check_accessible("dry-run-form")
    v.page.get_by_label("Herkunftsstadt").select_option("nuernberg")
    v.page.get_by_label("Dienst", exact=True).fill("kfz-online")
    v.page.get_by_label("Zielgruppe").select_option("external")
    v.page.get_by_label("Text der Frage").fill("Wie lange dauert die Online-Zulassung?")
    v.page.get_by_role("button", name="Probelauf starten").click()
    v.page.wait_for_load_state("networkidle")
    decision = v.page.locator("#decision")
    assert "Augsburg — Regel nue-kfz-an-augsburg" in decision.inner_text()
    trace = v.page.locator("ol.routing-trace li")
    assert trace.count() >= 2
    assert "passt nicht" in trace.first.inner_text()
    assert "passt – entscheidet" in trace.last.inner_text()
    v.check_accessible("dry-run-result")
    v.shot("dry-run-result")

    v.page.get_by_role("link", name="Abdeckung").click()
    v.page.wait_for_load_state("networkidle")
    table = v.page.locator("table.routing-coverage")
    assert table.locator('th[scope="col"]', has_text="Fragen aus Nürnberg").count() == 1
    assert "epayment-alle" in table.inner_text()
    v.check_accessible("coverage")
    v.shot("coverage")

    for label, path in (
        ("rule", "/board/routing/rules/konten-intern-muenchen"),
        ("edit", "/board/routing/rules/konten-intern-muenchen/edit"),
        ("new", "/board/routing/rules/new"),
        ("delegations", "/board/routing/delegations"),
        ("lint", "/board/routing/lint"),
        ("replay", "/board/routing/replay"),
        ("import", "/board/routing/import"),
    ):
        response = v.go(path)
        assert response is not None and response.status == 200, path
        v.check_accessible(label)
        v.shot(label)
    v.assert_no_console_errors()


@pytest.mark.parametrize("viewport", [TABLET], ids=["tablet"])
def test_routing_pages_at_tablet_width(visit: Visitor, viewport: dict[str, int]) -> None:
    v = visit("admin.muenchen", viewport=viewport)
    for label, path in (
        ("overview-tablet", "/board/routing"),
        ("coverage-tablet", "/board/routing/coverage"),
        (
            "dry-run-tablet",
            "/board/routing/dry-run?run=1&origin_city=muenchen&service=epayment&audience=external",
        ),
        ("edit-tablet", "/board/routing/rules/konten-intern-muenchen/edit"),
    ):
        v.go(path)
        # Nothing wider than the window except inside the scrollable table wrappers.
        overflow = v.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px"
        if label == "dry-run-tablet":
            assert "Augsburg — Regel epayment-alle" in v.page.locator("#decision").inner_text()
        v.check_accessible(label)
        v.shot(label)
    v.assert_no_console_errors()
