"""Board administration: users, cities, API tokens and services, with the rights of each role."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import select

from hotline.db import Database, utcnow
from hotline.models import ApiToken, City, RoutingConfig, Service, StaffSession, StaffUser
from tests.board.conftest import BoardClient
from tests.conftest import TEST_PASSWORD, World

pytestmark = pytest.mark.db

Board = Callable[..., BoardClient]
API = "/api/v1"
SECRET = re.compile(r'id="secret" type="text" value="([^"]+)"')


def user(db: Database, username: str) -> StaffUser:
    with db.read() as session:
        return session.exec(select(StaffUser).where(StaffUser.username == username)).one()


def city(db: Database, key: str) -> City:
    with db.read() as session:
        return session.exec(select(City).where(City.key == key)).one()


def service(db: Database, key: str) -> Service:
    with db.read() as session:
        return session.exec(select(Service).where(Service.key == key)).one()


def new_user_form(**values: str) -> dict[str, str]:
    form = {
        "username": "neu.muc",
        "display_name": "Neue Kollegin",
        "email": "neu@muenchen.example",
        "role": "agent",
        "city": "muenchen",
        "password": "ein-gutes-passwort",
    }
    form.update(values)
    return form


# --- rights --------------------------------------------------------------------------------------


def test_agent_is_refused_on_every_admin_page_and_post(board: Board, db: Database) -> None:
    agent = board("agent.muc")
    other = user(db, "agent2.muc").id
    token_id = _a_token_id(db, "muenchen")
    bayernid = service(db, "bayernid").id
    pages = [
        "/board/admin",
        "/board/admin/users",
        "/board/admin/users/new",
        f"/board/admin/users/{other}",
        "/board/admin/cities",
        "/board/admin/cities/new",
        "/board/admin/cities/muenchen",
        "/board/admin/tokens",
        "/board/admin/services",
        "/board/admin/services/new",
        f"/board/admin/services/{bayernid}",
    ]
    for path in pages:
        response = agent.get(path)
        assert response.status_code == 403, path
        assert "Kein Zugriff" in response.text, path
    posts = {
        "/board/admin/users": new_user_form(),
        f"/board/admin/users/{other}": {"display_name": "X", "role": "agent", "active": "1"},
        f"/board/admin/users/{other}/deactivate": {},
        f"/board/admin/users/{other}/activate": {},
        f"/board/admin/users/{other}/unlock": {},
        f"/board/admin/users/{other}/password": {"password": "noch-ein-passwort"},
        "/board/admin/cities": {"key": "regensburg", "name": "Regensburg"},
        "/board/admin/cities/muenchen": {"name": "X"},
        "/board/admin/cities/muenchen/hours": {"service_hours": "Mo 08:00-09:00"},
        "/board/admin/cities/muenchen/escalation": {"escalation_email": "x@muenchen.example"},
        "/board/admin/tokens": {"name": "Mein Token", "scope": "city", "city": "muenchen"},
        f"/board/admin/tokens/{token_id}/revoke": {},
        "/board/admin/services": {"name": "Neue Leistung"},
        f"/board/admin/services/{bayernid}": {"name": "BayernID", "owner": "muenchen"},
    }
    for path, data in posts.items():
        assert agent.post(path, data).status_code == 403, path
    # Nothing was changed by any of those posts.
    assert user(db, "agent2.muc").active and user(db, "agent2.muc").display_name == "agent2.muc"
    with db.read() as session:
        assert (
            session.exec(select(StaffUser).where(StaffUser.username == "neu.muc")).first() is None
        )
        assert session.get(ApiToken, token_id).revoked is False  # type: ignore[union-attr]
    assert city(db, "muenchen").name == "München"
    assert city(db, "muenchen").escalation_email is None
    assert service(db, "bayernid").owner_city_id is None
    # The navigation does not even offer the administration to agents.
    assert "/board/admin" not in agent.get("/board/password").text


def _a_token_id(db: Database, city_key: str) -> int:
    with db.read() as session:
        c = session.exec(select(City).where(City.key == city_key)).one()
        token = session.exec(select(ApiToken).where(ApiToken.city_id == c.id)).first()
        assert token is not None and token.id is not None
        return token.id


def test_city_admin_sees_only_their_city_users(board: Board) -> None:
    page = board("admin.muc").get("/board/admin/users")
    assert page.status_code == 200
    for name in ("agent.muc", "agent2.muc", "admin.muc"):
        assert name in page.text
    for name in ("agent.aux", "admin.aux", "koordination"):
        assert name not in page.text
    # A city filter in the URL does not widen the view.
    assert "agent.aux" not in board("admin.muc").get("/board/admin/users?city=augsburg").text


def test_coordinator_sees_all_users_and_filters_by_city(board: Board) -> None:
    coordinator = board("koordination")
    everyone = coordinator.get("/board/admin/users").text
    for name in ("agent.muc", "agent.aux", "admin.aux", "koordination"):
        assert name in everyone
    augsburg = coordinator.get("/board/admin/users?city=augsburg").text
    assert "agent.aux" in augsburg and "admin.aux" in augsburg and "agent.muc" not in augsburg
    network = coordinator.get("/board/admin/users?city=-").text
    assert "koordination" in network and "agent.aux" not in network


def test_city_admin_cannot_create_users_for_another_city_or_a_coordinator(
    board: Board, db: Database
) -> None:
    admin = board("admin.muc")
    form = admin.get("/board/admin/users/new").text
    assert 'value="coordinator"' not in form and 'value="augsburg"' not in form
    other_city = admin.post("/board/admin/users", new_user_form(city="augsburg"))
    assert other_city.status_code == 403
    assert "Sie dürfen nur Benutzer Ihrer eigenen Stadt anlegen." in other_city.text
    assert 'value="neu.muc"' in other_city.text  # the form keeps what was typed
    coordinator = admin.post("/board/admin/users", new_user_form(role="coordinator", city=""))
    assert coordinator.status_code == 403
    assert "Städte-Admins dürfen keine Koordinations-Konten vergeben." in coordinator.text
    with db.read() as session:
        assert (
            session.exec(select(StaffUser).where(StaffUser.username == "neu.muc")).first() is None
        )


def test_city_admin_cannot_touch_another_city_user(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    target = user(db, "agent.aux")
    assert admin.get(f"/board/admin/users/{target.id}").status_code == 403
    for action, data in (
        ("", {"display_name": "Gehackt", "role": "agent", "active": "1"}),
        ("/deactivate", {}),
        ("/password", {"password": "ein-fremdes-passwort"}),
        ("/unlock", {}),
    ):
        response = admin.post(f"/board/admin/users/{target.id}{action}", data)
        assert response.status_code == 403, action
        assert "Sie dürfen nur Benutzer Ihrer eigenen Stadt verwalten." in response.text
    after = user(db, "agent.aux")
    assert after.display_name == "agent.aux" and after.active
    assert after.password_hash == target.password_hash
    # The coordinator's account is out of reach for a city admin too.
    assert admin.get(f"/board/admin/users/{user(db, 'koordination').id}").status_code == 403
    assert admin.get("/board/admin/users/99999").status_code == 404


# --- users ---------------------------------------------------------------------------------------


def test_city_admin_creates_an_agent_who_can_log_in(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    response = admin.post("/board/admin/users", new_user_form())
    assert response.status_code == 303
    created = user(db, "neu.muc")
    assert response.headers["location"] == f"/board/admin/users/{created.id}"
    assert created.city_id == city(db, "muenchen").id and created.role == "agent"
    assert created.email == "neu@muenchen.example"
    page = admin.get(response.headers["location"])
    assert "Der Benutzer neu.muc wurde angelegt." in page.text
    assert board().login("neu.muc", "ein-gutes-passwort").status_code == 303
    # Same user name again: refused next to the field.
    again = admin.post("/board/admin/users", new_user_form())
    assert again.status_code == 422
    assert "Den Benutzernamen „neu.muc“ gibt es schon." in again.text


def test_generated_password_is_shown_once_and_works(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    response = admin.post("/board/admin/users", new_user_form(username="gen.muc", password=""))
    assert response.status_code == 200
    assert "Nur jetzt sichtbar" in response.text
    match = SECRET.search(response.text)
    assert match
    password = match.group(1)
    assert len(password) >= 10
    assert password not in admin.get(f"/board/admin/users/{user(db, 'gen.muc').id}").text
    assert board().login("gen.muc", password).status_code == 303


def test_user_form_validation_messages(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    short = admin.post("/board/admin/users", new_user_form(password="kurz"))
    assert short.status_code == 422
    assert "Das Passwort braucht mindestens 10 Zeichen." in short.text
    assert 'aria-invalid="true"' in short.text
    mail = admin.post("/board/admin/users", new_user_form(email="keine-adresse"))
    assert mail.status_code == 422 and "ist keine gültige E-Mail-Adresse" in mail.text
    name = admin.post("/board/admin/users", new_user_form(username="mit leerzeichen"))
    assert name.status_code == 422 and "Der Benutzername darf nur" in name.text
    with db.read() as session:
        assert len(session.exec(select(StaffUser)).all()) == 6


def test_coordinator_creates_a_coordinator_and_a_city_admin_elsewhere(
    board: Board, db: Database
) -> None:
    coordinator = board("koordination")
    first = coordinator.post(
        "/board/admin/users", new_user_form(username="koord2", role="coordinator", city="")
    )
    assert first.status_code == 303
    assert user(db, "koord2").role == "coordinator" and user(db, "koord2").city_id is None
    second = coordinator.post(
        "/board/admin/users",
        new_user_form(username="admin.nbg", role="city_admin", city="nuernberg"),
    )
    assert second.status_code == 303
    assert user(db, "admin.nbg").city_id == city(db, "nuernberg").id


def test_deactivate_ends_the_sessions_of_the_user(board: Board, db: Database) -> None:
    victim = board("agent.muc")
    assert victim.get("/board/password").status_code == 200
    admin = board("admin.muc")
    target = user(db, "agent.muc").id
    response = admin.post(f"/board/admin/users/{target}/deactivate")
    assert response.status_code == 303
    assert "deaktiviert und überall abgemeldet" in admin.get(response.headers["location"]).text
    with db.read() as session:
        assert not session.exec(select(StaffSession).where(StaffSession.user_id == target)).all()
    gone = victim.get("/board/password", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/board/login")
    assert board().login("agent.muc").status_code == 401
    # Activated again, the user can log in.
    assert admin.post(f"/board/admin/users/{target}/activate").status_code == 303
    assert board().login("agent.muc").status_code == 303


def test_edit_changes_role_and_the_active_checkbox_deactivates(board: Board, db: Database) -> None:
    victim = board("agent2.muc")
    admin = board("admin.muc")
    target = user(db, "agent2.muc").id
    response = admin.post(
        f"/board/admin/users/{target}",
        {"display_name": "Aylin Demir", "email": "", "role": "city_admin", "active": "1"},
    )
    assert response.status_code == 303
    changed = user(db, "agent2.muc")
    assert changed.display_name == "Aylin Demir" and changed.role == "city_admin"
    assert victim.get("/board/admin").status_code == 200  # the new role counts at once
    off = admin.post(
        f"/board/admin/users/{target}",
        {"display_name": "Aylin Demir", "email": "", "role": "agent"},  # checkbox unticked
    )
    assert off.status_code == 303 and not user(db, "agent2.muc").active
    assert victim.get("/board/password", follow_redirects=False).status_code == 303


def test_admin_cannot_deactivate_or_demote_themselves(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    me = user(db, "admin.muc").id
    demote = admin.post(
        f"/board/admin/users/{me}", {"display_name": "Ich", "role": "agent", "active": "1"}
    )
    assert demote.status_code == 403
    assert "Sie können Ihre eigene Rolle nicht ändern." in demote.text
    off = admin.post(f"/board/admin/users/{me}", {"display_name": "Ich", "role": "city_admin"})
    assert off.status_code == 403
    assert "Sie können sich nicht selbst deaktivieren." in off.text
    button = admin.post(f"/board/admin/users/{me}/deactivate")
    assert button.status_code == 303
    assert (
        "Sie können sich nicht selbst deaktivieren." in admin.get(button.headers["location"]).text
    )
    after = user(db, "admin.muc")
    assert after.active and after.role == "city_admin" and after.display_name == "admin.muc"
    # Still logged in.
    assert admin.get("/board/admin").status_code == 200


def test_reset_password_ends_sessions_and_sets_the_new_one(board: Board, db: Database) -> None:
    victim = board("agent.muc")
    admin = board("admin.muc")
    target = user(db, "agent.muc").id
    short = admin.post(f"/board/admin/users/{target}/password", {"password": "kurz"})
    assert short.status_code == 422 and "mindestens 10 Zeichen" in short.text
    assert victim.get("/board/password").status_code == 200
    ok = admin.post(f"/board/admin/users/{target}/password", {"password": "vom-admin-gesetzt"})
    assert ok.status_code == 303
    assert victim.get("/board/password", follow_redirects=False).status_code == 303
    assert board().login("agent.muc", TEST_PASSWORD).status_code == 401
    assert board().login("agent.muc", "vom-admin-gesetzt").status_code == 303
    generated = admin.post(f"/board/admin/users/{target}/password", {"password": ""})
    assert generated.status_code == 200
    match = SECRET.search(generated.text)
    assert match and board().login("agent.muc", match.group(1)).status_code == 303


def test_unlock_lets_a_locked_user_log_in_again(board: Board, db: Database) -> None:
    for _ in range(5):
        board().login("agent.muc", "falsches-passwort")
    locked = board().login("agent.muc")
    assert locked.status_code == 401 and "gesperrt" in locked.text
    admin = board("admin.muc")
    target = user(db, "agent.muc").id
    assert "gesperrt bis" in admin.get("/board/admin/users").text
    page = admin.get(f"/board/admin/users/{target}")
    assert "Entsperren" in page.text
    response = admin.post(f"/board/admin/users/{target}/unlock")
    assert response.status_code == 303
    assert (
        "Die Sperre von agent.muc wurde aufgehoben." in admin.get(response.headers["location"]).text
    )
    after = user(db, "agent.muc")
    assert after.locked_until is None and after.failed_logins == 0
    assert board().login("agent.muc").status_code == 303


def test_lock_state_is_shown_only_while_it_lasts(board: Board, db: Database) -> None:
    with db.write() as session:
        row = session.exec(select(StaffUser).where(StaffUser.username == "agent2.muc")).one()
        row.locked_until = utcnow() - timedelta(minutes=1)
        session.add(row)
    assert "gesperrt bis" not in board("admin.muc").get("/board/admin/users").text


# --- API tokens ----------------------------------------------------------------------------------


def test_token_secret_is_shown_once_works_and_revoked_token_is_refused(
    board: Board, db: Database
) -> None:
    admin = board("admin.muc")
    response = admin.post(
        "/board/admin/tokens", {"name": "Website München", "scope": "city", "city": "muenchen"}
    )
    assert response.status_code == 200
    match = SECRET.search(response.text)
    assert match and "Nur jetzt sichtbar" in response.text
    secret = match.group(1)
    listing = admin.get("/board/admin/tokens").text
    assert "Website München" in listing and secret[:10] in listing and secret not in listing
    with db.read() as session:
        token = session.exec(select(ApiToken).where(ApiToken.name == "Website München")).one()
        assert token.city_id == city(db, "muenchen").id and token.scope == "city"
        assert secret not in token.token_hash
    api = admin.client
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get(f"{API}/cities", headers=headers).status_code == 200
    revoke = admin.post(f"/board/admin/tokens/{token.id}/revoke")
    assert revoke.status_code == 303
    assert "wurde widerrufen" in admin.get(revoke.headers["location"]).text
    refused = api.get(f"{API}/cities", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"


def test_city_admin_tokens_are_limited_to_their_city(
    board: Board, db: Database, world: World
) -> None:
    admin = board("admin.muc")
    listing = admin.get("/board/admin/tokens").text
    assert "test muenchen" in listing
    assert "test augsburg" not in listing and "test network" not in listing
    # A forged form cannot issue a token for another city or the network.
    other = admin.post(
        "/board/admin/tokens", {"name": "Fremd", "scope": "city", "city": "augsburg"}
    )
    assert other.status_code == 200  # silently bound to the admin's own city
    with db.read() as session:
        fremd = session.exec(select(ApiToken).where(ApiToken.name == "Fremd")).one()
    assert fremd.city_id == city(db, "muenchen").id
    network = admin.post("/board/admin/tokens", {"name": "Netz", "scope": "network"})
    assert network.status_code == 403
    assert "Netzwerk-Tokens darf nur die Koordination ausstellen." in network.text
    augsburg_token = _a_token_id(db, "augsburg")
    assert admin.post(f"/board/admin/tokens/{augsburg_token}/revoke").status_code == 403
    with db.read() as session:
        assert session.get(ApiToken, augsburg_token).revoked is False  # type: ignore[union-attr]
    assert admin.client.get(f"{API}/cities", headers=world.headers("augsburg")).status_code == 200


def test_coordinator_issues_a_network_token(board: Board) -> None:
    coordinator = board("koordination")
    response = coordinator.post("/board/admin/tokens", {"name": "Bot", "scope": "network"})
    assert response.status_code == 200 and "für das ganze Netzwerk" in response.text
    match = SECRET.search(response.text)
    assert match
    headers = {"Authorization": f"Bearer {match.group(1)}"}
    assert coordinator.client.get(f"{API}/tickets", headers=headers).status_code == 200
    empty = coordinator.post("/board/admin/tokens", {"name": "  ", "scope": "network"})
    assert empty.status_code == 422 and "Bitte geben Sie dem Token einen Namen" in empty.text


# --- cities --------------------------------------------------------------------------------------


def test_city_admin_sees_own_city_and_edits_its_service_hours(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    cities = admin.get("/board/admin/cities").text
    assert "München" in cities and "Augsburg" not in cities
    assert admin.get("/board/admin/cities/augsburg").status_code == 403
    page = admin.get("/board/admin/cities/muenchen").text
    assert "Mo 08:00-16:00" in page
    response = admin.post(
        "/board/admin/cities/muenchen/hours",
        {"service_hours": "Mo 08:00-12:00, 13:00-16:00\ndi 8:00-12:00\nFr 08:00 - 14:00\nSa zu"},
    )
    assert response.status_code == 303
    assert city(db, "muenchen").service_hours == {
        "mon": [["08:00", "12:00"], ["13:00", "16:00"]],
        "tue": [["08:00", "12:00"]],
        "fri": [["08:00", "14:00"]],
    }
    shown = admin.get(response.headers["location"]).text
    assert "Die Servicezeiten von München wurden gespeichert." in shown
    assert "Mo 08:00-12:00, 13:00-16:00" in shown
    # The other fields are the coordinator's.
    assert admin.post("/board/admin/cities/muenchen", {"name": "Minga"}).status_code == 403
    assert (
        admin.post("/board/admin/cities/augsburg/hours", {"service_hours": ""}).status_code == 403
    )
    assert city(db, "muenchen").name == "München"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mo 08:00-12:00\nXy 08:00-12:00", "Zeile 2: „Xy“ ist kein Wochentag."),
        ("Mo 8-12", "Zeile 1 (Mo): „8-12“ ist keine Zeitspanne. Schreiben Sie z. B. 08:00-12:00."),
        ("Di 12:00-08:00", "Zeile 1 (Di): 12:00-08:00 endet, bevor es beginnt."),
        (
            "Mi 08:00-12:00, 11:00-14:00",
            "Zeile 1 (Mi): 08:00-12:00 und 11:00-14:00 überschneiden sich.",
        ),
        ("Mo 08:00-12:00\nMo 13:00-15:00", "Zeile 2: Mo steht schon in Zeile 1."),
        ("Do 25:00-26:00", "Zeile 1 (Do): „25:00-26:00“ ist keine Zeitspanne."),
    ],
)
def test_service_hours_validation_messages(
    board: Board, db: Database, text: str, message: str
) -> None:
    admin = board("admin.muc")
    before = city(db, "muenchen").service_hours
    response = admin.post("/board/admin/cities/muenchen/hours", {"service_hours": text})
    assert response.status_code == 422
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    assert text.splitlines()[0] in response.text  # what was typed stays in the field
    assert city(db, "muenchen").service_hours == before


def test_service_hours_message_in_english(board: Board) -> None:
    admin = board("admin.muc")
    admin.get("/board/lang/en?next=/board/admin")
    response = admin.post("/board/admin/cities/muenchen/hours", {"service_hours": "Xy 08:00-12:00"})
    assert response.status_code == 422
    assert "Line 1: “Xy” is not a weekday." in response.text


def test_coordinator_edits_and_adds_cities(board: Board, db: Database) -> None:
    coordinator = board("koordination")
    listing = coordinator.get("/board/admin/cities").text
    assert all(name in listing for name in ("München", "Augsburg", "Nürnberg", "Dresden"))
    generation = _generation(db)
    response = coordinator.post(
        "/board/admin/cities/augsburg",
        {
            "name": "Stadt Augsburg",
            "ags": "09761000",
            "state": "BY",
            "timezone": "Europe/Berlin",
            "active": "1",
            "postcodes": "86150-86199, 86391",
            "service_hours": "Mo 07:30-12:00\nDo 13:00-17:30",
            "sla_first_response_hours": "8",
            "sla_resolution_hours": "",
        },
    )
    assert response.status_code == 303
    augsburg = city(db, "augsburg")
    assert augsburg.name == "Stadt Augsburg" and augsburg.postcodes == ["86150-86199", "86391"]
    assert augsburg.service_hours == {"mon": [["07:30", "12:00"]], "thu": [["13:00", "17:30"]]}
    assert augsburg.sla_first_response_hours == 8 and augsburg.sla_resolution_hours is None
    assert _generation(db) > generation
    bad = coordinator.post(
        "/board/admin/cities/augsburg",
        {"name": "Augsburg", "ags": "123", "state": "BY", "timezone": "Europe/Berlin"},
    )
    assert bad.status_code == 422 and "Der Amtliche Gemeindeschlüssel hat 8 Ziffern" in bad.text
    assert city(db, "augsburg").name == "Stadt Augsburg"
    new = coordinator.post(
        "/board/admin/cities",
        {
            "key": "regensburg",
            "name": "Regensburg",
            "ags": "09362000",
            "state": "BY",
            "timezone": "Europe/Berlin",
            "active": "1",
            "postcodes": "93047-93059",
            "service_hours": "Mo 08:00-12:00",
        },
    )
    assert new.status_code == 303 and new.headers["location"] == "/board/admin/cities/regensburg"
    assert city(db, "regensburg").postcodes == ["93047-93059"]
    taken = coordinator.post("/board/admin/cities", {"key": "regensburg", "name": "Doppelt"})
    assert taken.status_code == 422 and "Den Schlüssel „regensburg“ gibt es schon." in taken.text
    postcode = coordinator.post(
        "/board/admin/cities", {"key": "passau", "name": "Passau", "postcodes": "9403"}
    )
    assert postcode.status_code == 422 and "„9403“ ist keine Postleitzahl" in postcode.text


# --- cities: escalation targets and retention periods ---------------------------------------

HOOK = "https://hooks.muenchen.example/hotline/geheim-7f3a9c"


def settings_of(db: Database, key: str) -> tuple[str | None, str | None, int, int]:
    c = city(db, key)
    return c.escalation_email, c.escalation_webhook_url, c.retention_days, c.log_retention_days


def augsburg_form(**values: str) -> dict[str, str]:
    """The coordinator's complete form for Augsburg, as the page sends it."""
    form = {
        "name": "Augsburg",
        "ags": "09761000",
        "state": "BY",
        "timezone": "Europe/Berlin",
        "active": "1",
        "escalation_email": "",
        "escalation_webhook_url": "",
        "retention_days": "180",
        "log_retention_days": "30",
    }
    form.update(values)
    return form


