"""Every board route × every kind of visitor → the expected outcome, in one table.

The visitors: anonymous, an agent of München, a city admin of München, the coordinator, an
agent and a city admin of another city (Augsburg), and an API client with München's city
token or the network token (the board takes no bearer tokens: they count as anonymous).
The objects in the URLs (ticket, rule, KB entry, candidate, user, token, city, service)
belong to München, and each visitor works on its own copy, so one visitor's allowed change
cannot hide another visitor's refusal.

Outcomes: `ok` — the request got through the access checks (2xx/3xx that is not the login,
or a 409/422 answer about the content); `login` — sent to the login form; `deny` — 403 or
404. A new board route without a row here fails `test_every_board_route_is_in_the_table`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.models import Service, StaffUser
from hotline.services.auth import create_token
from tests.access_objects import munich_objects
from tests.board.conftest import BoardClient
from tests.conftest import World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]

VISITORS = {
    "anon": None,
    "agent": "agent.muc",
    "admin": "admin.muc",
    "coord": "koordination",
    "other_agent": "agent.aux",
    "other_admin": "admin.aux",
}
# API tokens are no board login (the API's own matrix is tests/api/test_access_matrix.py).
TOKENS = ("city_token", "network_token")
ALL_STAFF = {v: "ok" for v in VISITORS if v != "anon"}


def expect(**outcomes: str) -> dict[str, str]:
    """Logged-in visitors default to `ok`, anonymous to `login`; name the exceptions."""
    table = {"anon": "login", **ALL_STAFF, **dict.fromkeys(TOKENS, "login")}
    table.update(outcomes)
    return table


ANY_STAFF = expect()
SAME_CITY = expect(other_agent="deny", other_admin="deny")
ADMINS = expect(agent="deny", other_agent="deny")
OWN_CITY_ADMINS = expect(agent="deny", other_agent="deny", other_admin="deny")
COORDINATOR = expect(agent="deny", admin="deny", other_agent="deny", other_admin="deny")
VISITORS_ALL = (*VISITORS, *TOKENS)
PUBLIC = dict.fromkeys(VISITORS_ALL, "ok")

# (method, path) → expected outcome per visitor; the path's {placeholders} are filled with
# the visitor's own München object.
TABLE: dict[tuple[str, str], dict[str, str]] = {
    # login, account, language
    ("GET", "/board/login"): PUBLIC,
    # without the login form's own token every login post is refused (403)
    ("POST", "/board/login"): dict.fromkeys(VISITORS_ALL, "deny"),
    # logging out ends on the login page (for the anonymous visitor, too)
    ("POST", "/board/logout"): dict.fromkeys(VISITORS_ALL, "login"),
    ("GET", "/board/password"): ANY_STAFF,
    ("POST", "/board/password"): ANY_STAFF,
    ("GET", "/board/lang/{lang}"): PUBLIC,
    # inbox, internal question, dashboard: own city's data (isolation: see their tests)
    ("GET", "/board/"): ANY_STAFF,
    ("GET", "/board/inbox"): ANY_STAFF,
    ("GET", "/board/inbox/new"): ANY_STAFF,
    ("GET", "/board/internal"): ANY_STAFF,
    ("POST", "/board/internal"): ANY_STAFF,
    ("GET", "/board/dashboard"): ANY_STAFF,
    # a München ticket: München's staff and the coordinator only
    ("GET", "/board/tickets/{reference}"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/reply"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/note"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/assign"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/status"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/transfer"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/merge"): SAME_CITY,
    ("POST", "/board/tickets/{reference}/kb-draft"): SAME_CITY,
    # routing: everyone reads the network's rules; München's admin changes München's
    ("GET", "/board/routing"): ANY_STAFF,
    ("GET", "/board/routing/rules/new"): ADMINS,
    ("POST", "/board/routing/rules/new"): ADMINS,
    ("GET", "/board/routing/rules/{rule}"): ANY_STAFF,
    ("GET", "/board/routing/rules/{rule}/edit"): OWN_CITY_ADMINS,
    ("POST", "/board/routing/rules/{rule}/edit"): OWN_CITY_ADMINS,
    ("POST", "/board/routing/rules/{rule}/delete"): OWN_CITY_ADMINS,
    # accepting a delegation is for the admin of the city it is addressed to (here München)
    ("POST", "/board/routing/rules/{delegation}/accept"): OWN_CITY_ADMINS,
    ("POST", "/board/routing/rules/{delegation}/reject"): OWN_CITY_ADMINS,
    ("GET", "/board/routing/delegations"): ANY_STAFF,
    ("GET", "/board/routing/dry-run"): ANY_STAFF,
    ("GET", "/board/routing/coverage"): ANY_STAFF,
    ("GET", "/board/routing/lint"): ANY_STAFF,
    ("GET", "/board/routing/replay"): ANY_STAFF,
    ("POST", "/board/routing/replay"): ANY_STAFF,
    ("GET", "/board/routing/import"): ANY_STAFF,  # anyone may check a file; importing: admins
    ("POST", "/board/routing/import"): ADMINS,
    ("GET", "/board/routing/export"): ANY_STAFF,
    # knowledge base: staff read shared and own-city entries; admins edit their city's
    ("GET", "/board/kb"): ANY_STAFF,
    ("GET", "/board/kb/try"): ANY_STAFF,
    ("POST", "/board/kb/preview"): ANY_STAFF,
    ("GET", "/board/kb/candidates"): ADMINS,
    ("POST", "/board/kb/candidates/{candidate}/accept"): OWN_CITY_ADMINS,
    ("POST", "/board/kb/candidates/{candidate}/reject"): OWN_CITY_ADMINS,
    ("GET", "/board/kb/gaps"): ANY_STAFF,
    ("GET", "/board/kb/new"): ADMINS,
    ("POST", "/board/kb/new"): ADMINS,
    ("GET", "/board/kb/{entry}"): SAME_CITY,
    ("GET", "/board/kb/{entry}/edit"): OWN_CITY_ADMINS,
    ("POST", "/board/kb/{entry}/edit"): OWN_CITY_ADMINS,
    ("POST", "/board/kb/{entry}/delete"): OWN_CITY_ADMINS,
    # administration
    ("GET", "/board/admin"): ADMINS,
    ("GET", "/board/admin/users"): ADMINS,
    ("GET", "/board/admin/users/new"): ADMINS,
    ("POST", "/board/admin/users"): ADMINS,
    ("GET", "/board/admin/users/{user}"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/users/{user}"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/users/{user}/deactivate"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/users/{user}/activate"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/users/{user}/unlock"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/users/{user}/password"): OWN_CITY_ADMINS,
    ("GET", "/board/admin/cities"): ADMINS,
    ("GET", "/board/admin/cities/new"): COORDINATOR,
    ("POST", "/board/admin/cities"): COORDINATOR,
    ("GET", "/board/admin/cities/{city}"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/cities/{city}"): COORDINATOR,
    ("POST", "/board/admin/cities/{city}/hours"): OWN_CITY_ADMINS,
    ("POST", "/board/admin/cities/{city}/escalation"): OWN_CITY_ADMINS,
    ("GET", "/board/admin/tokens"): ADMINS,
    ("POST", "/board/admin/tokens"): ADMINS,
    ("POST", "/board/admin/tokens/{token}/revoke"): OWN_CITY_ADMINS,
    ("GET", "/board/admin/services"): ADMINS,
    ("GET", "/board/admin/services/new"): COORDINATOR,
    ("POST", "/board/admin/services"): COORDINATOR,
    ("GET", "/board/admin/services/{service}"): ADMINS,
    ("POST", "/board/admin/services/{service}"): COORDINATOR,
    # data protection: the staff access log is for coordinators only
    ("GET", "/board/access-log"): COORDINATOR,
}

# The app's parameter names → the placeholders of the table (so the table reads clearly).
PARAMS = {
    "reference": "reference",
    "key": None,  # decided by the path: rule, entry or city
    "candidate_id": "candidate",
    "user_id": "user",
    "token_id": "token",
    "service_id": "service",
    "lang": "lang",
}


def board_routes() -> set[tuple[str, str]]:
    """(method, path) of every board route, with the table's placeholder names."""
    from hotline.app import create_app
    from tests.conftest import settings_for

    app = create_app(settings_for("sqlite:////tmp/hotline-access-routes.db"))
    found: set[tuple[str, str]] = set()
    # FastAPI keeps included routers as such; effective_route_contexts() flattens them.
    for item in app.routes:
        contexts = getattr(item, "effective_route_contexts", None)
        routes = list(contexts()) if contexts else [item]
        for route in routes:
            path = getattr(route, "path", "")
            if path != "/board" and not path.startswith("/board/"):
                continue
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, _table_path(path)))
    return found


