"""Prometheus metrics of a backend or worker process, served at GET /metrics.

Two kinds of figures, to be read differently when several processes run:

- **Counters and the latency histogram are per process.** Each backend replica and each worker
  counts what it did itself; Prometheus scrapes every process and `sum()` over the instances
  gives the network's totals (`sum by (city) (rate(hotline_tickets_created_total[5m]))`).
- **The gauges come from the shared database** (open tickets, SLA breaches, pending outbox
  messages), computed at scrape time and cached for `HOTLINE_METRICS_CACHE_SECONDS`. Every
  backend replica reports the same values: aggregate them with `max()`, never `sum()`.
  The standalone worker (`hotline worker`, HOTLINE_WORKER_METRICS_PORT) serves counters only.

Metrics (the names are stable: the operations docs and dashboards refer to them):

| name | type | labels |
| --- | --- | --- |
| hotline_tickets_created_total | counter | city (responsible at creation), channel |
| hotline_tickets_routed_total | counter | city (that received it), via: rule, delegation, fallback, default, transfer |
| hotline_kb_asks_total | counter | decision (answer, suggest, handover), channel |
| hotline_outbox_deliveries_total | counter | channel, result (sent, retry, failed) |
| hotline_sla_escalations_total | counter | city |
| hotline_http_request_duration_seconds | histogram | method, route (the route template), status |
| hotline_tickets_open | gauge | city, status (new, open, waiting, reopened) |
| hotline_tickets_sla_breached | gauge | city |
| hotline_outbox_pending | gauge | channel |

No label carries personal data: cities are keys, routes are templates such as
`/api/v1/tickets/{ticket_id}` (a path that matched no route is `other`), never raw paths.

Tickets and questions are counted when their transaction commits, whichever way they came in
(API, board, web chat, bot): the app watches the commits of its `Database` (`watch_commits`),
so a rolled-back request counts nothing. Every app owns its own `CollectorRegistry`; nothing
is registered in prometheus_client's global registry.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import col, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline.db import Database, utcnow
from hotline.errors import Unauthorized
from hotline.models import (
    City,
    DeliveryStatus,
    KBAsk,
    OutboxDelivery,
    RoutingRule,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from hotline.routing import ORIGIN_CITY, SERVICE_OWNER

log = logging.getLogger(__name__)

# Statuses in which a ticket still waits for the hotline (as the inbox's "SLA verletzt").
OPEN_STATUSES = (
    TicketStatus.new,
    TicketStatus.open,
    TicketStatus.waiting,
    TicketStatus.reopened,
)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"


class Metrics:
    """The metrics of one process (an app, or a standalone worker), in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tickets_created = Counter(
            "hotline_tickets_created",
            "Tickets created, by responsible city and channel.",
            ["city", "channel"],
            registry=r,
        )
        self.tickets_routed = Counter(
            "hotline_tickets_routed",
            "Tickets that reached a city's queue, by city and how (rule, delegation, fallback, "
            "default, transfer).",
            ["city", "via"],
            registry=r,
        )
        self.kb_asks = Counter(
            "hotline_kb_asks",
            "Questions put to the knowledge base, by decision and channel.",
            ["decision", "channel"],
            registry=r,
        )
        self.outbox_deliveries = Counter(
            "hotline_outbox_deliveries",
            "Delivery attempts of outbound messages, by channel and result (sent, retry, failed).",
            ["channel", "result"],
            registry=r,
        )
        self.sla_escalations = Counter(
            "hotline_sla_escalations",
            "Tickets newly escalated because their first response is overdue, by city.",
            ["city"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "hotline_http_request_duration_seconds",
            "HTTP request latency, by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )

    # --- exposition --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def watch_database(self, db: Database, *, cache_seconds: float = 15.0) -> None:
        """Count the tickets and questions committed through `db`, and report the database
        gauges (open tickets, SLA breaches, pending outbox) at scrape time."""
        watch_commits(db, self)
        self.registry.register(DatabaseGauges(db, cache_seconds=cache_seconds))

    # --- counting ----------------------------------------------------------------------------

    def record_delivery(self, channel: str, status: str) -> None:
        """One delivery attempt's outcome: the outbox row's new status → sent | retry | failed."""
        result = {"sent": "sent", "failed": "failed", "pending": "retry"}.get(status)
        if result is not None:
            self.outbox_deliveries.labels(channel=channel, result=result).inc()

    def record_escalations(self, per_city: dict[str, int]) -> None:
        for city, count in per_city.items():
            if count:
                self.sla_escalations.labels(city=city).inc(count)

    def _apply(self, records: Sequence[tuple[str, ...]]) -> None:
        for record in records:
            kind, first, second = record
            if kind == "created":
                self.tickets_created.labels(city=first, channel=second).inc()
            elif kind == "routed":
                self.tickets_routed.labels(city=first, via=second).inc()
            elif kind == "ask":
                self.kb_asks.labels(decision=first, channel=second).inc()


# --- counting what a Database commits ----------------------------------------------------------

_PENDING = "hotline_metrics_pending"
# The apps' metrics per connection pool: a Database's read and write engines share one pool.
_watchers: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Metrics]] = weakref.WeakKeyDictionary()
_install_lock = threading.Lock()
_installed = False