def field_error(html: str, name: str) -> str:
    """The message shown next to a form field ("" when there is none)."""
    match = re.search(rf'<p class="error" id="f-{name}-error">([^<]*)</p>', html)
    return match.group(1) if match else ""


def test_coordinator_sets_escalation_targets_and_retention(
    board: Board, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator = board("koordination")
    page = coordinator.get("/board/admin/cities/augsburg").text
    assert 'name="retention_days"' in page and 'value="180"' in page
    assert 'name="escalation_webhook_url"' in page
    caplog.set_level("DEBUG")
    response = coordinator.post(
        "/board/admin/cities/augsburg",
        augsburg_form(
            escalation_email=" Leitstelle@Augsburg.example ",
            escalation_webhook_url=HOOK,
            retention_days="365",
            log_retention_days="90",
        ),
    )
    assert response.status_code == 303, response.text
    assert settings_of(db, "augsburg") == (
        "Leitstelle@augsburg.example",  # the domain is case-insensitive: normalised
        HOOK,
        365,
        90,
    )
    shown = coordinator.get(response.headers["location"]).text
    assert "Die Angaben zu Augsburg wurden gespeichert." in shown
    assert f'value="{HOOK}"' in shown and 'value="365"' in shown and 'value="90"' in shown
    assert "geheim-7f3a9c" not in caplog.text  # the webhook's secret path is never logged
    # Empty e-mail and webhook remove them; empty periods are the defaults; a local receiver
    # may use plain http.
    assert (
        coordinator.post(
            "/board/admin/cities/augsburg",
            augsburg_form(retention_days="", log_retention_days=""),
        ).status_code
        == 303
    )
    assert settings_of(db, "augsburg") == (None, None, 180, 30)
    for url in ("http://127.0.0.1:8765/hook", "http://localhost/hook"):
        ok = coordinator.post(
            "/board/admin/cities/augsburg", augsburg_form(escalation_webhook_url=url)
        )
        assert ok.status_code == 303, url
        assert city(db, "augsburg").escalation_webhook_url == url
    # A new city gets them right away.
    new = coordinator.post(
        "/board/admin/cities",
        {
            "key": "regensburg",
            "name": "Regensburg",
            "state": "BY",
            "timezone": "Europe/Berlin",
            "active": "1",
            "escalation_email": "sla@regensburg.example",
            "retention_days": "730",
            "log_retention_days": "14",
        },
    )
    assert new.status_code == 303
    assert settings_of(db, "regensburg") == ("sla@regensburg.example", None, 730, 14)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"escalation_email": "leitstelle-at-augsburg"},
            "escalation_email",
            "„leitstelle-at-augsburg“ ist keine gültige E-Mail-Adresse für Eskalationen.",
        ),
        (
            {"escalation_email": "leitstelle@augsburg"},  # no dot in the domain
            "escalation_email",
            "ist keine gültige E-Mail-Adresse für Eskalationen.",
        ),
        (
            {"escalation_webhook_url": "http://hooks.augsburg.example/x"},
            "escalation_webhook_url",
            "Die Webhook-Adresse muss mit https:// beginnen (http:// nur für localhost).",
        ),
        (
            {"escalation_webhook_url": "https://hotline:geheim@hooks.augsburg.example/x"},
            "escalation_webhook_url",
            "Die Webhook-Adresse darf keinen Benutzernamen und kein Passwort enthalten",
        ),
        (
            {"escalation_webhook_url": "hooks.augsburg.example/hotline"},
            "escalation_webhook_url",
            "Die Webhook-Adresse ist keine gültige URL.",
        ),
        (
            {"escalation_webhook_url": "ftp://hooks.augsburg.example/hotline"},
            "escalation_webhook_url",
            "Die Webhook-Adresse ist keine gültige URL.",
        ),
        (
            {"escalation_webhook_url": "https://hooks.augsburg.example/" + "x" * 470},
            "escalation_webhook_url",
            "Die Webhook-Adresse hat höchstens 500 Zeichen.",
        ),
        (
            {"retention_days": "6"},
            "retention_days",
            "Bitte eine ganze Zahl von Tagen zwischen 7 und 3650 eingeben.",
        ),
        (
            {"retention_days": "3651"},
            "retention_days",
            "Bitte eine ganze Zahl von Tagen zwischen 7 und 3650 eingeben.",
        ),
        (
            {"retention_days": "ein Jahr"},
            "retention_days",
            "Bitte eine ganze Zahl von Tagen zwischen 7 und 3650 eingeben.",
        ),
        (
            {"log_retention_days": "0"},
            "log_retention_days",
            "Bitte eine ganze Zahl von Tagen zwischen 1 und 365 eingeben.",
        ),
        (
            {"log_retention_days": "366", "retention_days": "3650"},
            "log_retention_days",
            "Bitte eine ganze Zahl von Tagen zwischen 1 und 365 eingeben.",
        ),
        (
            {"retention_days": "20", "log_retention_days": "30"},
            "log_retention_days",
            "Das Frageprotokoll darf nicht länger aufbewahrt werden als abgeschlossene Fälle (20 Tage).",
        ),
    ],
)
def test_city_settings_validation_messages(
    board: Board, db: Database, values: dict[str, str], field: str, message: str
) -> None:
    coordinator = board("koordination")
    before = settings_of(db, "augsburg")
    # Valid changes in the same post are not saved either.
    form = augsburg_form(name="Stadt Augsburg", escalation_email="sla@augsburg.example")
    form.update(values)
    response = coordinator.post("/board/admin/cities/augsburg", form)
    assert response.status_code == 422
    assert message in field_error(response.text, field), response.text
    assert f'id="f-{field}" name="{field}"' in response.text
    assert settings_of(db, "augsburg") == before and city(db, "augsburg").name == "Augsburg"
    # The same checks on a new city: nothing is created.
    response = coordinator.post(
        "/board/admin/cities", {**form, "key": "regensburg", "name": "Regensburg"}
    )
    assert response.status_code == 422 and message in field_error(response.text, field)
    with db.read() as session:
        assert session.exec(select(City).where(City.key == "regensburg")).first() is None


