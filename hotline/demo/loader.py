"""Demo data: the three founding cities, their catalogue, staff, tokens and realistic tickets."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session, col, select

import kb
from hotline.db import Database, utcnow
from hotline.models import (
    Channel,
    City,
    KBAsk,
    Message,
    MessageKind,
    Role,
    Service,
    StaffUser,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from hotline.schemas import TicketCreate
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.auth import create_token, create_user, staff_actor
from hotline.services.catalog import import_services, read_catalog
from hotline.services.kb import import_dir
from hotline.services.rules import RouterCache, import_rules
from hotline.services.sla import parse_service_hours
from hotline.settings import Settings

DEMO_DIR = Path(__file__).resolve().parent
DATA_DIR = DEMO_DIR / "data"
KB_DEMO_DIR = Path(kb.__file__).resolve().parent / "demo"
DEMO_PASSWORD = "hotline-demo"  # development only: `hotline demo` refuses to run in production

DEMO_USERS: list[tuple[str, str, Role, str | None]] = [
    ("admin.muenchen", "Maria Huber", Role.city_admin, "muenchen"),
    ("agent1.muenchen", "Florian Gruber", Role.agent, "muenchen"),
    ("agent2.muenchen", "Aylin Demir", Role.agent, "muenchen"),
    ("admin.augsburg", "Stefan Wagner", Role.city_admin, "augsburg"),
    ("agent1.augsburg", "Julia Schneider", Role.agent, "augsburg"),
    ("agent2.augsburg", "Tobias Lechner", Role.agent, "augsburg"),
    ("admin.nuernberg", "Sandra Vogel", Role.city_admin, "nuernberg"),
    ("agent1.nuernberg", "Markus Frank", Role.agent, "nuernberg"),
    ("agent2.nuernberg", "Elena Popescu", Role.agent, "nuernberg"),
    ("koordination", "Dr. Andrea Winkler", Role.coordinator, None),
]


@dataclass(slots=True)
class DemoResult:
    loaded: bool
    counts: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


def _yaml(name: str) -> Any:
    with (DEMO_DIR / name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def is_empty(db: Database) -> bool:
    with db.read() as session:
        return session.exec(select(City).limit(1)).first() is None


def load_demo(db: Database, settings: Settings, *, tokens_file: Path | None = None) -> DemoResult:
    """Load everything into an empty database in one transaction (all or nothing)."""
    if settings.env == "production":
        raise RuntimeError(
            "Demo data is for development only; refusing with HOTLINE_ENV=production."
        )
    with db.write() as session:
        if session.exec(select(City).limit(1)).first() is not None:
            return DemoResult(loaded=False)
        _cities(session)
        _services(session)
        for username, name, role, city in DEMO_USERS:
            create_user(
                session,
                username=username,
                password=DEMO_PASSWORD,
                role=role,
                city_key=city,
                display_name=name,
                email=f"{username}@hotline.example",
            )
        tokens = {
            "network": create_token(
                session, name="Demo: Netzwerk-Integration", network=True
            ).secret,
        }
        for key in ("muenchen", "augsburg", "nuernberg"):
            tokens[key] = create_token(session, name=f"Demo: Website {key}", city_key=key).secret
        rules = import_rules(
            session,
            Actor(label="demo", city_id=None, network=True),
            (DEMO_DIR / "rules.yml").read_text(encoding="utf-8"),
            source="rules.yml",
            default_city=settings.default_city,
        )
        kb_result = import_dir(session, KB_DEMO_DIR)
        n_tickets = _tickets(session, settings)
        n_asks = _asks(session, settings)
        counts = {
            "cities": len(session.exec(select(City)).all()),
            "services": len(session.exec(select(Service)).all()),
            "users": len(DEMO_USERS),
            "rules": rules.created,
            "kb_entries": kb_result.created,
            "tickets": n_tickets,
            "bot_asks": n_asks,
        }
    if tokens_file is not None:
        tokens_file.parent.mkdir(parents=True, exist_ok=True)
        tokens_file.write_text("".join(f"{k}\t{v}\n" for k, v in tokens.items()), encoding="utf-8")
        os.chmod(tokens_file, 0o600)
    return DemoResult(loaded=True, counts=counts, tokens=tokens)


def read_tokens(tokens_file: Path) -> dict[str, str]:
    if not tokens_file.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in tokens_file.read_text(encoding="utf-8").splitlines())
    return {k: v for k, v in pairs}


def _cities(session: Session) -> None:
    for raw in _yaml("cities.yml"):
        parse_service_hours(raw["service_hours"])  # fail loudly on a typo in the demo file
        session.add(
            City(
                key=raw["key"],
                name=raw["name"],
                ags=raw["ags"],
                state=raw.get("state"),
                service_hours=raw["service_hours"],
                postcodes=raw.get("postcodes"),
            )
        )
    session.flush()


def add_digital_services(session: Session) -> None:
    """The demo's digital services (services.yml), skipping keys that exist already."""
    cities = {c.key: c for c in session.exec(select(City)).all()}
    taken = set(session.exec(select(Service.key)).all())
    for raw in _yaml("services.yml"):
        if raw["key"] in taken:
            continue
        owner = cities.get(raw["owner"]) if raw.get("owner") else None
        session.add(
            Service(
                key=raw["key"],
                name=raw["name"],
                topic=raw.get("topic"),
                leika_key=raw.get("leika"),
                owner_city_id=owner.id if owner else None,
            )
        )
    session.flush()


