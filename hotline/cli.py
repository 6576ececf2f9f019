"""The `hotline` command line: serve, migrate, demo data, tokens, users, catalogue."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError

from hotline.city_cli import city_app
from hotline.db import Database
from hotline.errors import HotlineError
from hotline.models import Role
from hotline.routing import CityInfo, ServiceInfo
from hotline.routing.cli import build_app
from hotline.settings import Settings, get_settings
from kb.cli import app as kb_app

if TYPE_CHECKING:
    from hotline.services.citizen import Identity

app = typer.Typer(
    help="Hotline: shared e-government support hotline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for integrations and the bot.", no_args_is_help=True)
user_app = typer.Typer(help="Staff users.", no_args_is_help=True)
catalog_app = typer.Typer(help="The service catalogue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(catalog_app, name="catalog")
app.add_typer(city_app, name="city")

TOKENS_FILE = Path("var/demo-tokens.txt")


def fail(message: str) -> NoReturn:
    typer.echo(f"Fehler / error: {message}", err=True)
    raise typer.Exit(1)


def load_settings(**overrides: object) -> Settings:
    try:
        return get_settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        fail(problems)


def open_db(settings: Settings) -> Database:
    return Database.from_settings(settings)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (HOTLINE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HOTLINE_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the API (and docs at /docs) with uvicorn."""
    import uvicorn

    from hotline import migrate
    from hotline.app import polling_in_process

    settings = load_settings()
    host = host or settings.host
    port = port or settings.port
    if workers > 1 and polling_in_process(settings):
        fail(
            "Telegram long polling runs in one process only: with --workers > 1 use the webhook "
            "(TELEGRAM_WEBHOOK_SECRET) or run `hotline bot` separately with "
            "HOTLINE_BOT_IN_PROCESS=false."
        )
    db = open_db(settings)
    try:
        current, head = migrate.current_revision(db.engine), migrate.head_revision()
    finally:
        db.dispose()
    if current != head:
        typer.echo(
            f"Warnung: Datenbank auf Stand {current}, erwartet {head} — `hotline db upgrade`.",
            err=True,
        )
    typer.echo(
        f"Hotline läuft auf http://{host}:{port}  (Web-Chat /, Mitarbeiterbereich /board, "
        "API /api/v1, Doku /docs)"
    )
    if polling_in_process(settings):
        typer.echo(f"Telegram-Bot läuft mit (Long Polling, {settings.telegram_api_base}).")
    elif settings.telegram_bot_token is not None and settings.telegram_webhook_secret:
        typer.echo("Telegram-Webhook: POST /telegram/webhook")
    uvicorn.run(
        "hotline.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the outbox worker on its own (set HOTLINE_WORKER_IN_PROCESS=false for the servers)."""
    import asyncio
    import signal

    from hotline.worker import run_worker

    settings = load_settings()
    db = open_db(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(db, settings, stop)

    typer.echo("Outbox-Worker läuft (Strg-C beendet).")
    try:
        asyncio.run(main())
    finally:
        db.dispose()


@app.command()
def bot() -> None:
    """Run the Telegram bot with long polling (needs TELEGRAM_BOT_TOKEN, HOTLINE_API_TOKEN)."""
    import asyncio

    from bot.app import run_polling

    settings = load_settings()
    if settings.telegram_bot_token is None:
        fail("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set its token.")
    if settings.api_token is None:
        fail(
            "HOTLINE_API_TOKEN is not set: the bot needs a network token "
            "(`hotline token create --network --name bot`)."
        )
    typer.echo(f"Telegram-Bot läuft (Long Polling, API {settings.telegram_api_base}).")
    asyncio.run(run_polling(settings))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations (SQLite or PostgreSQL, from HOTLINE_DATABASE_URL)."""
    from hotline import migrate

    settings = load_settings()
    db = open_db(settings)
    try:
        migrate.upgrade(db.engine, revision)
        typer.echo(f"Datenbank auf Stand {migrate.current_revision(db.engine)} ({db.dialect}).")
    except Exception as exc:  # a broken URL or unreachable server: say so, no traceback
        fail(f"migration failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration revision and the newest one."""
    from hotline import migrate

    db = open_db(load_settings())
    try:
        typer.echo(
            f"current: {migrate.current_revision(db.engine)}  head: {migrate.head_revision()}"
        )
    finally:
        db.dispose()


def print_logins(tokens: dict[str, str]) -> None:
    from hotline.demo.loader import DEMO_PASSWORD, DEMO_USERS

    typer.echo(
        f"\nDemo-Zugänge für /board (Passwort für alle / password for all: {DEMO_PASSWORD}):"
    )
    for username, name, role, city in DEMO_USERS:
        typer.echo(f"  {username:<18} {role.value:<12} {city or 'alle Städte':<12} {name}")
    if tokens:
        typer.echo("Demo-API-Tokens (Authorization: Bearer …):")
        for scope, secret in tokens.items():
            typer.echo(f"  {scope:<10} {secret}")
    typer.echo("")


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when data exists.")
    ] = False,
) -> None:
    """Load the demo data (cities, catalogue, staff, tokens, tickets) into an empty database."""
    from hotline.demo.loader import is_empty, load_demo, read_tokens

    settings = load_settings()
    db = open_db(settings)
    try:
        if not is_empty(db):
            if not if_empty:
                fail("the database already holds data; demo data only goes into an empty database")
            typer.echo("Datenbank enthält bereits Daten — Demodaten werden nicht erneut geladen.")
            print_logins(read_tokens(TOKENS_FILE))
            return
        try:
            result = load_demo(db, settings, tokens_file=TOKENS_FILE)
        except RuntimeError as exc:
            fail(str(exc))
        summary = ", ".join(f"{v} {k}" for k, v in result.counts.items())
        typer.echo(f"Demodaten geladen: {summary}.")
        print_logins(result.tokens)
    finally:
        db.dispose()


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'Website München'.")],
    city: Annotated[str | None, typer.Option(help="Scope the token to this city key.")] = None,
    network: Annotated[bool, typer.Option("--network", help="Token for all cities.")] = False,
) -> None:
    """Create an API token; the token is printed once, as the last line."""
    from hotline.services.auth import create_token

    db = open_db(load_settings())
    try:
        with db.write() as session:
            issued = create_token(session, name=name, city_key=city, network=network)
        scope = "Netzwerk" if network else f"Stadt {city}"
        typer.echo(f"Token '{name}' ({scope}) angelegt. Es wird nur jetzt angezeigt:")
        typer.echo(issued.secret)
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[Role, typer.Option(help="agent, city_admin or coordinator.")],
    city: Annotated[str | None, typer.Option(help="City key (not for coordinators).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    password: Annotated[
        str | None, typer.Option(help="Read from HOTLINE_NEW_PASSWORD or asked when omitted.")
    ] = None,
) -> None:
    """Create a staff user (password stored as an argon2 hash)."""
    import os

    from hotline.services.auth import create_user

    password = password or os.environ.get("HOTLINE_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            fail("no password: pass --password, set HOTLINE_NEW_PASSWORD or run interactively")
        password = typer.prompt("Passwort", hide_input=True, confirmation_prompt=True)
    db = open_db(load_settings())
    try:
        with db.write() as session:
            user = create_user(
                session,
                username=username,
                password=password,
                role=role,
                city_key=city,
                display_name=name,
                email=email,
            )
        typer.echo(
            f"Benutzer {user.username} ({role.value}{', ' + city if city else ''}) angelegt."
        )
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()


@catalog_app.command("import")
def catalog_import(
    file: Annotated[
        Path, typer.Argument(help="CSV: OZG/LeiKa export, Munich services, or key,name,…")
    ],
) -> None:
    """Import services (upsert by key); the whole file or nothing."""
    from hotline.services.catalog import CatalogError, import_services, read_catalog

    try:
        rows = read_catalog(file)
    except CatalogError as exc:
        fail(str(exc))
    db = open_db(load_settings())
    try:
        with db.write() as session:
            result = import_services(session, rows, source=str(file))
        typer.echo(f"{file}: {result.created} Dienste neu, {result.updated} aktualisiert.")
    except CatalogError as exc:
        fail(str(exc))
    finally:
        db.dispose()


def db_catalog() -> tuple[list[CityInfo], list[ServiceInfo]]:
    """The database's cities and services, for rule files without their own catalogue."""
    from hotline.services.rules import catalog

    db = open_db(load_settings())
    try:
        with db.read() as session:
            return catalog(session)
    except Exception as exc:  # no database yet: say so instead of a traceback
        fail(f"cannot read cities and services from the database: {type(exc).__name__}")
    finally:
        db.dispose()


app.add_typer(kb_app, name="kb", help="Knowledge base: match questions, evaluate labelled sets.")


@kb_app.command("import")
def kb_import(
    directory: Annotated[Path, typer.Argument(help="Folder of KB files (*.md).")],
) -> None:
    """Import KB files into the database (upsert by id); a bad file refuses the whole import."""
    from hotline.services.kb import KBImportError, import_dir
    from kb import KBFormatError

    if not directory.is_dir():
        fail(f"{directory}: no such folder")
    db = open_db(load_settings())
    try:
        with db.write() as session:
            result = import_dir(session, directory)
        typer.echo(
            f"{directory}: {result.created} Einträge neu, {result.updated} geändert, "
            f"{result.unchanged} unverändert."
        )
    except KBFormatError as exc:
        fail("\n".join(str(e) for e in exc.errors))
    except KBImportError as exc:
        fail(str(exc))
    finally:
        db.dispose()


@kb_app.command("export")
def kb_export(
    directory: Annotated[Path, typer.Argument(help="Folder to write the KB files to.")],
) -> None:
    """Write every KB entry of the database as a file (<id>.md) into DIR."""
    from hotline.services.kb import export_dir

    db = open_db(load_settings())
    try:
        with db.read() as session:
            count = export_dir(session, directory)
        typer.echo(f"{count} Einträge nach {directory} geschrieben.")
    finally:
        db.dispose()


CLI_ACTOR_LABEL = "cli"


@kb_app.command("gaps")
def kb_gaps(
    days: Annotated[int, typer.Option(min=1, max=366, help="Look back this many days.")] = 30,
    city: Annotated[str | None, typer.Option(help="Only this city's questions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many groups.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per group.")] = False,
) -> None:
    """Questions the KB could not answer (handed over or unhelpful), grouped, biggest first."""
    import json

    import kb
    from hotline.services.actors import Actor
    from hotline.services.learning import gaps

    db = open_db(load_settings())
    try:
        with db.read() as session:
            actor = Actor(label=CLI_ACTOR_LABEL, city_id=None, network=True)
            groups = gaps(session, actor, kb.Analyzer(), days=days, city=city, limit=limit)
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()
    if not groups:
        typer.echo(f"Keine Lücken in den letzten {days} Tagen.")
    for g in groups:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "size": g.size,
                        "question": g.question,
                        "examples": g.examples,
                        "cities": g.cities,
                        "channels": g.channels,
                        "handed_over": g.handed_over,
                        "not_helped": g.not_helped,
                        "best_entry": g.best_entry,
                        "last_seen": g.last_seen.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
            continue
        cities = ", ".join(f"{k} {v}" for k, v in sorted(g.cities.items()))
        typer.echo(f"{g.size:4d} × {g.question}   [{cities}; nächster Eintrag: {g.best_entry}]")
        for example in [e for e in g.examples if e != g.question][:3]:
            typer.echo(f"       – {example}")


@kb_app.command("candidates")
def kb_candidates(
    accept: Annotated[list[int] | None, typer.Option(help="Accept candidate ID.")] = None,
    reject: Annotated[list[int] | None, typer.Option(help="Reject candidate ID.")] = None,
) -> None:
    """List pending candidate question variants; --accept/--reject ID decides them."""
    from hotline.models import CandidateStatus
    from hotline.services.actors import Actor
    from hotline.services.learning import accept_candidate, list_candidates, reject_candidate

    actor = Actor(label=CLI_ACTOR_LABEL, city_id=None, network=True)
    db = open_db(load_settings())
    try:
        with db.write() as session:
            for cid in accept or []:
                entry = accept_candidate(session, actor, cid)
                typer.echo(f"#{cid} angenommen: jetzt Variante von {entry.key}")
            for cid in reject or []:
                reject_candidate(session, actor, cid)
                typer.echo(f"#{cid} abgelehnt")
            if not accept and not reject:
                views = list_candidates(session, actor, status=CandidateStatus.pending)
                if not views:
                    typer.echo("Keine offenen Vorschläge.")
                for v in views:
                    typer.echo(f"#{v.id:<5} {v.entry:<40} {v.source:<7} {v.question}")
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()


rules_app = build_app(catalog_provider=db_catalog)
app.add_typer(
    rules_app, name="rules", help="Routing rules: check, explain, coverage, import, export, replay."
)

NETWORK_ADMIN = "cli"  # the operator at the console acts for the whole network


def _read_rule_file(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{file}: no such file")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")


@rules_app.command("import")
def rules_import(file: Annotated[Path, typer.Argument(help="Rule file (YAML).")]) -> None:
    """Replace the database's rule set with FILE (validated as a whole; nothing on error)."""
    from hotline.services.actors import Actor
    from hotline.services.rules import import_rules

    text = _read_rule_file(file)
    settings = load_settings()
    db = open_db(settings)
    try:
        with db.write() as session:
            summary = import_rules(
                session,
                Actor(label=NETWORK_ADMIN, city_id=None, network=True),
                text,
                source=str(file),
                default_city=settings.default_city,
            )
        typer.echo(
            f"{file}: {summary.created} Regeln neu, {summary.updated} geändert, {summary.deleted} entfernt"
            + (f"; vorgeschlagen: {', '.join(summary.proposed)}" if summary.proposed else "")
        )
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()


@rules_app.command("export")
def rules_export() -> None:
    """Print the database's rule set as a YAML rule file."""
    from hotline.services.rules import export_rules

    settings = load_settings()
    db = open_db(settings)
    try:
        with db.read() as session:
            typer.echo(export_rules(session, default_city=settings.default_city), nl=False)
    finally:
        db.dispose()


@rules_app.command("replay")
def rules_replay(
    file: Annotated[Path, typer.Argument(help="Draft rule file (YAML).")],
    days: Annotated[int, typer.Option(min=1, help="Tickets of the last N days.")] = 30,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON line per moved ticket.")
    ] = False,
) -> None:
    """Re-route the recent tickets under FILE and list those that would move."""
    import json

    from hotline.routing import replay
    from hotline.services.actors import Actor
    from hotline.services.rules import parse_against_db, recent_tickets

    text = _read_rule_file(file)
    settings = load_settings()
    db = open_db(settings)
    try:
        with db.read() as session:
            draft = parse_against_db(
                session, text, source=str(file), default_city=settings.default_city
            )
            tickets = list(
                recent_tickets(
                    session, Actor(label=NETWORK_ADMIN, city_id=None, network=True), days=days
                )
            )
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()
    moves = replay(draft, tickets)
    if as_json:
        for move in moves:
            typer.echo(json.dumps(move.model_dump(mode="json"), ensure_ascii=False))
        return
    for move in moves:
        how = f"Regel {move.rule}" if move.rule else move.via
        typer.echo(f"{move.ref}: {move.from_city} → {move.to_city} ({how})")
    typer.echo(f"{len(moves)} von {len(tickets)} Tickets der letzten {days} Tage würden wechseln.")