def test_city_admin_sets_own_escalation_targets_but_not_retention(
    board: Board, db: Database
) -> None:
    admin = board("admin.muc")
    page = admin.get("/board/admin/cities/muenchen").text
    assert 'action="/board/admin/cities/muenchen/escalation"' in page
    assert 'name="retention_days"' not in page  # shown, not editable
    assert "Abgeschlossene Fälle anonymisieren nach (Tagen)" in page
    response = admin.post(
        "/board/admin/cities/muenchen/escalation",
        {
            "escalation_email": "sla@muenchen.example",
            "escalation_webhook_url": HOOK,
            # Not part of this form: a city admin cannot change the retention periods.
            "retention_days": "3000",
            "log_retention_days": "300",
        },
    )
    assert response.status_code == 303
    assert settings_of(db, "muenchen") == ("sla@muenchen.example", HOOK, 180, 30)
    shown = admin.get(response.headers["location"]).text
    assert "Die Eskalationsziele von München wurden gespeichert." in shown
    assert f'value="{HOOK}"' in shown
    # The page of the coordinator-only form refuses the city admin.
    assert (
        admin.post("/board/admin/cities/muenchen", augsburg_form(retention_days="3000")).status_code
        == 403
    )
    # Empty fields remove both targets.
    cleared = admin.post(
        "/board/admin/cities/muenchen/escalation",
        {"escalation_email": "", "escalation_webhook_url": ""},
    )
    assert cleared.status_code == 303
    assert settings_of(db, "muenchen") == (None, None, 180, 30)


