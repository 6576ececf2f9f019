"""`hotline city add` and `hotline city list`: a new member city with its first admin in one
step, usable at once (API, bot, board); bad input names its option and writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.backend import City as BotCity
from bot.backend import HttpBackend
from hotline.app import create_app
from hotline.cli import app
from hotline.db import Database
from hotline.models import City, Role, StaffUser
from hotline.settings import Settings
from tests.board.conftest import BoardClient
from tests.conftest import TEST_PASSWORD, World

pytestmark = pytest.mark.db

runner = CliRunner()

REGENSBURG = [
    "city",
    "add",
    "regensburg",
    "--name",
    "Regensburg",
    "--ags",
    "09362000",
    "--postcodes",
    "93047-93059",
    "--service-hours",
    "Mo-Do 07:30-16:00 | Fr 07:30-12:00",
    "--admin-username",
    "admin.regensburg",
    "--admin-email",
    "it@regensburg.example",
    "--admin-name",
    "IT Regensburg",
]


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("HOTLINE_ENV", "test")
    monkeypatch.chdir(tmp_path)
    return db_url


@pytest.fixture
def api(settings: Settings, db: Database, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        yield client


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def with_option(args: list[str], option: str, value: str) -> list[str]:
    """REGENSBURG with one option's value replaced (or the KEY argument when option is KEY)."""
    args = list(args)
    if option == "KEY":
        args[2] = value
    else:
        args[args.index(option) + 1] = value
    return args


def counts(db: Database) -> tuple[int, int]:
    with db.read() as s:
        cities = s.exec(select(func.count()).select_from(City)).one()
        users = s.exec(select(func.count()).select_from(StaffUser)).one()
    return cities, users


def bot_cities(app_: FastAPI, token: str) -> tuple[list[BotCity], BotCity | None]:
    """What the Telegram bot offers: its city buttons and the city of a postcode."""

    async def run() -> tuple[list[BotCity], BotCity | None]:
        transport = httpx.ASGITransport(app=app_)
        async with HttpBackend("http://hotline.test", token, transport=transport) as backend:
            return await backend.cities(), await backend.city_by_postcode("93053")

    return asyncio.run(run())


def test_city_add_makes_a_city_its_admin_can_log_in_to(
    env: str, world: World, db: Database, api: TestClient
) -> None:
    code, out, err = invoke(*REGENSBURG)
    assert code == 0, err
    assert "Stadt regensburg angelegt" in out and "admin.regensburg" in out
    assert "docs/cities.md" in out
    password = out.strip().splitlines()[-1]  # the one-time password, printed last
    assert len(password) >= 16 and " " not in password

    with db.read() as s:
        city = s.exec(select(City).where(City.key == "regensburg")).one()
        user = s.exec(select(StaffUser).where(StaffUser.username == "admin.regensburg")).one()
    assert (city.name, city.ags, city.state, city.timezone) == (
        "Regensburg",
        "09362000",
        "BY",  # the Land of the AGS (09 = Bayern)
        "Europe/Berlin",
    )
    assert city.active and city.postcodes == ["93047-93059"]
    assert city.service_hours == {
        **{day: [["07:30", "16:00"]] for day in ("mon", "tue", "wed", "thu")},
        "fri": [["07:30", "12:00"]],
    }
    assert user.role == Role.city_admin and user.city_id == city.id
    assert (user.display_name, user.email) == ("IT Regensburg", "it@regensburg.example")
    assert password not in user.password_hash

    # The API's catalogue and the bot's city choice (buttons and postcode) have the new city.
    listed = api.get("/api/v1/cities", headers=world.headers())
    assert listed.status_code == 200
    assert {"key": "regensburg", "name": "Regensburg"}.items() <= next(
        c for c in listed.json() if c["key"] == "regensburg"
    ).items()
    buttons, by_postcode = bot_cities(api.app, world.network_token)  # type: ignore[arg-type]
    assert BotCity("regensburg", "Regensburg") in buttons
    assert by_postcode == BotCity("regensburg", "Regensburg")

    # The first admin logs in to the board with the one-time password and manages the city.
    board = BoardClient(api)
    assert board.login("admin.regensburg", "wrong password").status_code == 401
    assert board.login("admin.regensburg", password).status_code == 303
    users = board.get("/board/admin/users")
    assert users.status_code == 200 and "admin.regensburg" in users.text
    own_city = board.get("/board/admin/cities/regensburg")
    assert own_city.status_code == 200 and "Regensburg" in own_city.text

    # The coordinator sees it in the administration of cities.
    coordinator = BoardClient(TestClient(api.app))
    assert coordinator.login("koordination", TEST_PASSWORD).status_code == 303
    page = coordinator.get("/board/admin/cities")
    assert page.status_code == 200 and "Regensburg" in page.text and "09362000" in page.text