def _table_path(path: str) -> str:
    if "/routing/rules/{key}/accept" in path or "/routing/rules/{key}/reject" in path:
        return path.replace("{key}", "{delegation}")
    if "/routing/rules/{key}" in path:
        return path.replace("{key}", "{rule}")
    if path.startswith("/board/kb/{key}"):
        return path.replace("{key}", "{entry}")
    if "/admin/cities/{key}" in path:
        return path.replace("{key}", "{city}")
    for name, placeholder in PARAMS.items():
        if placeholder:
            path = path.replace("{" + name + "}", "{" + placeholder + "}")
    return path


def test_every_board_route_is_in_the_table() -> None:
    routes = board_routes()
    missing = sorted(routes - TABLE.keys())
    stale = sorted(TABLE.keys() - routes)
    assert not missing, f"board routes without an access row: {missing}"
    assert not stale, f"access rows for routes that no longer exist: {stale}"


# --- the objects each visitor works on ---------------------------------------------------------


@dataclass
class Objects:
    reference: str
    rule: str
    delegation: str
    entry: str
    candidate: int
    user: int
    token: int
    city: str = "muenchen"
    service: int = 0
    lang: str = "en"


def _make_objects(bc: BoardClient, world: World, db: Database, who: str) -> Objects:
    response = bc.client.post(
        "/api/v1/tickets",
        json={
            "subject": f"Frage von {who}",
            "body": "Mein BayernID-Konto ist gesperrt.",
            "origin_city": "muenchen",
        },
        headers=world.headers("muenchen"),
    )
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    with db.write() as session:
        entry, candidate = munich_objects(
            session,
            who,
            title=f"Münchner Eintrag {who}",
            question=f"Wie geht das in München {who}?",
            variant=f"Eine neue Variante {who}",
        )
        target = session.exec(select(StaffUser).where(StaffUser.username == "agent2.muc")).one()
        token = create_token(session, name=f"Token {who}", city_key="muenchen").token
        service = session.exec(select(Service).where(Service.key == "bayernid")).one()
        return Objects(
            reference=reference,
            rule=f"muc-{who}",
            delegation=f"aux-an-muc-{who}",
            entry=entry.key,
            candidate=candidate.id or 0,
            user=target.id or 0,
            token=token.id or 0,
            service=service.id or 0,
        )


