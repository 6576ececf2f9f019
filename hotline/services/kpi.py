"""Key figures of the hotline per city (the dashboard): computed in SQL, never per ticket.

Every ticket figure is about the tickets *created* in a period (a cohort; `Ticket.created_at`
is indexed, so a period reads only its own tickets), grouped by the responsible city in the
database. The only exception is the current backlog (open tickets), which is a snapshot.
Bot figures are about the questions put to the bot in the period (`KBAsk.created_at`,
indexed), grouped by the city the question was asked for (`KBAsk.city_id`).

The figures are counts, shares, medians and means per city: no personal data and no ticket
contents, so every staff member may see them for every city; the breakdowns of one city
(`city_detail`) follow the usual city isolation.

First-contact resolution (FCR) of a city over a period =
    (bot_solved + tickets_solved_first) / (bot_contacts + ticket_contacts), where
  bot_solved            asks of the period for the city with decision "answer", no ticket_id
                        and helped = true (the asker confirmed the answer);
  bot_contacts          asks of the period for the city that ended at the bot: no ticket_id
                        and decision "answer" or "suggest" (a "handover" goes on as a ticket,
                        which is counted there);
  tickets_solved_first  tickets of the period, not merged duplicates, now resolved or closed,
                        with no TicketEvent "transferred" and no "status_changed" to
                        "reopened";
  ticket_contacts       tickets of the period that are not merged duplicates.
First response within target: answered tickets with first_responded_at <= first_response_due,
out of the answered ones plus the unanswered ones whose due time passed before they were
resolved/closed (or before now); merged duplicates and tickets still inside their due time
are not measured.

Medians: PostgreSQL computes them exactly with `percentile_cont(0.5) WITHIN GROUP (ORDER BY
…)`. SQLite has no percentile function; there the database counts the durations per whole
minute and city (`GROUP BY city, round(seconds / 60)`) and Python finds the middle of those
counts — a median to the minute, from one grouped query whose size is bounded by the number
of distinct minutes, not by the number of tickets (the network's median comes from the same
counts). A window query (`row_number() OVER (PARTITION BY city ORDER BY duration)`) would be
exact too, but took 12–15 s per median (city + network) over two years of 1M tickets on
SQLite here, against ~3 s for this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hotline.db import UTCDateTime, utcnow
from hotline.errors import Forbidden, NotFound
from hotline.models import City, KBAsk, Ticket, TicketEvent, TicketStatus
from hotline.services.actors import Actor

# Service targets of the 115 (the German public-authority number) the hotline measures itself
# against: 75 % of the contacts answered within the target time, 65 % solved at first contact.
TARGET_FIRST_RESPONSE = 0.75
TARGET_FIRST_CONTACT = 0.65

MAX_PERIOD_DAYS = 731  # two years (one of them may be a leap year)
TIMEZONE = ZoneInfo("Europe/Berlin")

S = TicketStatus
OPEN_STATUSES = (S.new, S.open, S.waiting, S.reopened)
DONE_STATUSES = (S.resolved, S.closed)
# The events that mean a ticket was not solved at first contact (see services/tickets.py:
# `transfer_ticket` writes "transferred", a reopening is a "status_changed" to "reopened").
TRANSFERRED = "transferred"
STATUS_CHANGED = "status_changed"


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days `first` … `last` (both included), in the hotline's time zone."""

    first: date
    last: date
    tz: ZoneInfo = TIMEZONE

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time(), self.tz).astimezone(UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def each_day(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(slots=True)
class CityFigures:
    """The key figures of one city (or, with `city_id` None, of the whole network)."""

    city_id: int | None
    open_tickets: int = 0
    new_tickets: int = 0
    # First response: tickets measured (answered, or unanswered past their due time) and
    # those answered within the due time.
    first_response_measured: int = 0
    first_response_within: int = 0
    first_response_median: float | None = None  # seconds
    resolved: int = 0
    resolution_median: float | None = None  # seconds
    # First-contact resolution: the contacts (bot questions that ended at the bot + tickets)
    # and those solved at first contact (helpful bot answers + tickets solved in one go).
    bot_contacts: int = 0
    bot_solved: int = 0
    ticket_contacts: int = 0
    tickets_solved_first: int = 0
    asks: int = 0
    bot_answers: int = 0
    transfers_in: int = 0
    transfers_out: int = 0
    ratings: int = 0
    rating_mean: float | None = None

    @property
    def first_response_share(self) -> float | None:
        return _share(self.first_response_within, self.first_response_measured)

    @property
    def contacts(self) -> int:
        return self.bot_contacts + self.ticket_contacts

    @property
    def solved_first(self) -> int:
        return self.bot_solved + self.tickets_solved_first

    @property
    def first_contact_share(self) -> float | None:
        return _share(self.solved_first, self.contacts)

    @property
    def bot_answer_rate(self) -> float | None:
        return _share(self.bot_answers, self.asks)


@dataclass(slots=True)
class NetworkFigures:
    """The figures of every city side by side, the network's total and new tickets per day."""

    period: Period
    cities: list[City]
    by_city: dict[int, CityFigures]
    total: CityFigures
    daily: dict[int, list[int]] = field(default_factory=dict)  # city id → count per day


@dataclass(slots=True)
class CityDetail:
    """Breakdowns of one city (or the network, `city` None) for its own staff."""

    city: City | None
    open_by_status: dict[str, int]
    open_overdue: int
    new_by_channel: dict[str, int]
    new_by_audience: dict[str, int]
    ratings_by_score: dict[int, int]


# --- SQL building blocks ---------------------------------------------------------------------


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    """`later - earlier` in seconds, as an SQL expression."""
    if dialect == "postgresql":
        return sa.extract("epoch", later - earlier)
    # SQLite keeps UTC datetimes as ISO text; julianday() reads it (fractional days).
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _count_if(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _in_period(column: Any, period: Period) -> Any:
    return sa.and_(column >= period.start, column < period.end)


def _at(value: datetime) -> Any:
    return sa.literal(value, UTCDateTime)


def _not_first_contact() -> Any:
    """A ticket that was transferred or reopened (an event says so)."""
    event = TicketEvent
    reopened = sa.and_(
        col(event.kind) == STATUS_CHANGED,
        event.after["status"].as_string() == S.reopened.value,  # type: ignore[index]
    )
    return (
        sa.exists()
        .where(col(event.ticket_id) == col(Ticket.id))
        .where(sa.or_(col(event.kind) == TRANSFERRED, reopened))
    )


def _first_response_measured(now: datetime) -> Any:
    """Answered tickets, and unanswered ones whose due time passed before they were done."""
    t = Ticket
    return sa.and_(
        col(t.merged_into_id).is_(None),
        col(t.first_response_due).is_not(None),
        sa.or_(
            col(t.first_responded_at).is_not(None),
            col(t.first_response_due)
            < sa.func.coalesce(col(t.resolved_at), col(t.closed_at), _at(now)),
        ),
    )


def _medians(
    session: Session, value: Any, condition: Any, period: Period
) -> dict[int | None, float]:
    """The median of `value` over the period's tickets matching `condition`, per responsible
    city and (key None) for the network. See the module docstring for the two methods."""
    base = sa.and_(_in_period(col(Ticket.created_at), period), condition)
    city = col(Ticket.responsible_city_id)
    result: dict[int | None, float] = {}
    if session.get_bind().dialect.name == "postgresql":
        median = sa.func.percentile_cont(0.5).within_group(value)
        for city_id, m in session.execute(sa.select(city, median).where(base).group_by(city)).all():
            result[city_id] = float(m)
        total = session.execute(sa.select(median).where(base)).scalar()
        if total is not None:
            result[None] = float(total)
        return result
    # SQLite: count the durations per whole minute and city (one pass, no sort of the
    # durations themselves) and find the middle in those counts here.
    minute = sa.func.round(value / 60.0)
    buckets: dict[int | None, dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for city_id, m, n in session.execute(
        sa.select(city, minute, sa.func.count()).where(base).group_by(city, minute)
    ).all():
        buckets[city_id][float(m)] += n
        buckets[None][float(m)] += n
    for key, counts in buckets.items():
        result[key] = _middle(counts) * 60.0
    return result


def _middle(counts: dict[float, int]) -> float:
    """The median of values given as {value: how often}: the middle value, or the mean of the
    two middle values for an even count (as percentile_cont does)."""
    total = sum(counts.values())
    lower, upper = (total + 1) // 2, (total + 2) // 2  # 1-based positions of the middle
    seen = 0
    found: list[float] = []
    for value in sorted(counts):
        seen += counts[value]
        while len(found) < 2 and seen >= (lower if not found else upper):
            found.append(value)
    return (found[0] + found[1]) / 2


# --- the figures -----------------------------------------------------------------------------


def network_figures(
    session: Session, actor: Actor, period: Period, *, now: datetime | None = None
) -> NetworkFigures:
    """Every city's key figures side by side (aggregates only: open to all staff)."""
    if actor.staff_id is None and not actor.network:
        raise Forbidden("Die Kennzahlen sind nur für Mitarbeitende.", code="staff_only")
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    t = Ticket
    figures: dict[int | None, CityFigures] = defaultdict(lambda: CityFigures(city_id=None))

    def of(city_id: int | None) -> CityFigures:
        found = figures[city_id]
        found.city_id = city_id
        return found

    city = col(t.responsible_city_id)
    # The backlog now (a snapshot; the city-and-status index answers it).
    for city_id, n in session.execute(
        sa.select(city, sa.func.count())
        .where(col(t.status).in_([s.value for s in OPEN_STATUSES]))
        .group_by(city)
    ).all():
        of(city_id).open_tickets = n

    # The period's tickets, one pass with conditional counts.
    measured = _first_response_measured(now)
    within = sa.and_(measured, col(t.first_responded_at) <= col(t.first_response_due))
    countable = col(t.merged_into_id).is_(None)
    solved_first = sa.and_(
        countable,
        col(t.status).in_([s.value for s in DONE_STATUSES]),
        ~_not_first_contact(),
    )
    rows = session.execute(
        sa.select(
            city,
            sa.func.count(),
            _count_if(measured),
            _count_if(within),
            _count_if(col(t.resolved_at).is_not(None)),
            _count_if(countable),
            _count_if(solved_first),
            sa.func.count(col(t.rating)),
            sa.func.avg(col(t.rating)),
        )
        .where(_in_period(col(t.created_at), period))
        .group_by(city)
    ).all()
    for city_id, new, meas, inside, resolved, contacts, first, ratings, mean in rows:
        f = of(city_id)
        f.new_tickets, f.first_response_measured, f.first_response_within = new, meas, inside
        f.resolved, f.ticket_contacts, f.tickets_solved_first = resolved, contacts, first
        f.ratings, f.rating_mean = ratings, float(mean) if mean is not None else None

    # Medians of the first response and of the resolution time.
    responded = sa.and_(col(t.merged_into_id).is_(None), col(t.first_responded_at).is_not(None))
    for key, m in _medians(
        session, _seconds(dialect, col(t.first_responded_at), col(t.created_at)), responded, period
    ).items():
        of(key).first_response_median = m
    for key, m in _medians(
        session,
        _seconds(dialect, col(t.resolved_at), col(t.created_at)),
        col(t.resolved_at).is_not(None),
        period,
    ).items():
        of(key).resolution_median = m

    # Questions to the bot, by the city they were asked for.
    a = KBAsk
    answered = col(a.decision) == "answer"
    no_ticket = col(a.ticket_id).is_(None)
    for city_id, asks, answers, helped, ended in session.execute(
        sa.select(
            col(a.city_id),
            sa.func.count(),
            _count_if(answered),
            _count_if(sa.and_(answered, no_ticket, col(a.helped).is_(True))),
            _count_if(sa.and_(no_ticket, col(a.decision) != "handover")),
        )
        .where(_in_period(col(a.created_at), period))
        .group_by(col(a.city_id))
    ).all():
        f = of(city_id)
        f.asks, f.bot_answers, f.bot_solved, f.bot_contacts = asks, answers, helped, ended

    # Transfers of the period's tickets, from and to (city keys in the event).
    e = TicketEvent
    source = e.before["city"].as_string()  # type: ignore[index]
    target = e.after["city"].as_string()  # type: ignore[index]
    keys = {c.key: c.id for c in session.exec(select(City)).all()}
    moves = session.execute(
        sa.select(source, target, sa.func.count())
        .select_from(e)
        .join(t, col(t.id) == col(e.ticket_id))
        .where(col(e.kind) == TRANSFERRED, _in_period(col(t.created_at), period))
        .group_by(source, target)
    ).all()
    for src, dst, n in moves:
        if src in keys:
            of(keys[src]).transfers_out += n
        if dst in keys:
            of(keys[dst]).transfers_in += n

    total = _total(figures.values())
    total.first_response_median = figures[None].first_response_median if None in figures else None
    total.resolution_median = figures[None].resolution_median if None in figures else None
    by_city = {k: v for k, v in figures.items() if k is not None}
    cities = [
        c
        for c in session.exec(select(City).order_by(col(City.name))).all()
        if c.id is not None and (c.active or c.id in by_city)
    ]
    for c in cities:
        by_city.setdefault(c.id or 0, CityFigures(city_id=c.id))
    return NetworkFigures(
        period=period,
        cities=cities,
        by_city=by_city,
        total=total,
        daily=new_tickets_per_day(session, period, [c.id or 0 for c in cities]),
    )


def _total(parts: Iterable[CityFigures]) -> CityFigures:
    """Sum of the counts (the asks without a city included); medians are set by the caller."""
    total = CityFigures(city_id=None)
    rating_sum = 0.0
    for f in parts:
        for name in (
            "open_tickets",
            "new_tickets",
            "first_response_measured",
            "first_response_within",
            "resolved",
            "bot_contacts",
            "bot_solved",
            "ticket_contacts",
            "tickets_solved_first",
            "asks",
            "bot_answers",
            "transfers_in",
            "transfers_out",
            "ratings",
        ):
            setattr(total, name, getattr(total, name) + getattr(f, name))
        if f.rating_mean is not None:
            rating_sum += f.rating_mean * f.ratings
    total.rating_mean = rating_sum / total.ratings if total.ratings else None
    return total


def new_tickets_per_day(
    session: Session, period: Period, city_ids: list[int]
) -> dict[int, list[int]]:
    """New tickets per local day and city, one list entry per day of the period."""
    t = Ticket
    city = col(t.responsible_city_id)
    index = {d: i for i, d in enumerate(period.each_day())}
    series = {c: [0] * period.days for c in city_ids}
    where = _in_period(col(t.created_at), period)
    if session.get_bind().dialect.name == "postgresql":
        day = sa.func.date(sa.func.timezone(period.tz.key, col(t.created_at)))
        rows = session.execute(
            sa.select(city, day, sa.func.count()).where(where).group_by(city, day)
        )
        for city_id, d, n in rows.all():
            if city_id in series and d in index:
                series[city_id][index[d]] += n
        return series
    # SQLite has no time zones: count per UTC hour (local offsets are whole hours) and put
    # each hour on its local day here — at most 24 rows a day and city.
    # The column holds "YYYY-MM-DD HH:MM:SS.ffffff" (UTCDateTime): the first 13 characters
    # are the hour, cheaper to cut than strftime() is to compute.
    hour = sa.func.substr(col(t.created_at), 1, 13)
    rows = session.execute(sa.select(city, hour, sa.func.count()).where(where).group_by(city, hour))
    for city_id, h, n in rows.all():
        local = datetime.strptime(h, "%Y-%m-%d %H").replace(tzinfo=UTC).astimezone(period.tz)
        if city_id in series and local.date() in index:
            series[city_id][index[local.date()]] += n
    return series


def city_detail(
    session: Session,
    actor: Actor,
    period: Period,
    city_id: int | None,
    *,
    now: datetime | None = None,
) -> CityDetail:
    """Breakdowns of one city's tickets (its own staff and the coordination), or of the whole
    network (`city_id` None: coordination only)."""
    now = now or utcnow()
    city: City | None = None
    if city_id is None:
        if not actor.network:
            raise Forbidden(
                "Die Detailansicht des ganzen Netzwerks ist der Koordination vorbehalten.",
                code="network_only",
            )
    else:
        city = session.get(City, city_id)
        if city is None:
            raise NotFound("Diese Stadt gibt es nicht.", code="city_not_found")
        if not actor.can_see_city(city_id):
            raise Forbidden(
                "Die Details anderer Städte sind nur deren Mitarbeitenden zugänglich.",
                code="city_forbidden",
            )
    t = Ticket

    def mine(stmt: Any) -> Any:
        return stmt if city_id is None else stmt.where(col(t.responsible_city_id) == city_id)

    open_now = col(t.status).in_([s.value for s in OPEN_STATUSES])
    by_status = {
        str(s): n
        for s, n in session.execute(
            mine(sa.select(col(t.status), sa.func.count()).where(open_now).group_by(col(t.status)))
        ).all()
    }
    overdue = session.execute(
        mine(
            sa.select(sa.func.count()).where(
                open_now,
                col(t.first_responded_at).is_(None),
                col(t.first_response_due) < _at(now),
            )
        )
    ).scalar_one()
    # One pass over the period's tickets; at most channels × audiences × 6 rows come back.
    keys = (col(t.channel), col(t.audience), col(t.rating))
    channels: dict[str, int] = defaultdict(int)
    audiences: dict[str, int] = defaultdict(int)
    scores: dict[int, int] = defaultdict(int)
    stmt = sa.select(*keys, sa.func.count()).where(_in_period(col(t.created_at), period))
    for channel, audience, rating, n in session.execute(mine(stmt.group_by(*keys))).all():
        channels[str(channel)] += n
        audiences[str(audience)] += n
        if rating is not None:
            scores[int(rating)] += n
    return CityDetail(
        city=city,
        open_by_status={s.value: by_status.get(s.value, 0) for s in OPEN_STATUSES},
        open_overdue=overdue,
        new_by_channel=dict(sorted(channels.items())),
        new_by_audience=dict(sorted(audiences.items())),
        ratings_by_score={s: scores.get(s, 0) for s in range(1, 6)},
    )