def _services(session: Session) -> None:
    add_digital_services(session)
    # Munich's real catalogue, with OZG ids joined through the LeiKa key.
    ozg_by_leika: dict[str, tuple[str, str]] = {}
    with (DATA_DIR / "ozg_leika_joined.csv").open(encoding="utf-8") as fh:
        for ozg in csv.DictReader(fh):
            if ozg["leika_key"].isdigit() and ozg["ozg_id"]:
                ozg_by_leika.setdefault(ozg["leika_key"], (ozg["ozg_id"], ozg["lebenslage"]))
    taken = set(session.exec(select(Service.key)).all())
    rows = [r for r in read_catalog(DATA_DIR / "munich_services_leika.csv") if r.key not in taken]
    for row in rows:
        if row.leika_key and row.leika_key in ozg_by_leika:
            row.ozg_id, row.topic = ozg_by_leika[row.leika_key]
    import_services(session, rows, source="munich_services_leika.csv")


def _tickets(session: Session, settings: Settings) -> int:
    # Oldest first, so that ticket ids (the board's "newest first") follow the tickets' age.
    specs = sorted(_yaml("tickets.yml"), key=lambda spec: -float(spec["age_hours"]))
    users = {u.username: u for u in session.exec(select(StaffUser)).all()}
    cities = {c.id: c.key for c in session.exec(select(City)).all()}
    sla = svc.SLAPolicy(settings.sla_first_response_hours, settings.sla_resolution_hours)
    created: list[Ticket] = []
    now = utcnow()
    cache = RouterCache()
    for spec in specs:
        channel_actor = Actor(label=f"kanal:{spec['channel']}", city_id=None, network=True)
        data = TicketCreate(
            subject=spec["subject"],
            body=spec["body"],
            audience=spec.get("audience", "external"),
            channel=spec["channel"],
            origin_city=spec.get("origin"),
            service=spec.get("service"),
            priority=spec.get("priority", "normal"),
            requester=spec.get("requester"),
        )
        ticket = svc.create_ticket(
            session,
            channel_actor,
            data,
            default_city=settings.default_city,
            sla=sla,
            router_cache=cache,
        )
        ident = ticket.id or 0

        def staff(role: str, t: Ticket = ticket) -> Actor:
            return staff_actor(users[f"{role}.{cities[t.responsible_city_id]}"])

        if spec.get("transfer"):
            to_city, reason = spec["transfer"]
            svc.transfer_ticket(
                session,
                staff("admin"),
                ident,
                to_city=to_city,
                reason=reason,
                version=ticket.version,
            )
        if spec.get("assign"):
            svc.assign_ticket(
                session,
                staff("admin"),
                ident,
                assignee=f"{spec['assign']}.{cities[ticket.responsible_city_id]}",
                version=None,
            )
        worker = staff(spec.get("assign", "agent1"))
        thread: list[list[str]] = spec.get("thread", [])
        target = spec["status"]
        last_citizen_reopens = target == "reopened"
        for i, (kind, text) in enumerate(thread):
            if last_citizen_reopens and i == len(thread) - 1:
                _to(session, worker, ticket, TicketStatus.resolved)
            actor = worker if kind in ("reply", "note") else channel_actor
            svc.add_message(session, actor, ident, kind=MessageKind(kind), body=text)
        _finish(session, worker, ticket, target, created)
        created.append(ticket)
        _backdate(session, ticket, now - timedelta(hours=float(spec["age_hours"])), now, sla)
    return len(created)