# --- data protection ---------------------------------------------------------------------------

retention_app = typer.Typer(
    help="Data protection: retention periods (DSGVO).", no_args_is_help=True
)
requester_app = typer.Typer(
    help="A requester's data: export (Art. 15) and delete (Art. 17).", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")
app.add_typer(requester_app, name="requester")

PRIVACY_ACTOR_LABEL = "cli"

TelegramOpt = Annotated[str | None, typer.Option("--telegram", help="Telegram chat id.")]
WebOpt = Annotated[str | None, typer.Option("--web", help="Web-chat session id.")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="E-mail address.")]


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would change; change nothing.")
    ] = False,
) -> None:
    """Apply the retention periods now (the worker does it on its schedule).

    Closed tickets past their city's retention period are anonymised; old bot questions
    without a ticket and idle web-chat sessions are deleted."""
    from hotline.worker import retention_job

    settings = load_settings()
    db = open_db(settings)
    try:
        report = retention_job(db, settings, dry_run=dry_run)
    except Exception as exc:  # the type only: a database error may quote row data
        fail(f"retention failed: {type(exc).__name__}")
    finally:
        db.dispose()
    done = "würden" if dry_run else "wurden"
    suffix = " werden" if dry_run else ""
    if dry_run:
        typer.echo("Probelauf – nichts wurde geändert.")
    typer.echo(
        f"Aufbewahrung: {report.tickets_anonymised} Tickets {done} anonymisiert{suffix}, "
        f"die Daten von {report.requesters_erased} Anfragenden {done} gelöscht{suffix}, "
        f"{report.asks_deleted} Bot-Fragen und {report.chat_sessions_deleted} "
        f"Web-Chat-Sitzungen {done} gelöscht{suffix}."
    )
    for key, count in sorted(report.per_city.items()):
        typer.echo(f"  {key}: {count} Tickets")


