"""The ticket service directly: the transition table, audit events and references."""

from __future__ import annotations

import itertools
import re

import pytest
from sqlmodel import col, select

from hotline.db import Database
from hotline.errors import InvalidTransition
from hotline.models import MessageKind, TicketEvent, TicketStatus
from hotline.schemas import TicketCreate
from hotline.services import tickets as svc
from hotline.services.actors import Actor
from hotline.services.rules import RouterCache

SLA = svc.SLAPolicy(24, 120)
ACTOR = Actor(label="staff:test", city_id=None, network=True)

# Ways to put a fresh ticket into each status through the service.
PATHS: dict[TicketStatus, list[TicketStatus]] = {
    TicketStatus.new: [],
    TicketStatus.open: [TicketStatus.open],
    TicketStatus.waiting: [TicketStatus.waiting],
    TicketStatus.resolved: [TicketStatus.resolved],
    TicketStatus.closed: [TicketStatus.closed],
    TicketStatus.reopened: [TicketStatus.resolved, TicketStatus.reopened],
}


def _ticket_in(db: Database, status: TicketStatus) -> int:
    with db.write() as s:
        t = svc.create_ticket(
            s,
            ACTOR,
            TicketCreate(subject="x", body="y", origin_city="muenchen"),
            default_city="muenchen",
            sla=SLA,
            router_cache=RouterCache(),
        )
        for step in PATHS[status]:
            svc.change_status(s, ACTOR, t.id or 0, to=step, version=t.version)
        assert t.status == status
        return t.id or 0


@pytest.mark.usefixtures("world")
def test_every_transition_follows_the_table(db: Database) -> None:
    for source, target in itertools.product(TicketStatus, TicketStatus):
        tid = _ticket_in(db, source)
        with db.write() as s:
            version = svc.get_ticket(s, ACTOR, tid).version
            if target in svc.TRANSITIONS[source]:
                ticket = svc.change_status(s, ACTOR, tid, to=target, version=version)
                assert ticket.status == target and ticket.version == version + 1
                last = s.exec(
                    select(TicketEvent)
                    .where(TicketEvent.ticket_id == tid)
                    .order_by(col(TicketEvent.id).desc())
                ).first()
                assert last is not None and last.kind == "status_changed"
                assert last.before == {"status": source.value} and last.after == {
                    "status": target.value
                }
                assert last.actor == "staff:test"
            else:
                with pytest.raises(InvalidTransition):
                    svc.change_status(s, ACTOR, tid, to=target, version=version)


def test_closed_is_final_and_new_can_be_left(db: Database) -> None:
    assert svc.TRANSITIONS[TicketStatus.closed] == frozenset()
    assert all(svc.TRANSITIONS[s] for s in TicketStatus if s != TicketStatus.closed)


@pytest.mark.usefixtures("world")
def test_references_count_up_per_year(db: Database) -> None:
    with db.write() as s:
        refs = [svc.next_reference(s, 2026) for _ in range(3)] + [svc.next_reference(s, 2027)]
    assert refs == ["HL-2026-000001", "HL-2026-000002", "HL-2026-000003", "HL-2027-000001"]
    assert all(re.fullmatch(r"HL-\d{4}-\d{6}", r) for r in refs)


@pytest.mark.usefixtures("world")
def test_failed_change_rolls_back_everything(db: Database) -> None:
    tid = _ticket_in(db, TicketStatus.new)
    with pytest.raises(InvalidTransition), db.write() as s:
        svc.add_message(s, ACTOR, tid, kind=MessageKind.note, body="erst die Notiz")
        svc.change_status(s, ACTOR, tid, to=TicketStatus.reopened, version=2)
    with db.read() as s:
        assert [m.kind for m in svc.list_messages(s, ACTOR, tid)] == ["citizen"]
        assert svc.get_ticket(s, ACTOR, tid).version == 1
