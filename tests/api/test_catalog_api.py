"""Cities and services over the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import World


def test_cities_list_and_get(client: TestClient, world: World) -> None:
    h = world.headers("augsburg")
    keys = [c["key"] for c in client.get("/api/v1/cities", headers=h).json()]
    assert set(keys) == {"muenchen", "augsburg", "nuernberg", "dresden"}
    muc = client.get("/api/v1/cities/muenchen", headers=h).json()
    assert muc["ags"] == "09162000" and muc["service_hours"]["mon"] == [["08:00", "16:00"]]
    r = client.get("/api/v1/cities/berlin", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "city_not_found"


def test_services_list_filter_paginate_and_get(client: TestClient, world: World) -> None:
    h = world.headers()
    page = client.get("/api/v1/services", params={"limit": 2}, headers=h).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(
        "/api/v1/services", params={"limit": 2, "cursor": page["next_cursor"]}, headers=h
    ).json()
    assert [s["key"] for s in rest["items"]] == ["gewerbe-online"] and rest["next_cursor"] is None
    owned = client.get("/api/v1/services", params={"owner": "augsburg"}, headers=h).json()["items"]
    assert [s["key"] for s in owned] == ["epayment"] and owned[0]["owner_city"] == "augsburg"
    assert client.get("/api/v1/services", params={"owner": "berlin"}, headers=h).status_code == 422
    by_leika = client.get("/api/v1/services/99050012104000", headers=h).json()
    assert by_leika["key"] == "gewerbe-online"
    assert client.get("/api/v1/services/nope", headers=h).json()["code"] == "service_not_found"
