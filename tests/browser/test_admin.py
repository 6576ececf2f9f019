"""The administration pages in the browser: users, tokens, service hours, services."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.browser.conftest import TABLET, Visit

Visitor = Callable[..., Visit]


def expected_422(v: Visit) -> None:
    """A refused form answers 422 on purpose; Chromium logs that status as a console error."""
    assert any("422" in e for e in v.console_errors)
    v.console_errors[:] = [e for e in v.console_errors if "422" not in e]


def test_city_admin_creates_a_user_and_issues_and_revokes_a_token(visit: Visitor) -> None:
    v = visit("admin.muenchen")
    page = v.page
    page.on("dialog", lambda dialog: dialog.accept())
    v.go("/board/admin")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Verwaltung")
    v.check_accessible("admin-overview")
    v.shot("admin-overview")

    page.get_by_role("navigation", name="Bereiche der Verwaltung").get_by_role(
        "link", name="Benutzer"
    ).click()
    page.wait_for_load_state("networkidle")
    assert "agent1.muenchen" in page.inner_text("main")
    assert "agent1.augsburg" not in page.inner_text("main")
    v.check_accessible("admin-users")

    page.get_by_role("link", name="Neuen Benutzer anlegen").first.click()
    page.wait_for_load_state("networkidle")
    v.check_accessible("admin-user-new")
    page.get_by_label("Benutzername").fill("browser.muenchen")
    page.get_by_label("Anzeigename").fill("Bruno Browser")
    page.get_by_label("E-Mail").fill("bruno@muenchen.example")
    page.get_by_label("Startpasswort").fill("kurz")
    page.get_by_role("button", name="Benutzer anlegen").click()
    page.wait_for_load_state("networkidle")
    assert "Das Passwort braucht mindestens 10 Zeichen." in page.inner_text("main")
    assert page.get_by_label("Startpasswort").get_attribute("aria-invalid") == "true"
    v.check_accessible("admin-user-new-error")
    v.shot("admin-user-new-error")
    expected_422(v)
    page.get_by_label("Startpasswort").fill("")  # let the board generate one
    page.get_by_role("button", name="Benutzer anlegen").click()
    page.wait_for_load_state("networkidle")
    assert "Nur jetzt sichtbar" in page.inner_text("main")
    password = page.get_by_label("Startpasswort für browser.muenchen").input_value()
    assert len(password) >= 10
    assert page.get_by_role("button", name="Kopieren").is_visible()  # admin.js shows it
    v.check_accessible("admin-user-created")
    v.shot("admin-user-created")
    page.get_by_role("link", name="Weiter zum Benutzer").click()
    page.wait_for_load_state("networkidle")
    assert "Bruno Browser" in page.inner_text("h1")
    assert password not in page.content()
    v.check_accessible("admin-user")
    v.shot("admin-user")

    v.go("/board/admin/tokens")
    v.check_accessible("admin-tokens")
    page.get_by_label("Name").fill("Browser-Test Website")
    page.get_by_role("button", name="Token ausstellen").click()
    page.wait_for_load_state("networkidle")
    secret = page.get_by_label("Token „Browser-Test Website“").input_value()
    assert secret.startswith("hl_")
    v.check_accessible("admin-token-created")
    v.shot("admin-token-created")
    headers = {"Authorization": f"Bearer {secret}"}
    assert page.request.get(v.base + "/api/v1/cities", headers=headers).status == 200

    v.go("/board/admin/tokens")
    assert secret not in page.content()
    page.get_by_role("button", name="Token „Browser-Test Website“ widerrufen").click()
    page.wait_for_load_state("networkidle")
    assert "Das Token „Browser-Test Website“ wurde widerrufen." in page.inner_text("#flash")
    row = page.get_by_role("row", name="Browser-Test Website")
    assert "widerrufen" in row.inner_text()
    assert page.request.get(v.base + "/api/v1/cities", headers=headers).status == 401
    v.check_accessible("admin-tokens-revoked")
    v.shot("admin-tokens-revoked")
    v.assert_no_console_errors()


def test_coordinator_edits_a_city_s_service_hours(visit: Visitor) -> None:
    v = visit("koordination")
    page = v.page
    v.go("/board/admin/cities")
    v.check_accessible("admin-cities")
    v.shot("admin-cities")
    page.get_by_role("link", name="Nürnberg").click()
    page.wait_for_load_state("networkidle")
    v.check_accessible("admin-city")
    hours = page.get_by_label("Servicezeiten")
    original = hours.input_value()
    assert original.startswith("Mo 08:00-16:00")

    hours.fill("Mo 08:00-16:00\nDi 16:00-08:00")
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_load_state("networkidle")
    assert "Zeile 2 (Di): 16:00-08:00 endet, bevor es beginnt." in page.inner_text("main")
    assert page.get_by_label("Servicezeiten").get_attribute("aria-invalid") == "true"
    v.check_accessible("admin-city-error")
    v.shot("admin-city-error")
    expected_422(v)

    page.get_by_label("Servicezeiten").fill(original.replace("Fr 08:00-12:00", "Fr 08:00-13:00"))
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_load_state("networkidle")
    assert "Die Angaben zu Nürnberg wurden gespeichert." in page.inner_text("#flash")
    assert "Fr 08:00-13:00" in page.get_by_label("Servicezeiten").input_value()
    v.check_accessible("admin-city-saved")
    v.shot("admin-city-saved")
    # Put the demo's hours back for other tests on the shared demo server.
    page.get_by_label("Servicezeiten").fill(original)
    page.get_by_role("button", name="Speichern").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_label("Servicezeiten").input_value() == original

    v.go("/board/admin/services")
    v.check_accessible("admin-services")
    page.get_by_role("searchbox", name="Suche").fill("ePayment")
    page.wait_for_load_state("networkidle")
    # htmx replaces the results while typing (no submit) and keeps the URL in step.
    page.wait_for_function(
        "() => document.querySelector('#service-results').innerText.includes('1–1 von 1')"
    )
    assert "ePayment (Online-Bezahlung)" in page.inner_text("#service-results")
    assert "q=ePayment" in page.url
    v.check_accessible("admin-services-search")
    v.shot("admin-services-search")
    v.assert_no_console_errors()


@pytest.mark.parametrize("viewport", [TABLET], ids=["tablet"])
def test_admin_pages_at_tablet_width(visit: Visitor, viewport: dict[str, int]) -> None:
    v = visit("admin.muenchen", viewport=viewport)
    v.go("/board/admin/users")
    v.check_accessible("admin-users-tablet")
    v.shot("admin-users-tablet")
    v.go("/board/admin/cities/muenchen")
    assert v.page.get_by_role("button", name="Servicezeiten speichern").is_visible()
    v.check_accessible("admin-city-tablet")
    v.shot("admin-city-tablet")
    v.go("/board/admin/tokens")
    v.check_accessible("admin-tokens-tablet")
    v.shot("admin-tokens-tablet")
    width = v.page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], "the page scrolls sideways at tablet width"
    v.assert_no_console_errors()