def test_city_admin_escalation_targets_of_another_city_are_refused(
    board: Board, db: Database
) -> None:
    before = settings_of(db, "muenchen")
    other = board("admin.aux")
    data = {"escalation_email": "x@augsburg.example", "escalation_webhook_url": HOOK}
    assert other.post("/board/admin/cities/muenchen/escalation", data).status_code == 403
    assert HOOK not in other.get("/board/admin/cities/muenchen").text
    assert board("admin.muc").post(
        "/board/admin/cities/nirgendwo/escalation", data
    ).status_code in (
        403,
        404,
    )
    assert settings_of(db, "muenchen") == before


def test_city_admin_escalation_validation(board: Board, db: Database) -> None:
    admin = board("admin.muc")
    before = settings_of(db, "muenchen")
    response = admin.post(
        "/board/admin/cities/muenchen/escalation",
        {
            "escalation_email": "sla@muenchen.example",
            "escalation_webhook_url": "http://x.example/h",
        },
    )
    assert response.status_code == 422
    message = field_error(response.text, "escalation_webhook_url")
    assert "muss mit https:// beginnen" in message
    assert 'value="sla@muenchen.example"' in response.text  # what was typed stays
    assert response.text.count('role="alert"') == 1  # the hours form shows no alert
    assert settings_of(db, "muenchen") == before  # the valid e-mail was not saved alone