def _classify(response: Any) -> str:
    status = response.status_code
    location = response.headers.get("location", "") + response.headers.get("hx-redirect", "")
    if status in (303, 401) and "/board/login" in location:
        return "login"
    if status in (403, 404):
        return "deny"
    if status >= 500:
        return f"error {status}"
    return "ok"


def _form_for(path: str) -> dict[str, str]:
    """A body that passes form validation, so that the rights check is what decides."""
    if path.endswith("/reply") or path.endswith("/note"):
        return {"body": "Danke für Ihre Nachricht.", "version": "1"}
    if path.endswith("/status"):
        return {"status": "waiting", "version": "1"}
    if path.endswith("/transfer"):
        return {"city": "nuernberg", "reason": "Zuständigkeit Nürnberg", "version": "1"}
    if path.endswith("/merge"):
        return {"target": "HL-1999-000001", "version": "1"}
    if path.endswith("/assign"):
        return {"assignee": "me", "version": "1"}
    if path.endswith("/delete"):
        return {"version": "1", "confirm": "yes"}
    return {}


# Who may do what is decided in the service layer, the same on both databases; the matrix
# runs on SQLite (the per-route tests run on both).
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_access(route: tuple[str, str], board: Board, world: World, db: Database) -> None:
    method, template = route
    outcomes: dict[str, str] = {}
    for who in VISITORS_ALL:
        bc = board(VISITORS.get(who))
        objects = _make_objects(bc, world, db, who)
        path = template.format(**vars(objects))
        if who in TOKENS:
            token = world.city_tokens["muenchen"] if who == "city_token" else world.network_token
            bc.client.headers["Authorization"] = f"Bearer {token}"
        if method == "GET":
            response = bc.get(path, follow_redirects=False)
        else:
            bc.csrf = bc.csrf or "no-session"
            response = bc.post(path, _form_for(path))
        outcomes[who] = _classify(response)
    assert outcomes == TABLE[route]
