"""A synthetic cooperation of 100 cities at 10,000 tickets a day: routing, KB, intake, inbox,
dashboard and database size, on SQLite and PostgreSQL (the figures behind docs/scaling.md).

For each database (a SQLite file in a temporary folder; a throw-away schema on the PostgreSQL
server of HOTLINE_BENCH_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test)
the benchmark migrates, loads the demo (the three founding cities, the real catalogue of
hotline/demo, the demo KB, rules and staff), adds synthetic cities (AGS, service hours,
postcodes, grouped into districts whose lead city takes delegated services), imports a rule set
of 20–60 rules per city through `import_rules`, imports 20–50 city-specific KB entries per city
(variants of the demo KB's topics) through `import_dir`, adds staff, and bulk-inserts a ticket
history of TICKETS_PER_DAY tickets a day over DAYS days, each routed by the real router, with
requesters, messages, events and the bot's question log. Then it measures:

- routing: rule set load from the database and compile, lint and coverage of the whole
  network, the engine's decision time (baseline: the founding cities' rules, same run) and
  `route_ticket` through the service with the database (baseline: the same transactions with
  the two primary-key reads route_ticket makes, without routing);
- KB (once; it does not depend on the database): one shared index vs one index per city:
  build time, memory, match time per question (baseline: the demo KB alone);
- intake through the API in process (TestClient): ticket creation and bot asks, p50/p99 and
  the rate one client reaches (baseline: GET /healthz);
- board: inbox and dashboard for one city's admin and for the coordinator across all cities;
- database size in total and per ticket.

    python -m benchmarks cities                               # 100 cities, 30 days, both DBs
    python -m benchmarks cities --cities 100 --days 30 --db sqlite
    python -m benchmarks.bench_cities --days 3 --db postgres   # a quick look

Not part of `make test`.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from sqlmodel import col, select

import kb
from benchmarks.bench_board import (
    PASSWORD,
    _copy_value,
    login,
    pct,
    pg_bench_schema,
    timed,
)
from benchmarks.bench_load import QUESTIONS, SUBJECTS
from benchmarks.bench_matcher import _rss_mb, generate_questions
from hotline import migrate
from hotline.app import create_app
from hotline.db import Database
from hotline.demo.loader import DEMO_DIR, KB_DEMO_DIR, load_demo
from hotline.models import (
    City,
    KBAsk,
    Message,
    Requester,
    RoutingConfig,
    Service,
    StaffUser,
    Ticket,
    TicketEvent,
)
from hotline.routing import (
    Audience,
    Conditions,
    Facts,
    Router,
    Rule,
    RuleSet,
    RuleStatus,
    coverage,
    lint,
)
from hotline.services.actors import Actor
from hotline.services.auth import create_token, hash_password
from hotline.services.kb import import_dir, to_kb_entries
from hotline.services.routing import TicketFacts, route_ticket
from hotline.services.rules import RouterCache, catalog, current_ruleset, import_rules
from hotline.settings import Settings

FOUNDING = ("muenchen", "augsburg", "nuernberg")
CHANNELS = ("web", "telegram", "api", "email", "board")
CHANNEL_WEIGHTS = (35, 35, 15, 10, 5)
DISTRICT_SIZE = 8  # cities per district; the first one is the lead city others delegate to
AGENTS_PER_CITY = 4
BATCH = 20_000
PREFIXES = (
    *("Neu", "Alt", "Ober", "Unter", "Nieder", "Hoch", "Kirch", "Wald", "Berg", "Mühl"),
    *("Sonnen", "Eich", "Linden", "Rosen", "Stein"),
)
SUFFIXES = ("hausen", "dorf", "kirchen", "feld", "burg", "heim", "stadt", "bach", "berg", "au")
HOURS = (
    {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    {
        **{d: [["07:30", "12:00"], ["13:00", "16:00"]] for d in ("mon", "tue", "thu")},
        "wed": [["07:30", "12:00"]],
        "fri": [["07:30", "12:00"]],
    },
    {
        **{d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu")},
        "fri": [["08:00", "14:00"]],
    },
)
TRIGGERS = (
    ("fehlermeldung", "funktioniert nicht"),
    ("seite lädt nicht", "absturz"),
    ("paypal", "kreditkarte", "überweis*"),
    ("eilt", "dringend"),
)
REPLIES = (
    "Vielen Dank für Ihre Nachricht. Wir haben den Vorgang geprüft: bitte melden Sie sich erneut "
    "an und laden Sie die Seite neu; danach lässt sich der Antrag absenden.",
    "Guten Tag, die Zahlung ist bei uns eingegangen, der Antrag wird jetzt bearbeitet. Sie "
    "erhalten den Bescheid in den nächsten Tagen per Post.",
    "Ihre Anfrage haben wir an die zuständige Stelle weitergegeben; Sie hören in Kürze von uns.",
)


@dataclass
class Options:
    cities: int
    kinds: list[str]
    days: int
    per_day: int
    asks_per_day: int
    runs: int
    requests: int


@dataclass
class Network:
    keys: list[str]  # city keys, founding first
    weights: list[float]  # share of tickets per city (large cities more)
    city_ids: dict[str, int]
    services: list[tuple[str, int, str | None]]  # key, id, topic
    demo_rule_ids: set[str]
    demo_kb_ids: set[str]
    agents: dict[int, list[int]]  # city id → staff ids
    network_token: str = ""
    seed_figures: dict[str, float] = field(default_factory=dict)


# --- small helpers --------------------------------------------------------------------------------


def runs_stats(runs: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Median of the per-run medians and of the per-run p99s (the project's benchmark style)."""
    return (
        statistics.median(statistics.median(r) for r in runs),
        statistics.median(pct(r, 0.99) for r in runs),
    )