def test_city_settings_in_english(board: Board) -> None:
    admin = board("admin.muc")
    admin.get("/board/lang/en?next=/board/admin")
    page = admin.get("/board/admin/cities/muenchen").text
    for label in ("Escalation of overdue tickets", "Escalation e-mail", "Escalation webhook"):
        assert label in page
    assert "Anonymise closed tickets after (days)" in page
    assert "Eskalation" not in page and "Aufbewahrung" not in page
    bad = admin.post("/board/admin/cities/muenchen/escalation", {"escalation_email": "nope"})
    assert bad.status_code == 422
    assert "“nope” is not a valid escalation e-mail address." in bad.text
    coordinator = board("koordination")
    coordinator.get("/board/lang/en?next=/board/admin")
    form = coordinator.get("/board/admin/cities/augsburg").text
    assert "Retention" in form and "Delete the question log after (days)" in form
    wrong = coordinator.post(
        "/board/admin/cities/augsburg", augsburg_form(retention_days="30", log_retention_days="60")
    )
    assert "The question log may not be kept longer than closed tickets (30 days)." in wrong.text


def _generation(db: Database) -> int:
    with db.read() as session:
        config = session.get(RoutingConfig, 1)
        return config.generation if config else 0


# --- services ------------------------------------------------------------------------------------