def test_city_add_with_password_on_stdin_and_hours_from_yaml(
    env: str, world: World, db: Database, api: TestClient, tmp_path: Path
) -> None:
    hours = tmp_path / "passau.yml"
    hours.write_text(
        'service_hours:\n  mon: [["08:00", "12:00"], ["13:00", "16:00"]]\n'
        '  sat: [["09:00", "12:00"]]\n',
        encoding="utf-8",
    )
    code, out, err = invoke(
        "city",
        "add",
        "passau",
        "--name",
        "Passau",
        "--ags",
        "09262000",
        "--state",
        "DE-BY",
        "--postcodes",
        "94032, 94034",
        "--postcodes",
        "94036",
        "--service-hours",
        str(hours),
        "--admin-username",
        "admin.passau",
        "--admin-email",
        "it@passau.example",
        "--admin-password-stdin",
        input="passau-secret-2026\n",
    )
    assert code == 0, err
    assert "Einmal-Passwort" not in out and "passau-secret-2026" not in out
    with db.read() as s:
        city = s.exec(select(City).where(City.key == "passau")).one()
    assert city.state == "BY" and city.postcodes == ["94032", "94034", "94036"]
    assert city.service_hours == {
        "mon": [["08:00", "12:00"], ["13:00", "16:00"]],
        "sat": [["09:00", "12:00"]],
    }
    board = BoardClient(api)
    assert board.login("admin.passau", "passau-secret-2026").status_code == 303


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("KEY", "Regensburg!", "2 bis 64 Kleinbuchstaben"),
        ("KEY", "origin_city", "2 bis 64 Kleinbuchstaben"),
        ("--name", "   ", "Namen der Stadt"),
        ("--ags", "0936200", "kein Amtlicher Gemeindeschlüssel"),  # 7 digits
        ("--ags", "093620001234", "kein Amtlicher Gemeindeschlüssel"),  # a Regionalschlüssel
        ("--ags", "17362000", "kein Amtlicher Gemeindeschlüssel"),  # no Land 17
        ("--ags", "09162000", "gehört schon zu München"),
        ("--postcodes", "9304", "keine Postleitzahl"),
        ("--postcodes", "93059-93047", "größer als die zweite"),
        ("--service-hours", "Mo 8-12", "keine Zeitspanne"),
        ("--service-hours", "Mo-Fr 16:00-08:00", "endet, bevor es beginnt"),
        ("--service-hours", "Mo geschlossen", "An keinem Tag"),
        ("--service-hours", "Feiertag 08:00-12:00", "kein Wochentag"),
        ("--admin-username", "admin regensburg", "Benutzername"),
        ("--admin-username", "admin.muc", "gibt es schon"),
        ("--admin-email", "it-at-regensburg", "keine gültige E-Mail-Adresse"),
        ("--admin-email", " ", "E-Mail-Adresse"),
    ],
)
def test_city_add_refuses_bad_input_and_writes_nothing(
    env: str, world: World, db: Database, option: str, value: str, message: str
) -> None:
    before = counts(db)
    code, out, err = invoke(*with_option(REGENSBURG, option, value))
    assert code == 1, out
    assert "nichts geschrieben" in err
    line = next((ln for ln in err.splitlines() if ln.strip().startswith(f"{option}:")), "")
    assert message in line, err
    assert counts(db) == before