def fmt(runs: Sequence[Sequence[float]], unit: str = "ms") -> str:
    median, p99 = runs_stats(runs)
    return f"median {median:8.3f} {unit}  p99 {p99:8.3f} {unit}"


def time_each(fn: Callable[[Any], object], items: Sequence[Any], runs: int) -> list[list[float]]:
    """Per run, the time of every call in milliseconds."""
    out = []
    for _ in range(runs):
        samples = []
        for item in items:
            start = time.perf_counter()
            fn(item)
            samples.append((time.perf_counter() - start) * 1000)
        out.append(samples)
    return out


def repeat(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _copy_text(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps(value).replace("\\", "\\\\")
    if isinstance(value, bool):
        return "t" if value else "f"
    return _copy_value(value)


def bulk_insert(db: Database, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY on PostgreSQL, executemany on SQLite; rows carry their ids."""
    if not rows:
        return
    columns = list(rows[0])
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(_copy_text(row[c]) for c in columns) + "\n")
            command = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
            with raw.cursor() as cur, cur.copy(command) as copy:  # type: ignore[attr-defined]
                copy.write(buffer.getvalue())
    else:
        with db.write() as session:
            session.execute(sa.insert(table), list(rows))


def max_id(db: Database, table: sa.Table) -> int:
    with db.read() as session:
        return int(session.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0)


def table_of(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


# --- the network ---------------------------------------------------------------------------------


def city_names(n: int, rng: random.Random) -> list[str]:
    names = [p + s for p in PREFIXES for s in SUFFIXES]
    rng.shuffle(names)
    out = names[:n]
    i = 0
    while len(out) < n:  # more cities than name pairs: number the rest
        out.append(f"{names[i % len(names)]} {i // len(names) + 2}")
        i += 1
    return out


def synthetic_cities(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Bavarian-style municipalities: AGS 09 + district + number, disjoint postcode ranges."""
    names = city_names(n, rng)
    out = []
    for i, name in enumerate(names):
        district = i // DISTRICT_SIZE
        start = 82000 + i * 40  # 82000–85999 for 100 cities; the founding cities lie elsewhere
        if start >= 86000:
            start = 91000 + (i - 100) * 40
        out.append(
            {
                "key": f"g{i + 4:03d}-{name.lower().replace(' ', '-').replace('ü', 'ue')}",
                "name": name,
                "ags": f"09{1 + district % 7}{district % 90:02d}{i + 100:03d}",
                "state": "BY",
                "postcodes": [f"{start}-{start + 39}"],
                "service_hours": rng.choice(HOURS),
            }
        )
    return out


def build_rules(net: Network, rng: random.Random) -> list[Rule]:
    """Per city 20–60 rules: own services, delegations to the district's lead city (and a few
    to the founding cities that operate shared platforms), internal questions by topic to the
    lead, channel and text rules."""
    rules: list[Rule] = []
    digital = net.services[:16]  # the demo's digital services come first (services.yml)
    for i, city in enumerate(net.keys):
        lead = net.keys[(i // DISTRICT_SIZE) * DISTRICT_SIZE]
        count = rng.randint(20, 60)
        picks = rng.sample(net.services, min(len(net.services), count))
        for n, (service, _, topic) in enumerate(picks):
            kind = rng.random()
            rid = f"{city}-{n:02d}"
            when: dict[str, Any] = {"origin_city": [city], "service": [service]}
            route_to, priority = city, 100
            if kind < 0.45:  # the city answers this service itself (explicitly, with an SLA)
                pass
            elif kind < 0.70 and lead != city:  # delegated to the district's lead city
                route_to, priority = lead, 50
            elif kind < 0.78:  # a shared platform: questions go to the founding operator
                when["service"] = [rng.choice(digital)[0]]
                route_to, priority = rng.choice(FOUNDING), 40
            elif kind < 0.88 and topic:  # internal questions on a topic go to the lead city
                when = {"origin_city": [city], "topic": [topic], "audience": "internal"}
                route_to, priority = lead, 30
            elif kind < 0.95:  # urgent words or payment trouble on a service
                when["text_any"] = list(rng.choice(TRIGGERS))
                route_to, priority = rng.choice([city, lead]), 20
            else:  # telephone/e-mail questions of small cities are answered by the lead
                when = {"origin_city": [city], "channel": ["email", "api"]}
                route_to, priority = lead, 200
            rules.append(
                Rule(
                    id=rid,
                    owner=city,
                    priority=priority,
                    status=RuleStatus.active,
                    when=Conditions.model_validate(when),
                    route_to=route_to,
                    sla_hours=rng.choice([None, None, 16, 24, 40]),
                )
            )
    return rules


LOCAL_QUESTIONS = (
    "Wie beantrage ich {service} in {city}?",
    "{service} in {city}: welche Unterlagen brauche ich?",
    "Was kostet {service} bei der Stadt {city}?",
    "Wo kann ich {service} in {city} erledigen?",
    "Geht {service} in {city} auch online?",
    "Brauche ich für {service} einen Termin im Bürgerbüro {city}?",
)
FOUNDING_NAMES = (
    "Münchner",
    "Münchens",
    "München",
    "Augsburger",
    "Augsburg",
    "Nürnberger",
    "Nürnbergs",
    "Nürnberg",
)


def _renamed(text: str, name: str) -> str:
    for founding in FOUNDING_NAMES:
        text = text.replace(founding, name)
    return text


def city_entries(
    demo_city: Sequence[kb.KBEntry],
    catalogue: Sequence[tuple[str, str, str | None]],
    city: str,
    name: str,
    count: int,
    rng: random.Random,
) -> list[kb.KBEntry]:
    """`count` entries of one city: its own version of each city-specific topic of the demo KB
    (Ausweis abholen, Bewohnerparken, Hundesteuer, … with the city's name), the rest local
    how-to pages on services of the real catalogue (name and description from the data)."""
    out: list[kb.KBEntry] = []
    if city not in FOUNDING:  # the founding cities have their demo entries already
        topics: dict[str, kb.KBEntry] = {}
        for entry in demo_city:
            topics.setdefault(entry.id.rsplit("-", 1)[0], entry)
        for topic, entry in topics.items():
            out.append(
                kb.KBEntry(
                    id=f"{topic}-{city}"[:120],
                    title=_renamed(entry.title, name)[:300],
                    service=entry.service,
                    city=city,
                    audience=entry.audience,
                    questions=[_renamed(q, name) for q in entry.questions],
                    answer=_renamed(entry.answer, name),
                )
            )
    for key, service, description in rng.sample(list(catalogue), max(0, count - len(out))):
        out.append(
            kb.KBEntry(
                id=f"lokal-{key}-{city}"[:120],
                title=f"{service} in {name}"[:300],
                service=key,
                city=city,
                questions=[
                    t.format(service=service, city=name) for t in rng.sample(LOCAL_QUESTIONS, 4)
                ],
                answer=_renamed(description or f"{service}: Informationen der Stadt.", name)[:1500],
            )
        )
    return out


def seed_network(db: Database, settings: Settings, n_cities: int) -> Network:
    rng = random.Random(100)
    figures: dict[str, float] = {}
    start = time.perf_counter()
    load_demo(db, settings)
    figures["demo load s"] = time.perf_counter() - start
    demo_rules = yaml.safe_load((DEMO_DIR / "rules.yml").read_text(encoding="utf-8"))
    demo_kb = kb.load_dir(KB_DEMO_DIR)
    synthetic = synthetic_cities(max(0, n_cities - len(FOUNDING)), rng)
    with db.write() as session:
        for spec in synthetic:
            session.add(City(**spec))
        session.flush()
        cities = session.exec(select(City).order_by(col(City.id))).all()
        services = session.exec(select(Service).order_by(col(Service.id))).all()
        # Catalogue services a city writes local pages for (the Munich catalogue, with LeiKa).
        local_services = [(s.key, s.name, s.description) for s in services if s.leika_key]
        keys = [c.key for c in cities]
        net = Network(
            keys=keys,
            # Large cities file more: München 1, then falling like city sizes do.
            weights=[1 / (rank + 1) ** 0.8 for rank in range(len(keys))],
            city_ids={c.key: c.id or 0 for c in cities},
            services=[(s.key, s.id or 0, s.topic) for s in services],
            demo_rule_ids={r["id"] for r in demo_rules["rules"]},
            demo_kb_ids={e.id for e in demo_kb},
            agents={},
        )
        net.network_token = create_token(session, name="Benchmark network", network=True).secret
        names = {c.key: c.name for c in cities}
    # Staff: a city admin and agents per city, one coordinator (bulk: one password hash).
    password_hash = hash_password(PASSWORD)
    staff: list[dict[str, Any]] = []
    next_id = max_id(db, table_of(StaffUser)) + 1
    now = datetime.now(UTC)
    for key, city_id in net.city_ids.items():
        net.agents[city_id] = []
        for n in range(AGENTS_PER_CITY + 1):
            role = "city_admin" if n == 0 else "agent"
            staff.append(
                {
                    "id": next_id,
                    "username": f"{'admin' if n == 0 else f'agent{n}'}.bench.{key}"[:80],
                    "display_name": f"Mitarbeiter/in {n} {names[key]}"[:200],
                    "city_id": city_id,
                    "role": role,
                    "password_hash": password_hash,
                    "active": True,
                    "language": "de",
                    "failed_logins": 0,
                    "created_at": now,
                }
            )
            net.agents[city_id].append(next_id)
            next_id += 1
    staff.append(
        {
            **staff[-1],
            "id": next_id,
            "username": "koordination.bench",
            "display_name": "Koordination",
            "city_id": None,
            "role": "coordinator",
        }
    )
    bulk_insert(db, table_of(StaffUser), staff)

    # Rules: the demo's plus 20–60 per city, imported as one file by the coordination.
    with db.read() as session:
        cat_cities, cat_services = catalog(session)
        base = current_ruleset(session, default_city=settings.default_city)
    rules = [*base.rules, *build_rules(net, rng)]
    text = RuleSet(
        cities=tuple(cat_cities),
        services=tuple(cat_services),
        default_city=base.default_city,
        fallback=base.fallback,
        rules=tuple(rules),
    ).to_yaml(include_catalog=False)
    start = time.perf_counter()
    with db.write() as session:
        summary = import_rules(
            session,
            Actor(label="benchmark", city_id=None, network=True),
            text,
            source="bench-rules.yml",
            default_city=settings.default_city,
        )
    figures["rule import s"] = time.perf_counter() - start
    figures["rules created"] = summary.created
    figures["rule file kB"] = len(text.encode()) / 1000

    # KB: 20–50 city-specific entries per city on the demo topics, imported as files.
    demo_city = [e for e in demo_kb if e.city == "muenchen"] + [
        e for e in demo_kb if e.city is not None and e.city != "muenchen"
    ]
    entries: list[kb.KBEntry] = []
    for key in net.keys:
        entries += city_entries(
            demo_city, local_services, key, names[key], rng.randint(20, 50), rng
        )
    with tempfile.TemporaryDirectory(prefix="hl-cities-kb-") as tmp:
        kb.write_dir(entries, tmp)
        start = time.perf_counter()
        with db.write() as session:
            result = import_dir(session, Path(tmp))
        figures["kb import s"] = time.perf_counter() - start
    figures["kb entries"] = len(demo_kb) + result.created
    net.seed_figures = figures
    return net


# --- the ticket history ------------------------------------------------------------------------


@dataclass
class Ids:
    ticket: int
    requester: int
    message: int
    event: int
    ask: int


def history(
    net: Network, router: Router, opts: Options, ids: Ids, year_last: dict[int, int]
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Batches of rows (tickets with requesters, messages and events; bot asks), oldest first,
    every ticket routed by the real router. Deterministic: both databases get the same data."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    total = opts.days * opts.per_day
    start = now - timedelta(days=opts.days)
    step = (now - start) / max(total, 1)
    decisions: dict[tuple[Any, ...], tuple[int, dict[str, Any], int | None]] = {}
    demo_services = net.services[:16]
    demo_entries = sorted(net.demo_kb_ids)
    cum = list(itertools.accumulate(net.weights))
    batch: dict[str, list[dict[str, Any]]] = {
        "requester": [],
        "ticket": [],
        "message": [],
        "ticket_event": [],
        "kb_ask": [],
    }
    asks_per_ticket = opts.asks_per_day / max(opts.per_day, 1)
    ask_credit = 0.0
    for i in range(total):
        created = start + step * i
        origin = rng.choices(net.keys, cum_weights=cum)[0] if rng.random() < 0.97 else None
        service = None
        r = rng.random()
        if r < 0.45:
            service = rng.choice(demo_services)
        elif r < 0.85:
            service = rng.choice(net.services)
        audience = "internal" if rng.random() < 0.1 else "external"
        channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        subject = rng.randrange(len(SUBJECTS))
        key = (origin, service[0] if service else None, audience, channel, subject)
        if key not in decisions:
            decision = router.decide(
                Facts(
                    origin_city=origin,
                    service=service[0] if service else None,
                    audience=Audience(audience),
                    channel=channel,
                    text=SUBJECTS[subject],
                )
            )
            decisions[key] = (net.city_ids[decision.city], decision.to_dict(), decision.sla_hours)
        city, routing, sla_hours = decisions[key]
        age_days = (now - created).days
        if age_days < 1:
            status = rng.choice(("new", "new", "open", "waiting"))
        elif age_days < 7:
            status = rng.choices(("open", "waiting", "resolved", "closed"), (2, 1, 4, 3))[0]
        else:
            status = "closed" if rng.random() < 0.9 else "resolved"
        responded = None if status == "new" else created + timedelta(hours=rng.uniform(0.3, 30))
        resolved = (
            created + timedelta(hours=rng.uniform(20, 60))
            if status in ("resolved", "closed")
            else None
        )
        year_last[created.year] = year_last.get(created.year, 0) + 1
        tid, rid = ids.ticket, ids.requester
        ids.ticket += 1
        ids.requester += 1
        kind = rng.random()
        batch["requester"].append(
            {
                "id": rid,
                "name": None,
                "email": f"buerger{rid}@example.org" if kind < 0.1 else None,
                "telegram_chat_id": str(10**9 + rid) if 0.1 <= kind < 0.55 else None,
                "web_session": uuid.UUID(int=rng.getrandbits(128)).hex if kind >= 0.55 else None,
                "language": "de",
                "anonymised_at": None,
                "created_at": created,
            }
        )
        due = sla_hours or 24
        batch["ticket"].append(
            {
                "id": tid,
                "reference": f"HL-{created.year}-{year_last[created.year]:06d}",
                "subject": SUBJECTS[subject],
                "audience": audience,
                "channel": channel,
                "status": status,
                "priority": "normal" if rng.random() < 0.9 else "high",
                "origin_city_id": net.city_ids[origin] if origin else None,
                "service_id": service[1] if service else None,
                "topic": service[2] if service else None,
                "responsible_city_id": city,
                "assignee_id": rng.choice(net.agents[city]) if status != "new" else None,
                "requester_id": rid,
                "routing": routing,
                "first_response_due": created + timedelta(hours=due * 1.6),
                "resolution_due": created + timedelta(hours=max(due, 120) * 1.6),
                "first_responded_at": responded,
                "resolved_at": resolved,
                "closed_at": resolved + timedelta(days=3)
                if status == "closed" and resolved
                else None,
                "created_at": created,
                "updated_at": resolved or responded or created,
                "version": 1 + (status != "new") + (resolved is not None) + (status == "closed"),
            }
        )
        thread = [("citizen", created, "Guten Tag, " + rng.choice(QUESTIONS) + " Danke.")]
        if responded:
            thread.append(("reply", responded, rng.choice(REPLIES)))
            if rng.random() < 0.3:
                thread.append(("citizen", responded + timedelta(hours=2), rng.choice(QUESTIONS)))
                thread.append(("reply", responded + timedelta(hours=5), rng.choice(REPLIES)))
        for kind_, at, body in thread:
            batch["message"].append(
                {"id": ids.message, "ticket_id": tid, "kind": kind_, "body": body, "created_at": at}
            )
            ids.message += 1
        events: list[tuple[str, dict[str, Any] | None, dict[str, Any], datetime]] = [
            ("created", None, {"status": "new", "channel": channel, "audience": audience}, created),
            ("routed", None, {"city": routing["city"], **routing}, created),
        ]
        if responded:
            events.append(("status", {"status": "new"}, {"status": "open"}, responded))
        if resolved:
            events.append(("status", {"status": "open"}, {"status": "resolved"}, resolved))
        if status == "closed" and resolved:
            events.append(
                ("status", {"status": "resolved"}, {"status": "closed"}, resolved + timedelta(3))
            )
        for kind_, before, after, at in events:
            batch["ticket_event"].append(
                {
                    "id": ids.event,
                    "ticket_id": tid,
                    "kind": kind_,
                    "actor": "token:Benchmark",
                    "before": before,
                    "after": after,
                    "created_at": at,
                }
            )
            ids.event += 1
        ask_credit += asks_per_ticket
        while ask_credit >= 1:
            ask_credit -= 1
            handover = rng.random() < 0.25
            batch["kb_ask"].append(
                {
                    "id": ids.ask,
                    "question": rng.choice(QUESTIONS),
                    "city_id": net.city_ids[origin] if origin else None,
                    "audience": "external",
                    "channel": rng.choice(("telegram", "web")),
                    "decision": "handover" if handover else rng.choice(("answer", "suggest")),
                    "entry_key": None if handover else rng.choice(demo_entries),
                    "score": round(rng.uniform(20, 95), 1),
                    "alternatives": [],
                    "client_hash": hashlib.sha256(str(rng.random()).encode()).hexdigest(),
                    "ticket_id": None,
                    "created_at": created,
                }
            )
            ids.ask += 1
        if len(batch["ticket"]) >= BATCH:
            yield batch
            batch = {k: [] for k in batch}
    if batch["ticket"]:
        yield batch


def fill(db: Database, net: Network, router: Router, opts: Options) -> dict[str, float]:
    tables = {
        "requester": table_of(Requester),
        "ticket": table_of(Ticket),
        "message": table_of(Message),
        "ticket_event": table_of(TicketEvent),
        "kb_ask": table_of(KBAsk),
    }
    ids = Ids(
        ticket=max_id(db, tables["ticket"]) + 1,
        requester=max_id(db, tables["requester"]) + 1,
        message=max_id(db, tables["message"]) + 1,
        event=max_id(db, tables["ticket_event"]) + 1,
        ask=max_id(db, tables["kb_ask"]) + 1,
    )
    year_last: dict[int, int] = {}
    with db.read() as session:
        for year, last in session.execute(sa.text("SELECT year, last FROM reference_counter")):
            year_last[int(year)] = int(last)
    started = time.perf_counter()
    for batch in history(net, router, opts, ids, year_last):
        for name in tables:  # parents before children
            bulk_insert(db, tables[name], batch[name])
    with db.write() as session:
        for year, last in year_last.items():
            session.execute(sa.text("DELETE FROM reference_counter WHERE year = :y"), {"y": year})
            session.execute(
                sa.text("INSERT INTO reference_counter (year, last) VALUES (:y, :n)"),
                {"y": year, "n": last},
            )
    filled = time.perf_counter() - started
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in tables:  # ids were given explicitly: move the sequences past them
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
            # Only this schema's tables (a bare VACUUM would walk the whole shared database).
            names = conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            for table in list(names):
                conn.execute(sa.text(f'VACUUM ANALYZE "{table}"'))
    else:
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
    return {"fill s": filled, "analyze s": time.perf_counter() - started - filled}


# --- measuring: routing ------------------------------------------------------------------------


def sample_facts(net: Network, count: int, rng: random.Random) -> list[Facts]:
    facts = []
    for _ in range(count):
        service = rng.choice(net.services) if rng.random() < 0.85 else None
        facts.append(
            Facts(
                origin_city=rng.choices(net.keys, net.weights)[0],
                service=service[0] if service else None,
                audience=Audience.internal if rng.random() < 0.1 else Audience.external,
                channel=rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
                text=rng.choice(SUBJECTS) + " " + rng.choice(QUESTIONS),
            )
        )
    return facts


def routing_engine(net: Network, ruleset: RuleSet, runs: int) -> list[str]:
    """Database-independent: decision time, compile, lint, coverage (with a baseline)."""
    out = []
    founding = ruleset.model_copy(
        update={"rules": tuple(r for r in ruleset.rules if r.id in net.demo_rule_ids)}
    )
    facts = sample_facts(net, 2_000, random.Random(3))
    # The baseline's questions come from the founding cities (the network's from all).
    founding_net = Network(
        keys=list(FOUNDING),
        weights=[1.0, 0.6, 0.7],
        city_ids={},
        services=net.services,
        demo_rule_ids=set(),
        demo_kb_ids=set(),
        agents={},
    )
    founding_facts = sample_facts(founding_net, 2_000, random.Random(3))
    for label, rules, sample in (
        ("founding cities' rules (baseline)", founding, founding_facts),
        ("network", ruleset, facts),
    ):
        router = Router(rules)
        build = repeat(partial(Router, rules), runs)
        decided = sum(router.decide(f).rule is not None for f in sample) / len(sample)
        times = time_each(router.decide, sample, runs)
        out.append(
            f"{label}: {len(rules.rules):,} rules, compile {build:.1f} ms, "
            f"{decided:.0%} decided by a rule"
        )
        out.append(
            f"    engine decide (indexed)      {fmt([[t * 1000 for t in r] for r in times], 'µs')}"
        )
        if len(rules.rules) <= 300:
            full = time_each(partial(router.decide, full_trace=True), sample, runs)
            out.append(
                f"    engine decide (full trace)   {fmt([[t * 1000 for t in r] for r in full], 'µs')}"
                "  (what route_ticket uses up to 300 rules)"
            )
    start = time.perf_counter()
    warnings = lint(ruleset)
    lint_s = time.perf_counter() - start
    kinds: dict[str, int] = {}
    for w in warnings:
        kinds[str(w.kind)] = kinds.get(str(w.kind), 0) + 1
    out.append(
        f"lint, whole network: {lint_s:.2f} s ("
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + ")"
    )
    for by in ("service", "topic"):
        start = time.perf_counter()
        rows = coverage(ruleset, by=by)  # type: ignore[arg-type]
        out.append(
            f"coverage by {by}, whole network: {time.perf_counter() - start:.2f} s "
            f"({len(rows):,} rows)"
        )
    return out


def routing_service(db: Database, settings: Settings, net: Network, runs: int) -> list[str]:
    out = []
    load = repeat(lambda: _load_ruleset(db, settings), runs)
    with db.read() as session:
        ruleset = current_ruleset(session, default_city=settings.default_city)
    compile_ms = repeat(lambda: Router(ruleset), runs)
    out.append(
        f"rule set load from the database {load:.0f} ms, compile {compile_ms:.0f} ms "
        f"(a process does this once per rule change: RouterCache)"
    )
    rng = random.Random(5)
    facts = sample_facts(net, 300, rng)
    with db.read() as session:
        cities = {c.key: c for c in session.exec(select(City)).all()}
        services = {s.key: s for s in session.exec(select(Service)).all()}
        for c in [*cities.values(), *services.values()]:
            session.expunge(c)
    cache = RouterCache()
    ticket_facts = [
        TicketFacts(
            origin_city=cities.get(f.origin_city or ""),
            service=services.get(f.service or ""),
            topic=None,
            audience=str(f.audience.value if f.audience else "external"),
            channel=f.channel or "web",
            text=f.text or "",
        )
        for f in facts
    ]

    def routed(tf: TicketFacts) -> None:
        with db.read() as session:
            route_ticket(session, tf, default_city=settings.default_city, cache=cache)

    def baseline(tf: TicketFacts) -> None:
        with db.read() as session:
            session.get(RoutingConfig, 1)
            session.get(City, tf.origin_city.id if tf.origin_city else 1)

    routed(ticket_facts[0])  # builds the cached router
    base = time_each(baseline, ticket_facts, runs)
    ours = time_each(routed, ticket_facts, runs)
    out.append(f"baseline: transaction + 2 primary-key reads {fmt(base)}")
    out.append(f"route_ticket through the service (warm cache) {fmt(ours)}")
    return out


def _load_ruleset(db: Database, settings: Settings) -> RuleSet:
    with db.read() as session:
        return current_ruleset(session, default_city=settings.default_city)


# --- measuring: KB (in child processes, so memory is measured cleanly) ---------------------------


def _build(entries: list[kb.KBEntry], per_city: bool) -> dict[str | None, kb.Matcher]:
    if not per_city:
        return {None: kb.Matcher(entries)}
    shared = [e for e in entries if e.city is None]
    own: dict[str, list[kb.KBEntry]] = {}
    for e in entries:
        if e.city is not None:
            own.setdefault(e.city, []).append(e)
    matchers: dict[str | None, kb.Matcher] = {
        city: kb.Matcher([*shared, *mine]) for city, mine in own.items()
    }
    matchers[None] = kb.Matcher(shared)  # cities without entries of their own
    return matchers


def _kb_child(
    entries: list[kb.KBEntry],
    per_city: bool,
    questions: Sequence[tuple[str, str | None]],
    runs: int,
) -> dict[str, Any]:
    """Build the index(es) in a fresh process: build time, memory (RSS growth) and match time."""
    gc.collect()
    before = _rss_mb()
    start = time.perf_counter()
    matchers = _build(entries, per_city)
    build = time.perf_counter() - start
    gc.collect()
    memory = _rss_mb() - before
    medians, p99s, results = [], [], []
    for run in range(runs):
        times = []
        for question, city in questions:
            m = matchers.get(city, matchers[None])
            t0 = time.perf_counter()
            result = m.match(question, city=city)
            times.append((time.perf_counter() - t0) * 1000)
            if run == 0:
                results.append((result.decision, result.entry))
        medians.append(statistics.median(times))
        p99s.append(pct(times, 0.99))
    return {
        "indexes": len(matchers),
        "entries": sum(len(m) for m in matchers.values()),
        "build": build,
        "memory": memory,
        "median": statistics.median(medians),
        "p99": statistics.median(p99s),
        "results": results,
    }


def kb_figures(db: Database, net: Network, runs: int) -> list[str]:
    with db.read() as session:
        entries = to_kb_entries(session)
    demo = [e for e in entries if e.id in net.demo_kb_ids]
    rng = random.Random(9)
    # Reworded questions (typos, extra words) about random entries, asked from the entry's city
    # (a shared entry: from a random city).
    questions = [
        (q, e.city or rng.choice(net.keys)) for q, e in generate_questions(entries, 300, seed=11)
    ]
    demo_questions = [
        (q, e.city or rng.choice(FOUNDING)) for q, e in generate_questions(demo, 300, seed=11)
    ]
    out = [
        f"KB: {len(entries):,} entries ({len(demo)} demo, "
        f"{sum(e.city is not None for e in entries):,} city-specific), "
        f"{sum(len(e.questions) for e in entries):,} question variants; "
        f"{len(questions)} reworded questions (typos), {runs} runs"
    ]
    # A fresh interpreter (spawn): a forked child reuses the parent's free heap.
    ctx = multiprocessing.get_context("spawn")
    cases = (
        ("demo KB alone, 3 cities (baseline)", demo, False, demo_questions),
        ("one shared index, filtered per city", entries, False, questions),
        ("one index per city", entries, True, questions),
    )
    figures = []
    for label, data, per_city, qs in cases:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            r = pool.submit(_kb_child, data, per_city, qs, runs).result()
        figures.append(r)
        answered = sum(d == "answer" for d, _ in r["results"]) / len(qs)
        out.append(
            f"  {label:<38} {r['indexes']:>3} index(es), {r['entries']:>6,} entries indexed: "
            f"build {r['build']:6.2f} s, memory {r['memory']:6.1f} MiB; match median "
            f"{r['median']:5.2f} ms, p99 {r['p99']:6.2f} ms; answered {answered:.0%}"
        )
    same = sum(a == b for a, b in zip(figures[1]["results"], figures[2]["results"], strict=True))
    out.append(
        f"  shared vs per-city index: same decision and entry for {same}/{len(questions)} "
        "questions (document frequencies differ: per-city indexes count only shared + own)"
    )
    return out


# --- measuring: intake, inbox, dashboard ---------------------------------------------------------


def api_figures(db: Database, settings: Settings, net: Network, opts: Options) -> list[str]:
    out = []
    rng = random.Random(13)
    headers = {"Authorization": f"Bearer {net.network_token}"}
    count = opts.requests

    def ticket_body() -> dict[str, Any]:
        service = rng.choice(net.services) if rng.random() < 0.85 else None
        body: dict[str, Any] = {
            "subject": rng.choice(SUBJECTS),
            "body": "Guten Tag, " + rng.choice(QUESTIONS) + " Vielen Dank.",
            "origin_city": rng.choices(net.keys, net.weights)[0],
            "channel": "telegram",
            "requester": {"telegram_chat_id": str(rng.randrange(10**8, 10**10))},
        }
        if service:
            body["service"] = service[0]
        return body

    with TestClient(create_app(settings, db)) as client:
        healthz, _ = timed(client, "/healthz", count)
        creates: list[float] = []
        client.post("/api/v1/tickets", json=ticket_body(), headers=headers)  # warm-up
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            response = client.post(
                "/api/v1/tickets",
                json=ticket_body(),
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            creates.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 201, response.text[:500]
        rate = count / (time.perf_counter() - started)
        asks: list[float] = []
        ask_warmup = {"question": QUESTIONS[0], "city": net.keys[0], "channel": "telegram"}
        client.post("/api/v1/kb/ask", json=ask_warmup, headers=headers)  # builds the matcher
        for _ in range(count):
            body = {
                "question": rng.choice(QUESTIONS),
                "city": rng.choices(net.keys, net.weights)[0],
                "channel": "telegram",
                "client": f"bench-{rng.randrange(10**6)}",
            }
            t0 = time.perf_counter()
            response = client.post("/api/v1/kb/ask", json=body, headers=headers)
            asks.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text[:500]
        target = opts.per_day / 86_400
        out.append(
            f"baseline GET /healthz            p50 {pct(healthz, 0.5):7.1f} ms  "
            f"p99 {pct(healthz, 0.99):7.1f} ms"
        )
        out.append(
            f"POST /api/v1/tickets (create+route) p50 {pct(creates, 0.5):7.1f} ms  "
            f"p99 {pct(creates, 0.99):7.1f} ms  n={count}"
        )
        out.append(
            f"POST /api/v1/kb/ask              p50 {pct(asks, 0.5):7.1f} ms  "
            f"p99 {pct(asks, 0.99):7.1f} ms  n={count}"
        )
        out.append(
            f"one client in process: {rate:.1f} tickets/s = {rate / target:,.0f}x the average "
            f"of {opts.per_day:,}/day ({target:.2f}/s), {rate / (10 * target):,.0f}x a 10x peak hour"
        )
    return out


def board_figures(db: Database, settings: Settings, net: Network, opts: Options) -> list[str]:
    out = []
    count = max(20, opts.requests // 5)
    mid = net.keys[len(net.keys) // 2]  # a mid-sized synthetic city
    big = net.keys[0]
    viewers = (
        (f"admin of {big} (largest city)", f"admin.bench.{big}", ""),
        (f"admin of {mid}", f"admin.bench.{mid}", ""),
        ("coordinator, all cities", "koordination.bench", ""),
        (f"coordinator, city={mid}", "koordination.bench", mid),
    )
    for label, username, city in viewers:
        with TestClient(create_app(settings, db)) as client:
            login(client, username)
            q = f"&city={city}" if city else ""
            pages = [
                ("inbox (newest)", f"/board/inbox?sort=newest{q}", count),
                ("inbox status=open", f"/board/inbox?status=open{q}", count),
                ("inbox SLA breached", f"/board/inbox?breached=1{q}", count),
                ("dashboard (30 days)", f"/board/dashboard?{q.lstrip('&')}", 3),
            ]
            if not city:
                pages.insert(0, ("baseline /healthz", "/healthz", count))
            for page, path, n in pages:
                times, status = timed(client, path, n)
                out.append(
                    f"  {label:<34} {page:<20} "
                    + (
                        f"p50 {pct(times, 0.5):7.1f} ms  p95 {pct(times, 0.95):7.1f} ms  n={n}"
                        if status == 200
                        else f"HTTP {status}"
                    )
                )
    return out


def size_figures(db: Database) -> tuple[list[str], dict[str, int]]:
    tables = (
        "ticket",
        "message",
        "ticket_event",
        "requester",
        "kb_ask",
        "routing_rule",
        "routing_rule_event",
        "kb_entry",
    )
    sizes: dict[str, int] = {}
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            for name in tables:
                sizes[name] = int(
                    conn.execute(sa.text(f"SELECT pg_total_relation_size('{name}')")).scalar() or 0
                )
            sizes["total"] = int(
                conn.execute(
                    sa.text(
                        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                        "AND c.relkind IN ('r', 'm')"
                    )
                ).scalar()
                or 0
            )
        else:
            conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
            path = db.engine.url.database or ""
            sizes["total"] = os.path.getsize(path)
            try:  # per table (with its indexes) where SQLite has the dbstat table
                rows = conn.execute(
                    sa.text(
                        "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat s JOIN sqlite_master m "
                        "ON m.name = s.name GROUP BY m.tbl_name"
                    )
                ).all()
                found = {str(name): int(size) for name, size in rows}
                sizes.update({t: found.get(t, 0) for t in tables})
            except sa.exc.OperationalError:
                pass
        n = int(conn.execute(sa.text("SELECT count(*) FROM ticket")).scalar() or 0)
        as_text = "routing::text" if db.dialect == "postgresql" else "routing"
        routing_bytes = float(
            conn.execute(sa.text(f"SELECT avg(length({as_text})) FROM ticket")).scalar() or 0
        )
        counts = {
            t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() or 0)
            for t in ("message", "ticket_event", "requester", "kb_ask")
        }
    out = [
        f"total {sizes['total'] / 2**20:,.0f} MiB for {n:,} tickets = "
        f"{sizes['total'] / max(n, 1) / 1024:.2f} KiB per ticket (all tables, with indexes; "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        + ")"
    ]
    if "ticket" in sizes:
        ticket_part = sum(sizes[t] for t in ("ticket", "message", "ticket_event", "requester"))
        out.append(
            "  "
            + ", ".join(f"{t} {sizes[t] / 2**20:,.0f} MiB" for t in tables)
            + f"; ticket+messages+events+requester {ticket_part / max(n, 1) / 1024:.2f} KiB "
            "per ticket"
        )
    out.append(
        f"  the routing decision with its trace: {routing_bytes:,.0f} characters per ticket, "
        "stored twice (ticket.routing and the 'routed' event)"
    )
    return out, {"tickets": n, **sizes}


# --- running --------------------------------------------------------------------------------------


def run_one(kind: str, url: str, opts: Options, with_kb: bool) -> None:
    settings = Settings(  # type: ignore[call-arg]
        database_url=url, env="test", worker_in_process=False, retention_interval_hours=0
    )
    db = Database.from_settings(settings)
    try:
        migrate.upgrade(db.engine)
        start = time.perf_counter()
        net = seed_network(db, settings, opts.cities)
        seed_s = time.perf_counter() - start
        with db.read() as session:
            ruleset = current_ruleset(session, default_city=settings.default_city)
        router = Router(ruleset)
        fill_figures = fill(db, net, router, opts)
        f = net.seed_figures
        print(
            f"\n{kind}: {len(net.keys)} cities, {len(net.services)} services, "
            f"{len(ruleset.rules):,} rules, KB imported; seeded in {seed_s:.0f} s (rule import "
            f"{f['rule import s']:.1f} s for {f['rule file kB']:.0f} kB of YAML, KB import "
            f"{f['kb import s']:.1f} s); {opts.days * opts.per_day:,} tickets over {opts.days} "
            f"days filled in {fill_figures['fill s']:.0f} s, analyzed in "
            f"{fill_figures['analyze s']:.0f} s",
            flush=True,
        )
        sections: list[tuple[str, Callable[[], Iterable[str]]]] = [
            ("database size", lambda: size_figures(db)[0]),
        ]
        if with_kb:
            sections.append(
                (
                    "routing engine (database-independent)",
                    lambda: routing_engine(net, ruleset, opts.runs),
                )
            )
            sections.append(("KB (database-independent)", lambda: kb_figures(db, net, 3)))
        sections += [
            ("routing through the service", lambda: routing_service(db, settings, net, opts.runs)),
            (
                "intake through the API (TestClient, in process)",
                lambda: api_figures(db, settings, net, opts),
            ),
            (
                "board pages (TestClient, in process)",
                lambda: board_figures(db, settings, net, opts),
            ),
        ]
        for title, section in sections:
            started = time.perf_counter()
            lines = list(section())
            print(f"\n{kind} — {title} ({time.perf_counter() - started:.0f} s)")
            for line in lines:
                print(f"  {line}", flush=True)
    finally:
        db.dispose()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad options: say which and exit 1, like the hotline CLI (argparse would exit 2)."""
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str]) -> Options:
    parser = _Parser(
        prog="python -m benchmarks cities",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cities", type=int, default=100, help="cities in the network (≥ 3)")
    parser.add_argument(
        "--db", choices=("sqlite", "postgres", "postgresql", "both"), default="both"
    )
    parser.add_argument("--days", type=int, default=30, help="days of ticket history")
    parser.add_argument("--tickets-per-day", type=int, default=10_000)
    parser.add_argument(
        "--asks-per-day",
        type=int,
        default=20_000,
        help="bot questions logged a day (kept 30 days by retention)",
    )
    parser.add_argument("--runs", type=int, default=5, help="repeated timing runs")
    parser.add_argument("--requests", type=int, default=300, help="API requests per case")
    args = parser.parse_args(list(argv))
    for name in ("cities", "days", "tickets_per_day", "runs", "requests"):
        if getattr(args, name) < (3 if name == "cities" else 1):
            parser.error(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    if args.asks_per_day < 0:
        parser.error("--asks-per-day must not be negative")
    kinds = {"both": ["sqlite", "postgresql"], "postgres": ["postgresql"]}.get(args.db, [args.db])
    return Options(
        args.cities,
        kinds,
        args.days,
        args.tickets_per_day,
        args.asks_per_day,
        args.runs,
        args.requests,
    )


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse_args(argv or [])
    print(
        f"Cities benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}: {opts.cities} cities, {opts.per_day:,} tickets "
        f"and {opts.asks_per_day:,} bot questions a day over {opts.days} days, "
        f"{opts.runs} runs, {opts.requests} API requests per case; databases "
        + ", ".join(opts.kinds),
        flush=True,
    )
    with_kb = True
    if "sqlite" in opts.kinds:
        with tempfile.TemporaryDirectory(prefix="hl-cities-") as tmp:
            run_one("SQLite", f"sqlite:///{Path(tmp) / 'cities.db'}", opts, with_kb)
        with_kb = False
    if "postgresql" in opts.kinds:
        with pg_bench_schema("hl_cities") as url:
            if url is not None:
                run_one("PostgreSQL", url, opts, with_kb)


if __name__ == "__main__":
    main(sys.argv[1:])