RULES = """fallback: origin_city
default_city: muenchen
rules:
  - {id: to-owner, owner: muenchen, priority: 1, when: {service: epayment}, route_to: service_owner}
"""


def test_coordinator_changes_a_service_owner_and_routing_follows(
    board: Board, db: Database, world: World
) -> None:
    coordinator = board("koordination")
    api = coordinator.client
    imported = api.post(
        f"{API}/routing/import",
        content=RULES.encode(),
        headers={**world.headers(), "Content-Type": "application/yaml"},
    )
    assert imported.status_code == 200, imported.text

    def responsible() -> str:
        r = api.post(
            f"{API}/tickets",
            json={"subject": "Zahlung", "body": "Frage", "service": "epayment"},
            headers=world.headers(),
        )
        assert r.status_code == 201, r.text
        return str(r.json()["responsible_city"])

    assert responsible() == "augsburg"  # warms the router cache
    epayment = service(db, "epayment")
    page = coordinator.get(f"/board/admin/services/{epayment.id}")
    assert page.status_code == 200 and 'value="augsburg" selected' in page.text
    response = coordinator.post(
        f"/board/admin/services/{epayment.id}",
        {
            "name": "ePayment",
            "leika_key": "",
            "ozg_id": "",
            "topic": "zahlung",
            "owner": "nuernberg",
        },
    )
    assert response.status_code == 303
    assert (
        "Das Routing verwendet die Änderung sofort."
        in coordinator.get(response.headers["location"]).text
    )
    assert service(db, "epayment").owner_city_id == city(db, "nuernberg").id
    assert responsible() == "nuernberg"