@pytest.mark.parametrize(
    ("extra", "option", "message"),
    [
        (["--state", "XX"], "--state", "kein Bundesland"),
        (["--state", "Augsburg"], "--state", "kein Bundesland"),  # a holidays subdivision, no Land
        (["--state", "NW"], "--state", "liegt in BY, nicht in NW"),
        (["--timezone", "Mars/Olympus"], "--timezone", "keine bekannte Zeitzone"),
        (["--admin-name", "x" * 201], "--admin-name", "höchstens 200 Zeichen"),
    ],
)
def test_city_add_refuses_bad_optional_fields(
    env: str, world: World, db: Database, extra: list[str], option: str, message: str
) -> None:
    before = counts(db)
    code, _, err = invoke(*REGENSBURG, *extra)
    assert code == 1
    line = next((ln for ln in err.splitlines() if ln.strip().startswith(f"{option}:")), "")
    assert message in line, err
    assert counts(db) == before


def test_city_add_reports_every_problem_at_once(env: str, world: World, db: Database) -> None:
    before = counts(db)
    args = with_option(with_option(REGENSBURG, "--ags", "123"), "--admin-email", "nope")
    code, _, err = invoke(*args, "--state", "XX")
    assert code == 1
    named = {ln.strip().split(":", 1)[0] for ln in err.splitlines() if ln.startswith("  ")}
    assert named == {"--ags", "--admin-email", "--state"}
    assert counts(db) == before


def test_city_add_duplicate_key_writes_nothing(env: str, world: World, db: Database) -> None:
    assert invoke(*REGENSBURG)[0] == 0
    after_first = counts(db)
    again = with_option(
        with_option(REGENSBURG, "--admin-username", "admin2.regensburg"), "--ags", "09362001"
    )
    code, _, err = invoke(*again)
    assert code == 1
    assert "KEY: Den Schlüssel „regensburg“ gibt es schon." in err
    assert counts(db) == after_first
    code, _, err = invoke(*with_option(REGENSBURG, "KEY", "muenchen"))
    assert code == 1 and "„muenchen“ gibt es schon" in err


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("kurz\n", "mindestens 10 Zeichen"), ("", "stdin held no password")],
)
def test_city_add_refuses_a_weak_or_missing_password(
    env: str, world: World, db: Database, stdin: str, message: str
) -> None:
    before = counts(db)
    code, _, err = invoke(*REGENSBURG, "--admin-password-stdin", input=stdin)
    assert code == 1
    assert "--admin-password-stdin" in err and message in err
    assert counts(db) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ('mon: [["08:00", 16:00]]\n', "Anführungszeichen"),  # YAML reads 16:00 as 960
        ('mon: [["08:00"]]\n', "is not a [start, end] pair"),
        ('holiday: [["08:00", "12:00"]]\n', "unknown weekday"),
        ("- mon\n", "expected a mapping"),
        ("mon: [\n", "cannot read it as YAML"),
    ],
)
def test_city_add_refuses_a_bad_service_hours_file(
    env: str, world: World, db: Database, tmp_path: Path, content: str | None, message: str
) -> None:
    hours = tmp_path / "hours.yml"
    if content is not None:
        hours.write_text(content, encoding="utf-8")
    before = counts(db)
    code, _, err = invoke(*with_option(REGENSBURG, "--service-hours", str(hours)))
    assert code == 1
    assert "--service-hours" in err and message in err, err
    assert counts(db) == before


