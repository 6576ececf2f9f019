"""The bot's city buttons follow the cities of the backend without a restart."""

from __future__ import annotations

import httpx
import pytest

from bot.backend import HttpBackend


async def test_a_city_added_later_shows_up_after_the_city_list_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cities = [{"key": "muenchen", "name": "München", "active": True}]
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        assert request.url.path == "/api/v1/cities"
        calls += 1
        return httpx.Response(200, json=cities)

    transport = httpx.MockTransport(handler)
    async with HttpBackend("http://hotline.test", "t", transport=transport) as backend:
        assert [c.key for c in await backend.cities()] == ["muenchen"]
        cities.append({"key": "regensburg", "name": "Regensburg", "active": True})
        # Within the expiry the list is not asked for again.
        assert [c.key for c in await backend.cities()] == ["muenchen"]
        assert calls == 1
        monkeypatch.setattr(HttpBackend, "CITY_LIST_TTL", 0.0)
        assert [c.key for c in await backend.cities()] == ["muenchen", "regensburg"]
        assert calls == 2