def test_service_list_search_pagination_and_rights(board: Board, db: Database) -> None:
    with db.write() as session:
        for n in range(60):
            session.add(Service(key=f"leistung-{n:02d}", name=f"Leistung {n:02d}", topic="test"))
    coordinator = board("koordination")
    first = coordinator.get("/board/admin/services")
    assert "1–50 von 63 Leistungen" in first.text and "Seite 1 von 2" in first.text
    second = coordinator.get("/board/admin/services?page=2")
    assert "51–63 von 63 Leistungen" in second.text and "Leistung 59" in second.text
    found = coordinator.get("/board/admin/services?q=9905001210")
    assert "Gewerbe online" in found.text and "1–1 von 1 Leistungen" in found.text
    owned = coordinator.get("/board/admin/services?owner=augsburg")
    assert "ePayment" in owned.text and "BayernID" not in owned.text
    # City admins may look but not change.
    admin = board("admin.muc")
    assert admin.get("/board/admin/services").status_code == 200
    bayernid = service(db, "bayernid").id
    assert 'name="owner"' not in admin.get(f"/board/admin/services/{bayernid}").text
    refused = admin.post(f"/board/admin/services/{bayernid}", {"name": "X", "owner": "muenchen"})
    assert refused.status_code == 403
    assert service(db, "bayernid").owner_city_id is None