def watch_commits(db: Database, metrics: Metrics) -> None:
    """Count tickets created, routed, transferred and KB questions committed through `db`."""
    global _installed
    with _install_lock:
        if not _installed:
            event.listen(OrmSession, "after_flush", _after_flush)
            event.listen(OrmSession, "after_commit", _after_commit)
            event.listen(OrmSession, "after_rollback", _after_rollback)
            _installed = True
        _watchers.setdefault(db.engine.pool, weakref.WeakSet()).add(metrics)


def _metrics_for(session: OrmSession) -> list[Metrics]:
    bind = session.bind
    if bind is None:
        return []
    pool = getattr(getattr(bind, "engine", bind), "pool", None)
    if pool is None:
        return []
    watchers = _watchers.get(pool)
    return list(watchers) if watchers else []


def _after_flush(session: OrmSession, _context: Any) -> None:
    if not _metrics_for(session):
        return
    events: list[TicketEvent] = []
    records: list[tuple[str, str, str]] = []
    for obj in session.new:
        if isinstance(obj, TicketEvent) and obj.kind in ("created", "routed", "transferred"):
            events.append(obj)
        elif isinstance(obj, KBAsk):
            records.append(("ask", str(obj.decision), str(obj.channel)))
    if events:
        try:
            records.extend(_ticket_records(session, events))
        except Exception as exc:  # metrics must never break a ticket change
            log.warning("metrics: could not label ticket events (%s)", type(exc).__name__)
    if records:
        session.info.setdefault(_PENDING, []).extend(records)


def _ticket_records(session: OrmSession, events: list[TicketEvent]) -> list[tuple[str, str, str]]:
    conn = session.connection()
    routed_city = {
        e.ticket_id: str((e.after or {}).get("city") or "") for e in events if e.kind == "routed"
    }
    records: list[tuple[str, str, str]] = []
    for e in sorted(events, key=lambda e: e.kind != "created"):
        after = e.after or {}
        if e.kind == "created":
            city = routed_city.get(e.ticket_id) or _responsible_city(conn, e.ticket_id)
            records.append(("created", city or OTHER, str(after.get("channel") or OTHER)))
        elif e.kind == "routed":
            via = str(after.get("via") or OTHER)
            if via == "rule" and after.get("rule") and _is_delegation(conn, str(after["rule"])):
                via = "delegation"
            records.append(("routed", str(after.get("city") or OTHER), via))
        else:  # transferred
            records.append(("routed", str(after.get("city") or OTHER), "transfer"))
    return records


def _responsible_city(conn: sa.Connection, ticket_id: int) -> str | None:
    stmt = (
        sa.select(col(City.key))
        .join(Ticket, col(Ticket.responsible_city_id) == col(City.id))
        .where(col(Ticket.id) == ticket_id)
    )
    return conn.execute(stmt).scalar()


def _is_delegation(conn: sa.Connection, rule_key: str) -> bool:
    """A rule by which its owner hands questions to another city (routing/_delegation.py)."""
    stmt = (
        sa.select(col(RoutingRule.route_to), col(City.key))
        .join(City, col(City.id) == col(RoutingRule.owner_city_id))
        .where(col(RoutingRule.rule_key) == rule_key)
    )
    row = conn.execute(stmt).first()
    if row is None:
        return False
    route_to, owner = row
    return route_to not in (ORIGIN_CITY, SERVICE_OWNER) and route_to != owner


def _after_commit(session: OrmSession) -> None:
    records = session.info.pop(_PENDING, None)
    if not records:
        return
    for metrics in _metrics_for(session):
        metrics._apply(records)


def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)


# --- gauges from the database ------------------------------------------------------------------


