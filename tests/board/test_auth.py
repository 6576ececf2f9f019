"""Board access: login, lockout, rate limit, CSRF, logout, password change, language."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.models import StaffSession, StaffUser
from tests.board.conftest import BoardClient

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]


def test_anonymous_is_sent_to_login_and_back(board: Board) -> None:
    bc = board()
    response = bc.get("/board/password", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/board/login?next=/board/password"
    htmx = bc.client.get("/board/password", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/board/login")


def test_login_sets_a_strict_session_cookie_and_logout_ends_it(board: Board, db: Database) -> None:
    bc = board()
    response = bc.login("agent.muc")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "hl_board=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = bc.get("/board/password")
    assert page.status_code == 200 and "agent.muc" in page.text
    with db.read() as session:
        assert len(session.exec(select(StaffSession)).all()) == 1
    out = bc.post("/board/logout")
    assert out.status_code == 303
    with db.read() as session:
        assert session.exec(select(StaffSession)).all() == []
    assert bc.get("/board/password", follow_redirects=False).status_code == 303


def test_wrong_password_gives_one_message_and_locks_after_five(board: Board, db: Database) -> None:
    bc = board()
    for _ in range(4):
        response = bc.login("agent.muc", "wrong-password")
        assert response.status_code == 401
        assert "Benutzername oder Passwort ist falsch." in response.text
    unknown = bc.login("nobody", "wrong-password")
    assert "Benutzername oder Passwort ist falsch." in unknown.text
    fifth = bc.login("agent.muc", "wrong-password")
    assert fifth.status_code == 401 and "gesperrt" in fifth.text
    # Even the right password is refused while the account is locked.
    locked = bc.login("agent.muc")
    assert locked.status_code == 401 and "gesperrt" in locked.text
    with db.read() as session:
        user = session.exec(select(StaffUser).where(StaffUser.username == "agent.muc")).one()
        assert user.locked_until is not None
    # Other accounts are not affected.
    assert board().login("agent2.muc").status_code == 303


def test_login_attempts_per_address_are_rate_limited(board: Board) -> None:
    bc = board()
    codes = [bc.login("nobody", "x").status_code for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    assert "Zu viele Anmeldeversuche" in bc.login("agent.muc").text


def test_login_form_without_its_token_is_refused(board: Board) -> None:
    bc = board()
    response = bc.client.post(
        "/board/login", data={"username": "agent.muc", "password": "x"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "hl_board=" not in response.headers.get("set-cookie", "")


def test_state_changing_board_requests_need_the_csrf_token(board: Board, db: Database) -> None:
    bc = board("agent.muc")
    refused = bc.post("/board/logout", {"csrf": "forged"})
    assert refused.status_code == 403
    assert "Formular ist abgelaufen" in refused.text
    with db.read() as session:
        assert len(session.exec(select(StaffSession)).all()) == 1
    assert bc.htmx("POST", "/board/logout").status_code == 204  # header token accepted


def test_password_change_checks_and_ends_other_sessions(board: Board, db: Database) -> None:
    first = board("agent.muc")
    second = board("agent.muc")
    wrong = first.post(
        "/board/password", {"current": "nope", "new": "a-new-password", "repeat": "a-new-password"}
    )
    assert wrong.status_code == 422 and "aktuelle Passwort stimmt nicht" in wrong.text
    short = first.post(
        "/board/password",
        {"current": "correct horse battery", "new": "short", "repeat": "short"},
    )
    assert short.status_code == 422 and "mindestens 10 Zeichen" in short.text
    ok = first.post(
        "/board/password",
        {"current": "correct horse battery", "new": "a-new-password", "repeat": "a-new-password"},
    )
    assert ok.status_code == 303
    assert first.get("/board/password").status_code == 200
    assert second.get("/board/password", follow_redirects=False).status_code == 303
    assert board().login("agent.muc", "a-new-password").status_code == 303


def test_language_switch_and_security_headers(board: Board) -> None:
    bc = board("agent.muc")
    page = bc.get("/board/password")
    assert 'lang="de"' in page.text and "Passwort ändern" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    switched = bc.get("/board/lang/en?next=/board/password")
    assert switched.status_code == 200
    assert 'lang="en"' in switched.text and "Change password" in switched.text
    assert (
        bc.get("/board/lang/en?next=https://evil.example", follow_redirects=False).headers[
            "location"
        ]
        == "/board/"
    )


def test_unknown_board_page_is_a_friendly_html_404(board: Board) -> None:
    response = board("agent.muc").get("/board/does-not-exist")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Diese Seite gibt es nicht." in response.text