def test_coordinator_creates_a_service_with_checked_leika_key(board: Board, db: Database) -> None:
    coordinator = board("koordination")
    bad = coordinator.post("/board/admin/services", {"name": "Hundesteuer", "leika_key": "123"})
    assert bad.status_code == 422 and "Der LeiKa-Schlüssel hat genau 14 Ziffern." in bad.text
    taken = coordinator.post(
        "/board/admin/services", {"name": "Gewerbe", "leika_key": "99050012104000"}
    )
    assert taken.status_code == 422 and "gehört schon zur Leistung „Gewerbe online“" in taken.text
    ok = coordinator.post(
        "/board/admin/services",
        {"name": "Hundesteuer anmelden", "leika_key": "99083001001000", "owner": "muenchen"},
    )
    assert ok.status_code == 303
    created = service(db, "hundesteuer-anmelden")
    assert (
        created.leika_key == "99083001001000" and created.owner_city_id == city(db, "muenchen").id
    )
    assert ok.headers["location"] == f"/board/admin/services/{created.id}"


def test_overview_links_and_figures(board: Board) -> None:
    admin = board("admin.muc").get("/board/admin")
    assert admin.status_code == 200
    assert "Konten: 3" in admin.text  # agent.muc, agent2.muc, admin.muc
    for href in ("/board/admin/users", "/board/admin/cities", "/board/admin/tokens"):
        assert f'href="{href}"' in admin.text
    assert "Neue Stadt anlegen" not in admin.text
    coordinator = board("koordination").get("/board/admin")
    assert "Neue Stadt anlegen" in coordinator.text and "Städte: 4" in coordinator.text


def test_every_admin_service_message_has_an_english_translation() -> None:
    """The board shows hotline.services.admin's German messages through `_()`."""
    from pathlib import Path

    from hotline.board.i18n import catalogue
    from hotline.services import admin

    source = Path(admin.__file__).read_text(encoding="utf-8")
    found = re.findall(r'(?:invalid\(\s*[^,]+,\s*|(?:Forbidden|NotFound)\(\s*)"([^"]+)"', source)
    assert len(found) > 40
    assert [text for text in found if text not in catalogue()] == []