def test_city_list_shows_the_network(env: str, world: World) -> None:
    code, out, _ = invoke("city", "list")
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert set(lines) == {"augsburg", "dresden", "muenchen", "nuernberg"}
    muenchen = lines["muenchen"].split()
    # key, name, AGS, Land, active, staff, rules, KB entries, admins
    assert muenchen == ["muenchen", "München", "09162000", "BY", "ja", "3", "0", "0", "admin.muc"]
    assert lines["dresden"].split()[4] == "nein"

    assert invoke(*REGENSBURG)[0] == 0
    code, out, _ = invoke("city", "list")
    row = next(ln for ln in out.splitlines() if ln.startswith("regensburg"))
    assert row.split() == [
        "regensburg",
        "Regensburg",
        "09362000",
        "BY",
        "ja",
        "1",
        "0",
        "0",
        "admin.regensburg",
    ]


def test_city_list_on_an_empty_database(env: str) -> None:
    code, out, _ = invoke("city", "list")
    assert code == 0 and "hotline city add" in out


# --- escalation targets and retention periods ---------------------------------------------------

HOOK = "https://hooks.regensburg.example/hotline/geheim-51c2"


def settings_of(db: Database, key: str) -> tuple[str | None, str | None, int, int]:
    with db.read() as s:
        c = s.exec(select(City).where(City.key == key)).one()
    return c.escalation_email, c.escalation_webhook_url, c.retention_days, c.log_retention_days


def test_city_add_with_escalation_targets_and_retention(
    env: str, world: World, db: Database
) -> None:
    code, out, err = invoke(
        *REGENSBURG,
        "--escalation-email",
        "sla@regensburg.example",
        "--escalation-webhook",
        HOOK,
        "--retention-days",
        "365",
        "--log-retention-days",
        "60",
    )
    assert code == 0, err
    assert settings_of(db, "regensburg") == ("sla@regensburg.example", HOOK, 365, 60)
    assert "Eskalation: E-Mail sla@regensburg.example" in out
    assert "https://hooks.regensburg.example/…" in out
    assert "geheim-51c2" not in out + err  # the webhook's secret path is not printed


def test_city_add_without_them_has_the_defaults(env: str, world: World, db: Database) -> None:
    assert invoke(*REGENSBURG)[0] == 0
    assert settings_of(db, "regensburg") == (None, None, 180, 30)


BAD_SETTINGS = [
    (["--escalation-email", "sla-at-regensburg"], "--escalation-email", "keine gültige E-Mail"),
    (
        ["--escalation-webhook", "http://hooks.regensburg.example/h"],
        "--escalation-webhook",
        "muss mit https:// beginnen",
    ),
    (
        ["--escalation-webhook", "https://u:pw@hooks.regensburg.example/h"],
        "--escalation-webhook",
        "keinen Benutzernamen und kein Passwort",
    ),
    (
        ["--escalation-webhook", "https://hooks.example/" + "x" * 500],
        "--escalation-webhook",
        "höchstens 500 Zeichen",
    ),
    (["--retention-days", "6"], "--retention-days", "zwischen 7 und 3650"),
    (["--retention-days", "3651"], "--retention-days", "zwischen 7 und 3650"),
    (["--retention-days", "ein Jahr"], "--retention-days", "zwischen 7 und 3650"),
    (["--retention-days", ""], "--retention-days", "zwischen 7 und 3650"),
    (["--log-retention-days", "0"], "--log-retention-days", "zwischen 1 und 365"),
    (["--log-retention-days", "366"], "--log-retention-days", "zwischen 1 und 365"),
    (
        ["--retention-days", "20", "--log-retention-days", "30"],
        "--log-retention-days",
        "nicht länger aufbewahrt werden als abgeschlossene Fälle (20 Tage)",
    ),
]


