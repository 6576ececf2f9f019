"""Prometheus /metrics: exact counter values after real API traffic, the database gauges, the
latency histogram's route templates, the token, and no personal data in any label."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import prometheus_client
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from hotline import worker
from hotline.app import create_app
from hotline.db import Database, utcnow
from hotline.domain import Audience, Channel
from hotline.metrics import DatabaseGauges, Metrics
from hotline.models import City, OutboxDelivery, Ticket
from hotline.settings import Settings
from tests.conftest import World, settings_for

pytestmark = pytest.mark.db

API = "/api/v1"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def scrape(client: TestClient, **headers: str) -> Samples:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    # No background worker (the test drives deliveries itself) and no gauge cache.
    return settings_for(settings.database_url, worker_in_process=False, metrics_cache_seconds=0)


@pytest.fixture
def mclient(app_settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, db), raise_server_exceptions=False) as client:
        yield client


def _ticket(client: TestClient, world: World, **fields: Any) -> dict[str, Any]:
    payload = {"subject": "Frage", "body": "Ich habe eine Frage.", **fields}
    r = client.post(f"{API}/tickets", json=payload, headers=world.headers())
    assert r.status_code == 201, r.text
    return r.json()


def _rules(client: TestClient, world: World) -> None:
    """Augsburg answers ePayment itself (a rule); Augsburg hands BayernID questions of its
    citizens to München, which accepts (a delegation)."""
    own = {
        "id": "aux-epayment",
        "owner": "augsburg",
        "when": {"service": ["epayment"]},
        "route_to": "augsburg",
    }
    delegation = {
        "id": "aux-bayernid-an-muc",
        "owner": "augsburg",
        "when": {"origin_city": ["augsburg"], "service": ["bayernid"]},
        "route_to": "muenchen",
    }
    for rule in (own, delegation):
        r = client.post(f"{API}/routing/rules", json=rule, headers=world.headers("augsburg"))
        assert r.status_code == 201, r.text
    r = client.post(
        f"{API}/routing/rules/aux-bayernid-an-muc/accept", headers=world.headers("muenchen")
    )
    assert r.status_code == 200 and r.json()["status"] == "active", r.text


def test_counters_gauges_and_latency_after_real_traffic(
    mclient: TestClient, world: World, db: Database
) -> None:
    client = mclient
    _rules(client, world)
    by_rule = _ticket(
        client,
        world,
        origin_city="muenchen",
        service="epayment",
        channel="telegram",
        requester={"telegram_chat_id": "4711", "name": "Erika Mustermann"},
    )
    delegated = _ticket(
        client,
        world,
        origin_city="augsburg",
        service="bayernid",
        channel="telegram",
        requester={"telegram_chat_id": "4712", "name": "Max Mustermann"},
    )
    fallback = _ticket(client, world, origin_city="nuernberg")
    assert (by_rule["responsible_city"], delegated["responsible_city"]) == ("augsburg", "muenchen")
    # A retried request (same Idempotency-Key) and a refused one count nothing.
    for _ in range(2):
        r = client.post(
            f"{API}/tickets",
            json={"subject": "Nochmal", "body": "Text", "origin_city": "augsburg"},
            headers={**world.headers(), "Idempotency-Key": "metrics-1"},
        )
        assert r.status_code in (200, 201), r.text
    refused = client.post(
        f"{API}/tickets",
        json={"subject": "X", "body": "Y", "origin_city": "atlantis"},
        headers=world.headers(),
    )
    assert refused.status_code == 422
    moved = client.post(
        f"{API}/tickets/{fallback['reference']}/transfer",
        json={"to_city": "muenchen", "reason": "Zuständigkeit München", "version": 1},
        headers=world.headers(),
    )
    assert moved.status_code == 200, moved.text

    # Questions to the KB: an empty KB hands everything over.
    asks = Tally()
    for question, channel in (
        ("Wie beantrage ich einen Personalausweis?", "telegram"),
        ("xqzv blorf", "web"),
        ("BayernID Passwort vergessen", "telegram"),
    ):
        r = client.post(
            f"{API}/kb/ask",
            json={"question": question, "city": "muenchen", "channel": channel},
            headers=world.headers(),
        )
        assert r.status_code == 200, r.text
        asks[(r.json()["decision"], channel)] += 1
    assert asks == {("handover", "telegram"): 2, ("handover", "web"): 1}

    # Staff replies to both Telegram tickets: two outbox messages, then delivered with one
    # outage (retry), one success and one blocked chat (failed).
    for ref in (by_rule["reference"], delegated["reference"]):
        r = client.post(
            f"{API}/tickets/{ref}/messages",
            json={"kind": "reply", "body": "Wir kümmern uns darum."},
            headers=world.headers(),
        )
        assert r.status_code == 201, r.text
    # One overdue ticket for the SLA gauge.
    with db.write() as session:
        t = session.exec(select(Ticket).where(Ticket.reference == delegated["reference"])).one()
        t.first_responded_at = None
        t.first_response_due = utcnow() - timedelta(hours=1)
        session.add(t)

    s = scrape(client)
    assert value(s, "hotline_outbox_pending", channel="telegram") == 2
    assert value(s, "hotline_tickets_sla_breached", city="muenchen") == 1
    assert value(s, "hotline_tickets_sla_breached", city="augsburg") == 0
    assert value(s, "hotline_tickets_sla_breached", city="nuernberg") == 0

    app_metrics: Metrics = client.app.state.metrics  # type: ignore[attr-defined]
    calls: list[str] = []

    async def flaky(recipient: str, payload: dict[str, Any]) -> None:
        calls.append(recipient)
        if recipient == "4712":
            raise worker.PermanentFailure("Forbidden: bot was blocked by the user")
        if calls.count(recipient) == 1:
            raise ConnectionError("Bot API unreachable")

    asyncio.run(worker.deliver_due(db, {"telegram": flaky}, metrics=app_metrics))
    with db.write() as session:
        for row in session.exec(select(OutboxDelivery)).all():
            row.next_attempt_at = utcnow() - timedelta(seconds=1)
            session.add(row)
    asyncio.run(worker.deliver_due(db, {"telegram": flaky}, metrics=app_metrics))

    r = client.get(f"{API}/tickets/{by_rule['reference']}", headers=world.headers())
    assert r.status_code == 200
    assert client.get("/nirgendwo/HL-2026-999999").status_code == 404

    s = scrape(client)
    assert series(s, "hotline_tickets_created_total") == {
        frozenset({("city", "augsburg"), ("channel", "telegram")}): 1,
        frozenset({("city", "muenchen"), ("channel", "telegram")}): 1,
        frozenset({("city", "nuernberg"), ("channel", "api")}): 1,
        frozenset({("city", "augsburg"), ("channel", "api")}): 1,  # the idempotent one, once
    }
    assert series(s, "hotline_tickets_routed_total") == {
        frozenset({("city", "augsburg"), ("via", "rule")}): 1,
        frozenset({("city", "muenchen"), ("via", "delegation")}): 1,
        frozenset({("city", "nuernberg"), ("via", "fallback")}): 1,
        frozenset({("city", "augsburg"), ("via", "fallback")}): 1,
        frozenset({("city", "muenchen"), ("via", "transfer")}): 1,
    }
    assert series(s, "hotline_kb_asks_total") == {
        frozenset({("decision", d), ("channel", c)}): n for (d, c), n in asks.items()
    }
    assert series(s, "hotline_outbox_deliveries_total") == {
        frozenset({("channel", "telegram"), ("result", "retry")}): 1,
        frozenset({("channel", "telegram"), ("result", "sent")}): 1,
        frozenset({("channel", "telegram"), ("result", "failed")}): 1,
    }
    assert value(s, "hotline_outbox_pending", channel="telegram") is None  # nothing left
    assert value(s, "hotline_tickets_open", city="muenchen", status="new") == 1
    assert value(s, "hotline_tickets_open", city="augsburg", status="new") == 1
    assert value(s, "hotline_tickets_open", city="augsburg", status="open") == 1  # replied
    assert value(s, "hotline_tickets_open", city="muenchen", status="open") == 1

    # The latency histogram names route templates, never the raw path.
    one = value(
        s,
        "hotline_http_request_duration_seconds_count",
        method="GET",
        route="/api/v1/tickets/{ticket_id}",
        status="200",
    )
    assert one == 1
    assert (
        value(
            s,
            "hotline_http_request_duration_seconds_count",
            method="GET",
            route="other",
            status="404",
        )
        == 1
    )
    created = value(
        s,
        "hotline_http_request_duration_seconds_count",
        method="POST",
        route="/api/v1/tickets",
        status="201",
    )
    assert created == 5  # three tickets, and the idempotent pair answered 201 twice
    assert (
        value(
            s,
            "hotline_http_request_duration_seconds_count",
            method="POST",
            route="/api/v1/tickets",
            status="422",
        )
        == 1
    )
    routes = {
        dict(labels)["route"] for labels in series(s, "hotline_http_request_duration_seconds_count")
    }
    assert all(r == "other" or (r.startswith("/") and "HL-" not in r) for r in routes), routes

    # No personal data anywhere in the exposition (names, chat ids, references, texts): in
    # the metric names, labels and help texts. The sample values are left out, since a float
    # such as a `_created` timestamp (1.7637147112e+09) may contain "4711" by chance.
    text = client.get("/metrics").text
    described = "\n".join(
        line if line.startswith("#") else line.rsplit(" ", 1)[0] for line in text.splitlines()
    )
    for secret in ("Mustermann", "4711", "4712", "HL-", "Personalausweis", "kümmern", "atlantis"):
        assert secret not in described, secret


def _breached(gauges: DatabaseGauges) -> float:
    family = next(f for f in gauges.collect() if f.name == "hotline_tickets_sla_breached")
    return sum(s.value for s in family.samples)


def test_gauges_are_cached_between_scrapes(world: World, db: Database) -> None:
    cached = DatabaseGauges(db, cache_seconds=60)
    assert _breached(cached) == 0
    with db.write() as session:
        city = session.exec(select(City).where(City.key == "muenchen")).one()
        session.add(
            Ticket(
                reference="HL-2026-000900",
                subject="x",
                audience=Audience.external,
                channel=Channel.api,
                responsible_city_id=city.id or 0,
                first_response_due=utcnow() - timedelta(minutes=5),
            )
        )
    assert _breached(cached) == 0  # served from the cache
    assert _breached(DatabaseGauges(db, cache_seconds=0)) == 1


def test_each_app_has_its_own_registry(settings: Settings, world: World, db: Database) -> None:
    quiet = settings_for(settings.database_url, worker_in_process=False)
    other_db = Database.from_settings(quiet)
    try:
        with (
            TestClient(create_app(quiet, db)) as one,
            TestClient(create_app(quiet, other_db)) as two,
        ):
            _ticket(one, world, origin_city="augsburg")
            assert (
                value(scrape(one), "hotline_tickets_created_total", city="augsburg", channel="api")
                == 1
            )
            assert series(scrape(two), "hotline_tickets_created_total") == {}
    finally:
        other_db.dispose()
    # Nothing of ours in prometheus_client's process-wide registry.
    assert not [
        n for n in prometheus_client.REGISTRY._names_to_collectors if n.startswith("hotline")
    ]


def test_metrics_token(settings: Settings, db: Database) -> None:
    locked = settings_for(
        settings.database_url, worker_in_process=False, metrics_token="scrape-secret-123"
    )
    with TestClient(create_app(locked, db)) as client:
        missing = client.get("/metrics")
        assert missing.status_code == 401
        assert missing.json()["code"] == "missing_token" and missing.json()["detail"]
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_token"
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
        assert ok.status_code == 200 and "hotline_tickets_open" in ok.text
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_can_be_turned_off(settings: Settings, db: Database) -> None:
    off = settings_for(settings.database_url, worker_in_process=False, metrics_enabled=False)
    with TestClient(create_app(off, db)) as client:
        assert client.get("/metrics").status_code == 404


def test_open_metrics_by_default(mclient: TestClient, world: World) -> None:
    s = scrape(mclient)
    # Every city has its breach series, at 0.
    assert series(s, "hotline_tickets_sla_breached") == {
        frozenset({("city", key)}): 0 for key in ("augsburg", "dresden", "muenchen", "nuernberg")
    }
    assert not [k for k in s if k[0] == "hotline_tickets_created_total"]
