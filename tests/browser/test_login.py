"""The login page and the layout in the browser: keyboard login, language, accessibility."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.browser.conftest import TABLET, Visit

Visitor = Callable[..., Visit]


def test_login_with_the_keyboard_and_log_out(visit: Visitor) -> None:
    v = visit(None)
    v.go("/board/password")
    assert "/board/login" in v.page.url
    v.check_accessible("login")
    v.shot("login")
    v.page.focus("#username")
    v.page.keyboard.type("agent1.muenchen")
    v.page.keyboard.press("Tab")
    v.page.keyboard.type("hotline-demo")
    v.page.keyboard.press("Enter")
    v.page.wait_for_load_state("networkidle")
    v.page.wait_for_url(v.base + "/board/password")
    assert "Florian Gruber" in v.page.inner_text("header")
    v.check_accessible("password")
    v.page.get_by_role("button", name="Abmelden").click()
    v.page.wait_for_load_state("networkidle")
    assert "/board/login" in v.page.url
    assert "Sie wurden abgemeldet." in v.page.inner_text("#flash")
    v.assert_no_console_errors()


def test_wrong_password_message_is_announced(visit: Visitor) -> None:
    v = visit(None)
    v.go("/board/login")
    v.page.get_by_label("Benutzername").fill("agent1.muenchen")
    v.page.get_by_label("Passwort", exact=True).fill("falsch")
    v.page.get_by_role("button", name="Anmelden").click()
    alert = v.page.get_by_role("alert")
    assert "Benutzername oder Passwort ist falsch." in alert.inner_text()
    v.check_accessible("login-error")


@pytest.mark.parametrize("viewport", [TABLET], ids=["tablet"])
def test_english_layout_at_tablet_width(visit: Visitor, viewport: dict[str, int]) -> None:
    v = visit("koordination", viewport=viewport, lang="en")
    v.go("/board/password")
    assert v.page.get_by_role("heading", name="Change password").is_visible()
    assert v.page.locator("html").get_attribute("lang") == "en"
    v.check_accessible("password-en-tablet")
    v.shot("password-en-tablet")
    v.assert_no_console_errors()
