"""`hotline city`: add a member city with its first admin in one step, change a city's
escalation targets and retention periods, and list the network."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

city_app = typer.Typer(
    help="Member cities: add one, change its settings, list them.", no_args_is_help=True
)

CLI_ACTOR_LABEL = "cli"
# The service's field names as the operator typed them.
OPTIONS = {
    "key": "KEY",
    "name": "--name",
    "ags": "--ags",
    "state": "--state",
    "timezone": "--timezone",
    "postcodes": "--postcodes",
    "service_hours": "--service-hours",
    "username": "--admin-username",
    "email": "--admin-email",
    "display_name": "--admin-name",
    "password": "--admin-password-stdin",
    "escalation_email": "--escalation-email",
    "escalation_webhook_url": "--escalation-webhook",
    "retention_days": "--retention-days",
    "log_retention_days": "--log-retention-days",
}
ESCALATION_EMAIL_HELP = (
    "Where the worker e-mails the city's tickets past their first-response due time "
    "(needs HOTLINE_SMTP_HOST)."
)
ESCALATION_WEBHOOK_HELP = (
    "URL the worker POSTs overdue tickets to (JSON, signed with HOTLINE_WEBHOOK_SECRET); "
    "https only (http for localhost), no user:password."
)
RETENTION_HELP = "Days after closing until a ticket is anonymised (7-3650; default 180)."
LOG_RETENTION_HELP = (
    "Days until the bot's question log is deleted (1-365, at most --retention-days; default 30)."
)
# Options that `city add` and `city set` share.
EscalationEmailOpt = Annotated[
    str | None, typer.Option(help=ESCALATION_EMAIL_HELP, show_default=False)
]
EscalationWebhookOpt = Annotated[
    str | None, typer.Option(help=ESCALATION_WEBHOOK_HELP, show_default=False)
]
RetentionDaysOpt = Annotated[
    str | None, typer.Option(metavar="DAYS", help=RETENTION_HELP, show_default=False)
]
LogRetentionDaysOpt = Annotated[
    str | None, typer.Option(metavar="DAYS", help=LOG_RETENTION_HELP, show_default=False)
]


def _fail(message: str) -> NoReturn:
    from hotline.cli import fail

    fail(message)


def _refused(what: str, exc: Any) -> NoReturn:
    from hotline.services.cities import field_of

    problems = "\n".join(
        f"  {OPTIONS.get(field_of(p), field_of(p))}: {p.detail}" for p in exc.problems
    )
    _fail(f"{what}:\n{problems}")


def _settings_line(city: Any) -> str:
    from hotline.services.cities import webhook_display

    return (
        f"Eskalation: E-Mail {city.escalation_email or '-'}, "
        f"Webhook {webhook_display(city.escalation_webhook_url)}; "
        f"Aufbewahrung: Fälle {city.retention_days} Tage, "
        f"Frageprotokoll {city.log_retention_days} Tage."
    )


def _service_hours(value: str | None) -> Mapping[str, Any] | str | None:
    """A YAML file (the mapping as in hotline/demo/cities.yml, or a document with a
    `service_hours:` key) or inline text ("Mo-Fr 08:00-16:00 | Sa 09:00-12:00")."""
    import yaml

    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() in (".yml", ".yaml", ".json") or path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            _fail(f"--service-hours: {value}: no such file")
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            _fail(f"--service-hours: {value}: cannot read it as YAML ({type(exc).__name__})")
        if isinstance(data, dict) and "service_hours" in data:
            data = data["service_hours"]
        if not isinstance(data, dict):
            _fail(
                f"--service-hours: {value}: expected a mapping of weekdays to spans, e.g. "
                'mon: [["08:00", "16:00"]]'
            )
        return data
    return value  # inline text: checked with the other fields


@city_app.command("add")
def city_add(
    key: Annotated[str, typer.Argument(help="City key: lower case, digits, '-', e.g. regensburg.")],
    name: Annotated[str, typer.Option(help="The city's name, e.g. Regensburg.")],
    ags: Annotated[str, typer.Option(help="Amtlicher Gemeindeschlüssel, 8 digits.")],
    admin_username: Annotated[str, typer.Option(help="Login of the city's first admin.")],
    admin_email: Annotated[str, typer.Option(help="E-mail of the first admin.")],
    state: Annotated[
        str | None,
        typer.Option(
            help="Land (ISO 3166-2, e.g. BY) for the public holidays; default: the AGS's."
        ),
    ] = None,
    postcodes: Annotated[
        list[str] | None,
        typer.Option(
            help="Postcode or inclusive range (80331-81929); repeat or separate by commas."
        ),
    ] = None,
    service_hours: Annotated[
        str | None,
        typer.Option(
            help="YAML file (mon: [['08:00', '16:00']] …) or inline 'Mo-Fr 08:00-16:00 | Sa …'; "
            "default: none (SLA counted around the clock)."
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option(help="Time zone of the service hours.")
    ] = "Europe/Berlin",
    admin_name: Annotated[str | None, typer.Option(help="Display name of the first admin.")] = None,
    admin_password_stdin: Annotated[
        bool,
        typer.Option(
            "--admin-password-stdin",
            help="Read the admin's password from stdin (first line); else a one-time password "
            "is generated and printed.",
        ),
    ] = False,
    escalation_email: EscalationEmailOpt = None,
    escalation_webhook: EscalationWebhookOpt = None,
    retention_days: RetentionDaysOpt = None,
    log_retention_days: LogRetentionDaysOpt = None,
) -> None:
    """Add a member city and its first city admin (all checked first; nothing written on error)."""
    from sqlalchemy.exc import SQLAlchemyError

    from hotline.cli import load_settings, open_db
    from hotline.services.actors import Actor
    from hotline.services.admin import format_service_hours
    from hotline.services.cities import CityRefused, NewCity, add_city

    hours = _service_hours(service_hours)
    password = None
    if admin_password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _fail("--admin-password-stdin: stdin held no password")
    spec = NewCity(
        key=key,
        name=name,
        ags=ags,
        admin_username=admin_username,
        admin_email=admin_email,
        state=state,
        timezone=timezone,
        postcodes=[p.strip() for raw in postcodes or [] for p in raw.split(",") if p.strip()],
        service_hours=hours,
        admin_name=admin_name,
        admin_password=password,
        escalation_email=escalation_email,
        escalation_webhook_url=escalation_webhook,
        retention_days=retention_days,
        log_retention_days=log_retention_days,
    )
    db = open_db(load_settings())
    try:
        with db.write() as session:
            added = add_city(
                session, Actor(label=CLI_ACTOR_LABEL, city_id=None, network=True), spec
            )
    except CityRefused as exc:
        _refused("Stadt nicht angelegt, nichts geschrieben / city not added, nothing written", exc)
    except SQLAlchemyError as exc:  # the type only: a database message may quote row data
        _fail(
            f"database error: {type(exc).__name__} (is the database migrated? `hotline db upgrade`)"
        )
    finally:
        db.dispose()
    city = added.city
    hours_text = (
        format_service_hours(city.service_hours).replace("\n", "; ") or "keine (rund um die Uhr)"
    )
    typer.echo(
        f"Stadt {city.key} angelegt: {city.name}, AGS {city.ags}, {city.state}, {city.timezone}; "
        f"PLZ: {', '.join(city.postcodes or []) or 'keine'}; Servicezeiten: {hours_text}."
    )
    typer.echo(_settings_line(city))
    typer.echo(f"Erste Administration: {added.admin.username} (city_admin, {city.key}).")
    typer.echo(
        "Noch ohne Routing-Regeln und eigene KB-Einträge; nächste Schritte in docs/cities.md "
        f"(hotline rules import, hotline kb import, hotline token create --city {city.key})."
    )
    if added.generated_password is not None:
        typer.echo(
            f"Einmal-Passwort für {added.admin.username} (wird nur jetzt angezeigt; nach der "
            "ersten Anmeldung unter /board/password ändern):"
        )
        typer.echo(added.generated_password)


@city_app.command("set")
def city_set(
    key: Annotated[str, typer.Argument(help="The city's key, e.g. regensburg.")],
    escalation_email: EscalationEmailOpt = None,
    no_escalation_email: Annotated[
        bool, typer.Option("--no-escalation-email", help="Remove the escalation e-mail.")
    ] = False,
    escalation_webhook: EscalationWebhookOpt = None,
    no_escalation_webhook: Annotated[
        bool, typer.Option("--no-escalation-webhook", help="Remove the escalation webhook.")
    ] = False,
    retention_days: RetentionDaysOpt = None,
    log_retention_days: LogRetentionDaysOpt = None,
) -> None:
    """Change an existing city's escalation targets and retention periods; options not given
    stay as they are (all checked first; nothing written on error)."""
    from sqlalchemy.exc import SQLAlchemyError

    from hotline.cli import load_settings, open_db
    from hotline.services.actors import Actor
    from hotline.services.cities import CityChange, CityRefused, change_city

    for value, clear, option in (
        (escalation_email, no_escalation_email, "--escalation-email"),
        (escalation_webhook, no_escalation_webhook, "--escalation-webhook"),
    ):
        if value is not None and clear:
            _fail(f"{option}: give either {option} or --no-{option[2:]}, not both")
    change = CityChange(
        escalation_email="" if no_escalation_email else escalation_email,
        escalation_webhook_url="" if no_escalation_webhook else escalation_webhook,
        retention_days=retention_days,
        log_retention_days=log_retention_days,
    )
    if change.is_empty():
        _fail(
            "nothing to change: give --escalation-email, --no-escalation-email, "
            "--escalation-webhook, --no-escalation-webhook, --retention-days or "
            "--log-retention-days"
        )
    db = open_db(load_settings())
    try:
        with db.write() as session:
            city = change_city(
                session, Actor(label=CLI_ACTOR_LABEL, city_id=None, network=True), key, change
            )
    except CityRefused as exc:
        _refused(
            "Stadt nicht geändert, nichts geschrieben / city not changed, nothing written", exc
        )
    except SQLAlchemyError as exc:  # the type only: a database message may quote row data
        _fail(
            f"database error: {type(exc).__name__} (is the database migrated? `hotline db upgrade`)"
        )
    finally:
        db.dispose()
    typer.echo(f"Stadt {city.key} ({city.name}) geändert. {_settings_line(city)}")


@city_app.command("list")
def city_list() -> None:
    """The network's cities: key, name, AGS, state, active, staff, rules, own KB entries, admins."""
    from hotline.cli import load_settings, open_db
    from hotline.services.cities import list_network

    db = open_db(load_settings())
    try:
        with db.read() as session:
            rows = list_network(session)
    finally:
        db.dispose()
    if not rows:
        typer.echo("Noch keine Städte – `hotline city add` legt die erste an.")
        return
    typer.echo(
        f"{'key':<20} {'name':<24} {'AGS':<8} {'Land':<4} {'aktiv':<5} "
        f"{'Personal':>8} {'Regeln':>6} {'KB':>4}  admins"
    )
    for row in rows:
        c = row.city
        typer.echo(
            f"{c.key:<20} {c.name:<24} {c.ags or '-':<8} {c.state or '-':<4} "
            f"{'ja' if c.active else 'nein':<5} {row.staff:>8} {row.rules:>6} {row.kb_entries:>4}  "
            f"{', '.join(row.admins) or '-'}"
        )