def _privacy_selector(telegram: str | None, web: str | None, email: str | None) -> Identity:
    from hotline.services.privacy import selector

    try:
        return selector(telegram=telegram, web=web, email=email)
    except HotlineError as exc:
        fail(f"{exc.detail} (--telegram, --web or --email)")


@requester_app.command("export")
def requester_export(
    telegram: TelegramOpt = None,
    web: WebOpt = None,
    email: EmailOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON to FILE (else to stdout).")
    ] = None,
) -> None:
    """Export everything held about one requester as JSON.

    Tickets with messages and internal notes, attachment metadata, bot questions and the
    web-chat state; each exported ticket records the export."""
    import json
    import os

    from hotline.services.actors import Actor
    from hotline.services.privacy import export_requester

    who = _privacy_selector(telegram, web, email)
    settings = load_settings()
    db = open_db(settings)
    actor = Actor(label=PRIVACY_ACTOR_LABEL, city_id=None, network=True)
    try:
        with db.write() as session:
            document = export_requester(session, actor, who, secret=settings.secret_key)
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        # Personal data: readable by the operator only.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror})")
    typer.echo(
        f"Export nach {out} geschrieben: {len(document['tickets'])} Tickets, "
        f"{len(document['questions'])} Bot-Fragen."
    )