class DatabaseGauges(Collector):
    """Open tickets, SLA breaches and pending outbox messages, read at scrape time and cached
    so that several replicas scraped every few seconds cost a few grouped queries a window."""

    def __init__(self, db: Database, *, cache_seconds: float = 15.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: list[Metric] | None = None
        self._read_at = 0.0

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not query the database.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._read_at < self.cache_seconds:
                return self._cached
            try:
                families = self._read()
            except Exception as exc:  # a scrape still gets the counters
                log.warning("metrics: database gauges unavailable (%s)", type(exc).__name__)
                return self._cached or []
            self._cached, self._read_at = families, now
            return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "hotline_tickets_open",
                "Tickets waiting for the hotline (new, open, waiting, reopened), by city and "
                "status; the same on every replica.",
                labels=["city", "status"],
            ),
            GaugeMetricFamily(
                "hotline_tickets_sla_breached",
                "Open tickets without a first response whose first-response due time has "
                "passed, by city; the same on every replica.",
                labels=["city"],
            ),
            GaugeMetricFamily(
                "hotline_outbox_pending",
                "Outbound messages not yet delivered, by channel; the same on every replica.",
                labels=["channel"],
            ),
        ]

    def _read(self) -> list[Metric]:
        opened, breached, pending = self._families()
        now = utcnow()
        active = [s.value for s in OPEN_STATUSES]
        with self.db.read() as session:
            cities = dict(session.exec(select(City.id, City.key)).all())
            open_rows = session.exec(
                select(Ticket.responsible_city_id, Ticket.status, sa.func.count())
                .where(col(Ticket.status).in_(active))
                .group_by(col(Ticket.responsible_city_id), col(Ticket.status))
            ).all()
            breached_rows: dict[int | None, int] = dict(
                session.exec(
                    select(Ticket.responsible_city_id, sa.func.count())
                    .where(
                        col(Ticket.status).in_(active),
                        col(Ticket.first_responded_at).is_(None),
                        col(Ticket.first_response_due) < now,
                    )
                    .group_by(col(Ticket.responsible_city_id))
                ).all()
            )
            pending_rows = session.exec(
                select(OutboxDelivery.channel, sa.func.count())
                .where(OutboxDelivery.status == DeliveryStatus.pending)
                .group_by(col(OutboxDelivery.channel))
            ).all()
        for city_id, status, count in open_rows:
            opened.add_metric([cities.get(city_id, OTHER), str(status)], count)
        # Every city appears, with 0 when nothing is late, so alerts see the series.
        for known_id, key in sorted(cities.items(), key=lambda item: item[1]):
            breached.add_metric([key], breached_rows.get(known_id, 0))
        for channel, count in pending_rows:
            pending.add_metric([str(channel)], count)
        return [opened, breached, pending]


# --- request latency ---------------------------------------------------------------------------


class RequestMetrics:
    """ASGI middleware: the latency of every HTTP request by method, route template, status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: RouteTemplates | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            if self._templates is None:
                self._templates = RouteTemplates(scope.get("app"))
            method = scope.get("method", "")
            self.metrics.http_request_duration.labels(
                method=method if method in HTTP_METHODS else OTHER,
                route=self._templates.of(scope),
                status=str(status),
            ).observe(time.perf_counter() - start)


class RouteTemplates:
    """The full path template of the route that handled a request (`/api/v1/tickets/
    {ticket_id}`; a mount's prefix such as `/static`), `other` when no route matched.

    FastAPI keeps included routers nested, so the route in the request scope knows only its
    path inside its router; the app's effective routes give the full template once."""

    def __init__(self, app: Any) -> None:
        self.by_route: dict[int, str] = {}
        self.mounts: list[str] = []
        self._keep: list[Any] = []  # the ids above stay valid while we hold the routes
        for item in getattr(app, "routes", None) or []:
            contexts = getattr(item, "effective_route_contexts", None)
            for context in list(contexts()) if contexts else [item]:
                original = getattr(context, "original_route", None) or context
                path = getattr(context, "path", "") or getattr(original, "path", "")
                if not isinstance(path, str) or not path.startswith("/"):
                    continue
                self._keep.append(original)
                self.by_route.setdefault(id(original), path)
                if type(original).__name__ == "Mount":
                    self.mounts.append(path.rstrip("/") + "/")

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and id(route) in self.by_route:
            return self.by_route[id(route)]
        path = scope.get("path", "")
        for mount in self.mounts:
            if path.startswith(mount):
                return mount.rstrip("/")
        return OTHER


# --- the endpoint ------------------------------------------------------------------------------


def build_router() -> APIRouter:
    """GET /metrics (not in the OpenAPI schema), behind HOTLINE_METRICS_TOKEN when it is set."""
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    def metrics_endpoint(request: Request) -> Response:
        token = request.app.state.settings.metrics_token
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                raise Unauthorized(
                    "The metrics need `Authorization: Bearer <HOTLINE_METRICS_TOKEN>`.",
                    code="missing_token",
                )
            if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
                raise Unauthorized("The metrics token is not valid.", code="invalid_token")
        metrics: Metrics = request.app.state.metrics
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