@pytest.mark.parametrize(("extra", "option", "message"), BAD_SETTINGS)
def test_city_add_refuses_bad_settings_and_writes_nothing(
    env: str, world: World, db: Database, extra: list[str], option: str, message: str
) -> None:
    before = counts(db)
    code, out, err = invoke(*REGENSBURG, *extra)
    assert code == 1, out
    assert "nichts geschrieben" in err
    line = next((ln for ln in err.splitlines() if ln.strip().startswith(f"{option}:")), "")
    assert message in line, err
    assert "geheim" not in err
    assert counts(db) == before


def test_city_set_changes_only_what_is_given(env: str, world: World, db: Database) -> None:
    code, out, err = invoke(
        "city",
        "set",
        "muenchen",
        "--escalation-email",
        "sla@muenchen.example",
        "--escalation-webhook",
        HOOK,
        "--retention-days",
        "400",
        "--log-retention-days",
        "90",
    )
    assert code == 0, err
    assert settings_of(db, "muenchen") == ("sla@muenchen.example", HOOK, 400, 90)
    assert "Stadt muenchen (München) geändert" in out and "geheim-51c2" not in out
    # Options not given stay; --no-… removes a target.
    assert invoke("city", "set", "muenchen", "--no-escalation-email")[0] == 0
    assert settings_of(db, "muenchen") == (None, HOOK, 400, 90)
    assert invoke("city", "set", "muenchen", "--log-retention-days", "365")[0] == 0
    assert settings_of(db, "muenchen") == (None, HOOK, 400, 365)
    assert invoke("city", "set", "muenchen", "--no-escalation-webhook")[0] == 0
    assert settings_of(db, "muenchen") == (None, None, 400, 365)
    # Other cities are untouched.
    assert settings_of(db, "augsburg") == (None, None, 180, 30)


@pytest.mark.parametrize(("extra", "option", "message"), BAD_SETTINGS)
def test_city_set_refuses_bad_values_and_changes_nothing(
    env: str, world: World, db: Database, extra: list[str], option: str, message: str
) -> None:
    assert invoke("city", "set", "muenchen", "--escalation-email", "alt@muenchen.example")[0] == 0
    before = settings_of(db, "muenchen")
    # A valid change in the same call is not written either.
    code, out, err = invoke(
        "city", "set", "muenchen", "--escalation-webhook", "https://ok.example/h", *extra
    )
    assert code == 1, out
    assert "nichts geschrieben" in err
    line = next((ln for ln in err.splitlines() if ln.strip().startswith(f"{option}:")), "")
    assert message in line, err
    assert settings_of(db, "muenchen") == before


def test_city_set_checks_the_log_period_against_the_stored_one(
    env: str, world: World, db: Database
) -> None:
    assert invoke("city", "set", "muenchen", "--retention-days", "60")[0] == 0
    code, _, err = invoke("city", "set", "muenchen", "--log-retention-days", "90")
    assert code == 1
    assert "--log-retention-days: " in err and "(60 Tage)" in err
    code, _, err = invoke("city", "set", "muenchen", "--retention-days", "20")
    assert code == 1 and "(20 Tage)" in err  # the stored 30 days of the log are too long
    assert settings_of(db, "muenchen") == (None, None, 60, 30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nirgendwo", "--retention-days", "90"], "KEY: Die Stadt „nirgendwo“ gibt es nicht."),
        (["muenchen"], "nothing to change"),
        (
            ["muenchen", "--escalation-email", "a@b.example", "--no-escalation-email"],
            "--escalation-email: give either",
        ),
        (
            ["muenchen", "--escalation-webhook", HOOK, "--no-escalation-webhook"],
            "--escalation-webhook: give either",
        ),
    ],
)
def test_city_set_refuses_unknown_city_and_unclear_calls(
    env: str, world: World, db: Database, args: list[str], message: str
) -> None:
    before = settings_of(db, "muenchen")
    code, _, err = invoke("city", "set", *args)
    assert code == 1
    assert message in err
    assert settings_of(db, "muenchen") == before
