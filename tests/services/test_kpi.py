"""The dashboard's key figures, checked number by number on hand-built tickets, events and asks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from hotline.db import Database
from hotline.domain import Audience, Channel
from hotline.errors import Forbidden
from hotline.models import City, KBAsk, StaffUser, Ticket, TicketEvent, TicketStatus
from hotline.services import kpi
from hotline.services.actors import Actor
from hotline.services.auth import staff_actor

pytestmark = pytest.mark.db

S = TicketStatus
MARCH = kpi.Period(date(2025, 3, 1), date(2025, 3, 31))
NOW = datetime(2025, 4, 10, 12, 0, tzinfo=UTC)
COORD = Actor(label="staff:koordination", city_id=None, network=True, staff_id=1)
_refs = itertools.count(1)


def at(day: int, hour: float = 10, month: int = 3) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC) + timedelta(hours=hour)


def ticket(
    s: Session,
    city: int,
    created: datetime,
    status: S,
    *,
    due: datetime | None = None,
    responded: datetime | None = None,
    resolved: datetime | None = None,
    rating: int | None = None,
    merged_into: int | None = None,
    channel: Channel = Channel.web,
) -> Ticket:
    t = Ticket(
        reference=f"HL-2025-{next(_refs):06d}",
        subject="Geheimer Betreff",
        audience=Audience.external,
        channel=channel,
        status=status,
        responsible_city_id=city,
        created_at=created,
        first_response_due=due,
        first_responded_at=responded,
        resolved_at=resolved,
        rating=rating,
        merged_into_id=merged_into,
    )
    s.add(t)
    s.flush()
    return t


def event(s: Session, t: Ticket, kind: str, before: dict[str, str], after: dict[str, str]) -> None:
    s.add(TicketEvent(ticket_id=t.id or 0, kind=kind, actor="test", before=before, after=after))


def ask(
    s: Session,
    city: int | None,
    decision: str,
    *,
    helped: bool | None = None,
    ticket_id: int | None = None,
    created: datetime | None = None,
) -> None:
    s.add(
        KBAsk(
            question="Frage",
            city_id=city,
            decision=decision,
            helped=helped,
            ticket_id=ticket_id,
            created_at=created or at(8),
        )
    )


@dataclass
class Seeded:
    muc: int
    aux: int
    nue: int
    t5_day: int  # index of the local day of the ticket created just before midnight UTC


def seed(db: Database) -> Seeded:
    with db.write() as s:
        ids = {c.key: c.id or 0 for c in s.exec(select(City)).all()}
        muc, aux = ids["muenchen"], ids["augsburg"]
        # München: answered on time (2 h), resolved after 24 h, rated 5 — solved at first contact.
        t1 = ticket(
            s, muc, at(3), S.resolved, due=at(4), responded=at(3, 12), resolved=at(4), rating=5,
            channel=Channel.telegram,
        )  # fmt: skip
        # Answered late (48 h), resolved after 72 h, but reopened on the way: rated 2.
        t2 = ticket(s, muc, at(5), S.closed, due=at(6), responded=at(7), resolved=at(8), rating=2)
        event(s, t2, "status_changed", {"status": "resolved"}, {"status": "reopened"})
        # Answered on time (4 h), still open.
        ticket(s, muc, at(10), S.open, due=at(11), responded=at(10, 14))
        # Never answered, due long ago: a miss.
        ticket(s, muc, at(12), S.new, due=at(13))
        # 30 March 22:30 UTC is 31 March 00:30 in Munich (summer time): the last local day.
        # Due only after NOW: not measured yet.
        ticket(s, muc, at(30, 22.5), S.new, due=at(20, month=4))
        # A merged duplicate: a new ticket, but no contact of its own and never measured.
        ticket(s, muc, at(6), S.closed, due=at(7), merged_into=t1.id)
        # Created before the period: only in the backlog (open, and overdue).
        ticket(s, muc, at(27, month=2), S.open, due=at(28, month=2))
        # Augsburg: transferred from München, answered in 1 h, resolved after 6 h, rated 4.
        t8 = ticket(
            s, aux, at(15), S.resolved, due=at(16), responded=at(15, 11), resolved=at(15, 16),
            rating=4,
        )  # fmt: skip
        event(s, t8, "transferred", {"city": "muenchen"}, {"city": "augsburg", "reason": "x"})
        event(s, t8, "status_changed", {"status": "open"}, {"status": "resolved"})
        # Answered in 1 h, resolved after 24 h, no transfer or reopening: first contact.
        ticket(
            s, aux, at(20, 8), S.resolved, due=at(21, 8), responded=at(20, 9), resolved=at(21, 8)
        )
        # 31 March 23:30 UTC is already 1 April in Germany: outside the period.
        late = ticket(s, aux, at(31, 23.5), S.resolved, due=at(2, month=4), rating=1)
        event(s, late, "transferred", {"city": "muenchen"}, {"city": "augsburg"})

        # Questions to the bot.
        ask(s, muc, "answer", helped=True)  # solved by the bot
        ask(s, muc, "answer")  # answered, no feedback: ended at the bot, not counted as solved
        ask(s, muc, "answer", helped=False)
        ask(s, muc, "suggest")
        ask(s, muc, "handover")  # went on as a ticket (or was given up): no bot contact
        ask(s, muc, "answer", helped=True, ticket_id=t1.id)  # became a ticket anyway
        ask(s, muc, "answer", helped=True, created=at(20, month=2))  # before the period
        ask(s, aux, "answer", helped=True)
        ask(s, None, "handover")  # asked without a city
    return Seeded(muc=muc, aux=aux, nue=ids["nuernberg"], t5_day=30)


def test_every_figure_per_city_and_for_the_network(db: Database, world: object) -> None:
    ids = seed(db)
    with db.read() as s:
        got = kpi.network_figures(s, COORD, MARCH, now=NOW)
    muc, aux, total = got.by_city[ids.muc], got.by_city[ids.aux], got.total
    hour = 3600.0

    assert (muc.open_tickets, muc.new_tickets) == (4, 6)
    assert (muc.first_response_measured, muc.first_response_within) == (4, 2)
    assert muc.first_response_share == 0.5
    assert muc.first_response_median == pytest.approx(4 * hour, abs=1)
    assert muc.resolved == 2
    assert muc.resolution_median == pytest.approx(48 * hour, abs=1)  # mean of 24 h and 72 h
    assert (muc.bot_solved, muc.bot_contacts) == (1, 4)
    assert (muc.tickets_solved_first, muc.ticket_contacts) == (1, 5)
    assert muc.first_contact_share == pytest.approx(2 / 9)
    assert (muc.bot_answers, muc.asks) == (4, 6)
    assert muc.bot_answer_rate == pytest.approx(4 / 6)
    assert (muc.transfers_in, muc.transfers_out) == (0, 1)
    assert muc.ratings == 2 and muc.rating_mean == pytest.approx(3.5)

    assert (aux.open_tickets, aux.new_tickets) == (0, 2)
    assert aux.first_response_share == 1.0
    assert aux.first_response_median == pytest.approx(1 * hour, abs=1)
    assert aux.resolution_median == pytest.approx(15 * hour, abs=1)
    assert aux.first_contact_share == pytest.approx(2 / 3)
    assert aux.bot_answer_rate == 1.0
    assert (aux.transfers_in, aux.transfers_out) == (1, 0)
    assert aux.ratings == 1 and aux.rating_mean == pytest.approx(4.0)

    nue = got.by_city[ids.nue]  # an active city without any figures is still listed
    assert nue.new_tickets == 0 and nue.first_response_share is None and nue.rating_mean is None
    assert [c.key for c in got.cities] == ["augsburg", "muenchen", "nuernberg"]  # by name

    assert (total.open_tickets, total.new_tickets) == (4, 8)
    assert (total.first_response_within, total.first_response_measured) == (4, 6)
    assert total.first_response_median == pytest.approx(2 * hour, abs=1)  # 1, 1, 2, 4, 48 h
    assert total.resolution_median == pytest.approx(24 * hour, abs=1)  # 6, 24, 24, 72 h
    assert total.first_contact_share == pytest.approx(4 / 12)
    assert (total.bot_answers, total.asks) == (5, 8)
    assert total.rating_mean == pytest.approx(11 / 3) and total.ratings == 3

    assert got.daily[ids.muc][2] == 1 and got.daily[ids.muc][ids.t5_day] == 1
    assert sum(got.daily[ids.muc]) == 6
    assert got.daily[ids.aux][14] == 1 and got.daily[ids.aux][19] == 1
    assert sum(got.daily[ids.aux]) == 2 and len(got.daily[ids.aux]) == 31


def test_city_detail_for_own_staff_and_refused_for_others(db: Database, world: object) -> None:
    ids = seed(db)
    with db.read() as s:
        agent = staff_actor(
            s.exec(select(StaffUser).where(StaffUser.username == "agent.muc")).one()
        )
        detail = kpi.city_detail(s, agent, MARCH, ids.muc, now=NOW)
        assert detail.open_by_status == {"new": 2, "open": 2, "waiting": 0, "reopened": 0}
        assert detail.open_overdue == 2
        assert detail.new_by_channel == {"telegram": 1, "web": 5}
        assert detail.new_by_audience == {"external": 6}
        assert detail.ratings_by_score == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
        with pytest.raises(Forbidden):
            kpi.city_detail(s, agent, MARCH, ids.aux, now=NOW)
        with pytest.raises(Forbidden):
            kpi.city_detail(s, agent, MARCH, None, now=NOW)
        network = kpi.city_detail(s, COORD, MARCH, None, now=NOW)
        assert network.ratings_by_score == {1: 0, 2: 1, 3: 0, 4: 1, 5: 1}
        assert sum(network.new_by_channel.values()) == 8


def test_medians_of_odd_and_even_counts_and_an_empty_period(db: Database, world: object) -> None:
    with db.write() as s:
        muc = s.exec(select(City).where(City.key == "muenchen")).one().id or 0
        for hours in (1, 2, 10):
            ticket(s, muc, at(2), S.resolved, resolved=at(2, 10 + hours))
    with db.read() as s:
        odd = kpi.network_figures(s, COORD, MARCH, now=NOW).by_city[muc]
        empty = kpi.network_figures(
            s, COORD, kpi.Period(date(2024, 1, 1), date(2024, 1, 31)), now=NOW
        )
    assert odd.resolution_median == pytest.approx(2 * 3600, abs=1)
    assert odd.first_response_median is None and odd.first_response_share is None
    assert empty.total.new_tickets == 0 and empty.total.resolution_median is None
    assert all(f.first_contact_share is None for f in empty.by_city.values())


def test_period_covers_whole_local_days() -> None:
    winter = kpi.Period(date(2025, 1, 10), date(2025, 1, 10))
    assert winter.start == datetime(2025, 1, 9, 23, tzinfo=UTC)
    assert winter.end == datetime(2025, 1, 10, 23, tzinfo=UTC)
    assert MARCH.days == 31 and MARCH.end == datetime(2025, 3, 31, 22, tzinfo=UTC)
