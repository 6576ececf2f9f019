"""The board pages no other browser test visits, checked with axe (WCAG 2.1 AA) as well."""

from __future__ import annotations

from collections.abc import Callable

from tests.browser.conftest import Visit

Visitor = Callable[..., Visit]


def test_remaining_admin_pages_and_the_error_page_are_accessible(visit: Visitor) -> None:
    v = visit("koordination")
    for path, label, heading in (
        ("/board/admin/cities/new", "admin-city-new", "Stadt"),
        ("/board/admin/services/new", "admin-service-new", "Leistung"),
    ):
        response = v.go(path)
        assert response.status == 200
        assert heading in v.page.locator("h1").inner_text()
        v.check_accessible(label)
    v.go("/board/admin/services")
    v.page.locator("main table a").first.click()
    v.page.wait_for_load_state("networkidle")
    assert "/board/admin/services/" in v.page.url
    v.check_accessible("admin-service")
    v.shot("admin-service")
    missing = v.go("/board/tickets/HL-1999-000001")
    assert missing.status == 404
    assert v.page.get_by_role("alert").is_visible()
    v.check_accessible("error-404")
    v.shot("error-404")
