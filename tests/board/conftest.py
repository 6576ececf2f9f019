"""Board test helpers: a logged-in TestClient per staff user, with the CSRF token at hand."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hotline.app import create_app
from hotline.db import Database
from hotline.settings import Settings
from tests.conftest import TEST_PASSWORD, World

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_LOGIN_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


class BoardClient:
    """A browser-like client of the board: cookies, login, forms with the CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, username: str, password: str = TEST_PASSWORD) -> httpx.Response:
        page = self.client.get("/board/login")
        token = _LOGIN_CSRF.search(page.text)
        assert token, "login form without CSRF token"
        response = self.client.post(
            "/board/login",
            data={"username": username, "password": password, "csrf": token.group(1)},
            follow_redirects=False,
        )
        if response.status_code == 303:
            self.refresh_csrf()
        return response

    def refresh_csrf(self) -> None:
        page = self.client.get("/board/password")
        match = _CSRF.search(page.text)
        assert match, "board page without csrf meta tag"
        self.csrf = match.group(1)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        """A form post with the session's CSRF token (pass csrf=... in data to override)."""
        form = {"csrf": self.csrf, **(data or {})}
        kwargs.setdefault("follow_redirects", False)
        return self.client.post(path, data=form, **kwargs)

    def htmx(self, method: str, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf}
        return self.client.request(method, path, data=data, headers=headers)


@pytest.fixture
def board_app(settings: Settings, db: Database, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def board(settings: Settings, db: Database, world: World) -> Iterator[Callable[[str], BoardClient]]:
    """`board("agent.muc")` → a client logged in as that user (its own cookie jar)."""
    apps: list[TestClient] = []
    app = create_app(settings, db)

    def make(username: str | None = None) -> BoardClient:
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        apps.append(client)
        bc = BoardClient(client)
        if username is not None:
            response = bc.login(username)
            assert response.status_code == 303, response.text
        return bc

    yield make
    for client in apps:
        client.__exit__(None, None, None)
