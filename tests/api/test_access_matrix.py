"""Every API endpoint and public page × every kind of client → the expected outcome, one table.

The clients: anonymous, a München city token, an Augsburg city token (another city), the
network token, and a logged-in München staff member with only the board's session cookie (the
API takes bearer tokens only). The objects in the URLs belong to München, and each client works
on its own copy, so one client's allowed change cannot hide another client's refusal. The board's
routes have their own table in tests/board/test_access.py.

Outcomes: `ok` — the request got through the access checks (2xx/3xx, or a 409/422 answer about
the content); `auth` — 401 (no or unusable credentials); `deny` — 403 or 404. A new endpoint
without a row here fails `test_every_endpoint_is_in_the_table`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from hotline.db import Database
from hotline.models import City
from tests.access_objects import munich_objects
from tests.board.conftest import BoardClient
from tests.board.conftest import board as board  # the fixture, used below
from tests.conftest import World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
API = "/api/v1"
CLIENTS = ("anon", "city", "other_city", "network", "staff")


def expect(**outcomes: str) -> dict[str, str]:
    """Tokens default to `ok`, anonymous and the board session to `auth`."""
    table = {"anon": "auth", "city": "ok", "other_city": "ok", "network": "ok", "staff": "auth"}
    table.update(outcomes)
    return table


ANY_TOKEN = expect()
SAME_CITY = expect(other_city="deny")  # München's objects: München and the network only
CHANNELS = expect(city="deny", other_city="deny")  # citizen channels use the network token
PUBLIC = dict.fromkeys(CLIENTS, "ok")

TABLE: dict[tuple[str, str], dict[str, str]] = {
    # tickets
    ("POST", "/api/v1/tickets"): ANY_TOKEN,
    ("GET", "/api/v1/tickets"): ANY_TOKEN,  # each sees only its own city's tickets
    ("GET", "/api/v1/tickets/{ticket}"): SAME_CITY,
    ("GET", "/api/v1/tickets/{ticket}/messages"): SAME_CITY,
    ("GET", "/api/v1/tickets/{ticket}/events"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/messages"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/transitions"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/assign"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/transfer"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/merge"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/kb-link"): SAME_CITY,
    ("POST", "/api/v1/tickets/{ticket}/rating"): CHANNELS,
    # a document for a ticket: its channel or the responsible city's own integration
    ("POST", "/api/v1/tickets/{ticket}/attachments"): SAME_CITY,
    # catalogue
    ("GET", "/api/v1/cities"): ANY_TOKEN,
    ("GET", "/api/v1/cities/{city}"): ANY_TOKEN,
    ("GET", "/api/v1/cities/by-postcode/{postcode}"): ANY_TOKEN,
    ("GET", "/api/v1/services"): ANY_TOKEN,
    ("GET", "/api/v1/services/{service}"): ANY_TOKEN,
    # routing: everyone reads the network's rules; München changes München's
    ("GET", "/api/v1/routing/rules"): ANY_TOKEN,
    ("GET", "/api/v1/routing/rules/{rule}"): ANY_TOKEN,
    ("GET", "/api/v1/routing/rules/{rule}/history"): ANY_TOKEN,
    ("POST", "/api/v1/routing/rules"): SAME_CITY,  # a new rule owned by München
    ("PUT", "/api/v1/routing/rules/{rule}"): SAME_CITY,
    ("DELETE", "/api/v1/routing/rules/{rule}"): SAME_CITY,
    ("POST", "/api/v1/routing/rules/{delegation}/accept"): SAME_CITY,
    ("POST", "/api/v1/routing/rules/{delegation}/reject"): SAME_CITY,
    ("POST", "/api/v1/routing/dry-run"): ANY_TOKEN,
    ("GET", "/api/v1/routing/coverage"): ANY_TOKEN,
    ("GET", "/api/v1/routing/lint"): ANY_TOKEN,
    ("POST", "/api/v1/routing/check"): ANY_TOKEN,
    ("POST", "/api/v1/routing/replay"): ANY_TOKEN,
    ("GET", "/api/v1/routing/export"): ANY_TOKEN,
    ("POST", "/api/v1/routing/import"): SAME_CITY,  # a file with München's rules only
    # knowledge base
    ("POST", "/api/v1/kb/ask"): SAME_CITY,  # a city token asks as its own city only
    ("GET", "/api/v1/kb/search"): ANY_TOKEN,
    ("GET", "/api/v1/kb/entries/{entry}"): SAME_CITY,
    ("GET", "/api/v1/kb/services"): ANY_TOKEN,
    ("POST", "/api/v1/kb/asks/{ask}/feedback"): SAME_CITY,
    ("POST", "/api/v1/kb/asks/{ask}/choice"): SAME_CITY,
    ("GET", "/api/v1/kb/candidates"): ANY_TOKEN,  # each sees the candidates it may decide
    ("POST", "/api/v1/kb/candidates/{candidate}/accept"): SAME_CITY,
    ("POST", "/api/v1/kb/candidates/{candidate}/reject"): SAME_CITY,
    ("GET", "/api/v1/kb/gaps"): ANY_TOKEN,
    # citizen channels
    ("GET", "/api/v1/citizen/tickets"): CHANNELS,
    ("POST", "/api/v1/citizen/erase"): CHANNELS,
    # data protection: export and erasure of a person's data, for the network (coordinators)
    ("GET", "/api/v1/requesters/export"): CHANNELS,
    ("POST", "/api/v1/requesters/erase"): CHANNELS,
    # public: health and the citizen web chat
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    # Prometheus: open unless HOTLINE_METRICS_TOKEN is set (tests/test_metrics.py checks that)
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("POST", "/chat/send"): PUBLIC,  # refused without the page's CSRF token, as for everyone
    ("POST", "/chat/button"): PUBLIC,
    ("GET", "/chat/updates"): PUBLIC,
}

PLACEHOLDERS = {
    "/routing/rules/{key}/accept": "{delegation}",
    "/routing/rules/{key}/reject": "{delegation}",
    "/routing/rules/{key}": "{rule}",
    "/cities/{key}": "{city}",
    "/services/{key}": "{service}",
    "/kb/entries/{key}": "{entry}",
}


def _table_path(path: str) -> str:
    for fragment, placeholder in PLACEHOLDERS.items():
        if fragment in path:
            return path.replace("{key}", placeholder)
    return (
        path.replace("{ticket_id}", "{ticket}")
        .replace("{ask_id}", "{ask}")
        .replace("{candidate_id}", "{candidate}")
    )


def api_routes() -> set[tuple[str, str]]:
    from hotline.app import create_app
    from tests.conftest import settings_for

    app = create_app(settings_for("sqlite:////tmp/hotline-access-routes.db"))
    found: set[tuple[str, str]] = set()
    for item in app.routes:
        contexts = getattr(item, "effective_route_contexts", None)
        for route in list(contexts()) if contexts else [item]:
            path = getattr(route, "path", "")
            if path.startswith(("/board", "/static", "/docs", "/redoc", "/openapi")):
                continue
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, _table_path(path)))
    return found


def test_every_endpoint_is_in_the_table() -> None:
    routes = api_routes()
    missing = sorted(routes - TABLE.keys())
    stale = sorted(TABLE.keys() - routes)
    assert not missing, f"endpoints without an access row: {missing}"
    assert not stale, f"access rows for endpoints that no longer exist: {stale}"


# --- the objects each client works on ---------------------------------------------------------


@dataclass
class Objects:
    ticket: str
    twin: str  # a second München ticket (the merge target)
    rule: str
    delegation: str
    entry: str
    ask: int
    candidate: int
    city: str = "muenchen"
    service: str = "bayernid"
    postcode: str = "80331"


def _make_objects(client: TestClient, world: World, db: Database, who: str) -> Objects:
    network = world.headers("network")
    created = client.post(
        f"{API}/tickets",
        json={
            "subject": f"Frage {who}",
            "body": "Mein BayernID-Konto ist gesperrt.",
            "origin_city": "muenchen",
            "channel": "telegram",
            "requester": {"telegram_chat_id": "4711", "name": "Test"},
        },
        headers=network,
    )
    assert created.status_code == 201, created.text
    twin = client.post(
        f"{API}/tickets",
        json={
            "subject": f"Dieselbe Frage {who}",
            "body": "Noch einmal.",
            "origin_city": "muenchen",
        },
        headers=network,
    )
    with db.write() as session:
        cities = {c.key: c for c in session.exec(select(City)).all()}
        cities["muenchen"].postcodes = ["80331"]
        session.add(cities["muenchen"])
        entry, candidate = munich_objects(
            session,
            who,
            title=f"Passwort in München {who}",
            question=f"Wie setze ich mein Passwort in München zurück {who}?",
            variant=f"Neue Variante {who}",
        )
    asked = client.post(
        f"{API}/kb/ask",
        json={"question": f"Passwort in München zurücksetzen {who}", "city": "muenchen"},
        headers=world.headers("muenchen"),
    )
    assert asked.status_code == 200, asked.text
    return Objects(
        ticket=created.json()["reference"],
        twin=twin.json()["reference"],
        rule=f"muc-{who}",
        delegation=f"aux-an-muc-{who}",
        entry=entry.key,
        ask=asked.json()["ask_id"],
        candidate=candidate.id or 0,
    )


def _request(
    client: TestClient, method: str, path: str, o: Objects, headers: dict[str, str]
) -> Any:
    """A request whose body passes validation, so that the rights check is what decides."""
    json: Any = None
    content: bytes | None = None
    files: Any = None
    if path.endswith("/messages") and method == "POST":
        json = {"kind": "reply", "body": "Danke für Ihre Nachricht."}
    elif path.endswith("/transitions"):
        json = {"to": "open", "version": 1}
    elif path.endswith("/assign"):
        json = {"assignee": None}
    elif path.endswith("/transfer"):
        json = {"to_city": "nuernberg", "reason": "Zuständigkeit Nürnberg", "version": 1}
    elif path.endswith("/merge"):
        json = {"into": o.twin, "version": 1}
    elif path.endswith("/kb-link"):
        json = {"entry": o.entry}
    elif path.endswith("/rating"):
        json = {"rating": 5}
    elif path.endswith("/attachments"):
        files = {"file": ("notiz.txt", b"Hallo", "text/plain")}
    elif path == f"{API}/tickets" and method == "POST":
        json = {"subject": "Neue Frage", "body": "Text", "origin_city": "muenchen"}
    elif path == f"{API}/routing/rules" and method == "POST":
        json = {"id": f"{o.rule}-neu", "owner": "muenchen", "route_to": "muenchen"}
    elif method == "PUT":
        json = {"id": o.rule, "owner": "muenchen", "route_to": "muenchen", "version": 1}
    elif path.endswith("/dry-run"):
        json = {"origin_city": "muenchen", "service": "bayernid"}
    elif path.endswith(("/check", "/replay", "/import")):
        content = (
            "fallback: origin_city\ndefault_city: muenchen\n"
            f"rules:\n  - id: {o.rule}\n    owner: muenchen\n    priority: 50\n"
            "    route_to: muenchen\n"
        ).encode()
    elif path.endswith("/kb/ask"):
        json = {"question": "BayernID Passwort vergessen", "city": "muenchen"}
    elif path.endswith("/feedback"):
        json = {"helped": True}
    elif path.endswith("/choice"):
        json = {"entry": o.entry}
    elif path.endswith("/citizen/erase"):
        json = {"telegram_chat_id": "4711"}
    elif path.endswith("/requesters/erase"):
        json = {"telegram": "4711"}
    elif path.startswith("/chat/"):
        json = None
    params: dict[str, Any] | None = None
    if path.endswith("/citizen/tickets"):
        params = {"telegram_chat_id": "4711"}
    elif path.endswith("/requesters/export"):
        params = {"telegram": "4711"}
    elif method == "DELETE":
        params = {"version": 1}
    if path.endswith(("/check", "/replay", "/import")):
        headers = {**headers, "Content-Type": "application/yaml"}
    return client.request(
        method,
        path,
        json=json,
        content=content,
        files=files,
        params=params,
        headers=headers,
        follow_redirects=False,
    )


def _classify(response: Any) -> str:
    status = response.status_code
    if status == 401:
        return "auth"
    if status in (403, 404):
        return "deny"
    if status >= 500:
        return f"error {status}"
    return "ok"


# Who may do what is decided in the service layer, the same on both databases; the matrix
# runs on SQLite (the per-route tests run on both).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
def test_endpoint_access(route: tuple[str, str], board: Board, world: World, db: Database) -> None:
    method, template = route
    outcomes: dict[str, str] = {}
    for who in CLIENTS:
        # The staff member is logged in to the board; the API must not take the cookie.
        bc = board("agent.muc" if who == "staff" else None)
        objects = _make_objects(bc.client, world, db, who)
        headers = {
            "anon": {},
            "staff": {},
            "city": world.headers("muenchen"),
            "other_city": world.headers("augsburg"),
            "network": world.headers("network"),
        }[who]
        path = template.format(**vars(objects))
        outcomes[who] = _classify(_request(bc.client, method, path, objects, headers))
    assert outcomes == TABLE[route]