@requester_app.command("delete")
def requester_delete(
    telegram: TelegramOpt = None,
    web: WebOpt = None,
    email: EmailOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: delete without asking.")] = False,
) -> None:
    """Delete one requester's data (needs --yes).

    Their tickets are anonymised, their bot questions and web-chat session deleted."""
    from hotline.services.actors import Actor
    from hotline.services.privacy import erase_requester, find_holdings, not_found_error

    who = _privacy_selector(telegram, web, email)
    settings = load_settings()
    db = open_db(settings)
    actor = Actor(label=PRIVACY_ACTOR_LABEL, city_id=None, network=True)
    try:
        with db.read() as session:
            found = find_holdings(session, who, secret=settings.secret_key)
            if found.empty:
                fail(not_found_error(who).detail)
            summary = f"{len(found.tickets)} Tickets, {len(found.asks)} Bot-Fragen" + (
                ", 1 Web-Chat-Sitzung" if found.chat is not None else ""
            )
        if not yes:
            fail(
                f"Nichts gelöscht / nothing deleted. Gefunden: {summary}. "
                "Zum Löschen mit --yes wiederholen / repeat with --yes to delete."
            )
        with db.write() as session:
            result = erase_requester(session, actor, who, secret=settings.secret_key)
    except HotlineError as exc:
        fail(exc.detail)
    finally:
        db.dispose()
    typer.echo(
        f"Gelöscht: {result.tickets_anonymised} Tickets anonymisiert "
        f"({result.messages_erased} Nachrichten, {result.attachments_deleted} Anhänge), "
        f"{result.asks_deleted} Bot-Fragen, {result.chat_sessions_deleted} Web-Chat-Sitzungen."
    )


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app()


if __name__ == "__main__":
    main()