def _asks(session: Session, settings: Settings) -> int:
    """The bot's questions of the last weeks, matched by the real matcher and logged."""
    from hotline.services.asking import MatcherCache, ask, feedback

    cache = MatcherCache()
    now = utcnow()
    specs = _yaml("asks.yml")
    for spec in specs:
        actor = Actor(label=f"kanal:{spec['channel']}", city_id=None, network=True)
        outcome = ask(
            session,
            actor,
            cache,
            question=spec["q"],
            city=spec["city"],
            channel=Channel(spec["channel"]),
            secret=settings.secret_key,
        )
        row = session.get(KBAsk, outcome.ask_id)
        if row is not None:
            row.created_at = now - timedelta(days=float(spec["days"]), hours=3)
            session.add(row)
        if "helped" in spec and outcome.decision == "answer":
            feedback(session, actor, outcome.ask_id, helped=bool(spec["helped"]))
    # Ratings the requesters gave after their tickets were resolved.
    resolved = session.exec(
        select(Ticket)
        .where(col(Ticket.status).in_([TicketStatus.resolved, TicketStatus.closed]))
        .order_by(col(Ticket.id))
    ).all()
    for ticket, rating in zip(resolved, (5, 4, 5, 3, 4, 2, 5, 4), strict=False):
        ticket.rating = rating
        session.add(ticket)
    session.flush()
    return len(specs)


def _to(session: Session, actor: Actor, ticket: Ticket, status: TicketStatus) -> None:
    svc.change_status(session, actor, ticket.id or 0, to=status, version=ticket.version)


def _finish(
    session: Session, actor: Actor, ticket: Ticket, target: str, created: list[Ticket]
) -> None:
    steps: dict[str, list[TicketStatus]] = {
        "new": [],
        "open": [TicketStatus.open],
        "waiting": [TicketStatus.open, TicketStatus.waiting],
        "resolved": [TicketStatus.open, TicketStatus.resolved],
        "closed": [TicketStatus.open, TicketStatus.resolved, TicketStatus.closed],
        "reopened": [],
    }
    if target == "merge-into-first":
        svc.merge_ticket(
            session, actor, ticket.id or 0, into=created[0].reference, version=ticket.version
        )
        return
    for status in steps[target]:
        if ticket.status == status or status not in svc.TRANSITIONS[TicketStatus(ticket.status)]:
            continue
        _to(session, actor, ticket, status)


def _backdate(session: Session, ticket: Ticket, start: Any, now: Any, sla: svc.SLAPolicy) -> None:
    """Spread the ticket's history between `start` and now, as if it had happened then."""
    messages = session.exec(
        select(Message).where(Message.ticket_id == ticket.id).order_by(col(Message.id))
    ).all()
    events = session.exec(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(col(TicketEvent.id))
    ).all()
    span = (now - start) * 0.9
    step: Callable[[int, int], Any] = lambda i, n: start + span * (i / max(n, 1))  # noqa: E731
    for i, m in enumerate(messages):
        m.created_at = step(i, len(messages))
        session.add(m)
    for i, e in enumerate(events):
        e.created_at = step(i, len(events))
        session.add(e)
        if e.after and e.after.get("status") == "resolved":
            ticket.resolved_at = e.created_at
        if e.after and e.after.get("status") == "closed":
            ticket.closed_at = e.created_at
    replies = [m for m in messages if m.kind == MessageKind.reply]
    ticket.first_responded_at = replies[0].created_at if replies else None
    ticket.created_at = start
    ticket.updated_at = step(len(events), len(events)) if events else start
    city = session.get_one(City, ticket.responsible_city_id)
    svc.set_due_times(ticket, city, svc.sla_policy_for(city, sla), start)
    session.add(ticket)
    session.flush()
