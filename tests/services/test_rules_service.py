"""Rule changes by staff roles: agents read, city admins change their own city, coordinators all."""

from __future__ import annotations

import pytest
from sqlmodel import select

from hotline.db import Database
from hotline.errors import Forbidden
from hotline.models import Role, StaffUser
from hotline.services import rules as svc
from hotline.services.auth import staff_actor
from tests.conftest import World

RULE = {
    "id": "muc-konto",
    "owner": "muenchen",
    "when": {"topic": ["konto"]},
    "route_to": "muenchen",
}
DELEGATION = {
    "id": "muc-an-aux",
    "owner": "muenchen",
    "when": {"origin_city": ["muenchen"]},
    "route_to": "augsburg",
}


def _actor(db: Database, username: str, role: Role | None = None):  # type: ignore[no-untyped-def]
    with db.write() as s:
        user = s.exec(select(StaffUser).where(StaffUser.username == username)).one()
        if role is not None:
            user.role = role
            s.add(user)
    return staff_actor(user)


def test_agent_may_not_change_rules(db: Database, world: World) -> None:
    agent = _actor(db, "agent.muc")
    with pytest.raises(Forbidden), db.write() as s:
        svc.save_rule(s, agent, RULE, default_city="muenchen")


def test_city_admin_changes_own_city_only(db: Database, world: World) -> None:
    admin = _actor(db, "agent.muc", Role.city_admin)
    with db.write() as s:
        assert svc.save_rule(s, admin, RULE, default_city="muenchen").version == 1
    with pytest.raises(Forbidden), db.write() as s:
        svc.save_rule(
            s,
            admin,
            {**RULE, "id": "aux-x", "owner": "augsburg", "route_to": "augsburg"},
            default_city="muenchen",
        )


def test_coordinator_changes_any_rule_and_may_accept_directly(db: Database, world: World) -> None:
    coordinator = _actor(db, "koordination")
    with db.write() as s:
        row = svc.save_rule(
            s, coordinator, {**DELEGATION, "status": "active"}, default_city="muenchen"
        )
    assert row.status == "active"  # a coordinator may accept on the receiving city's behalf


def test_city_admin_delegation_is_proposed_and_receiving_admin_accepts(
    db: Database, world: World
) -> None:
    muc_admin = _actor(db, "agent.muc", Role.city_admin)
    aux_agent = _actor(db, "agent.aux")
    with db.write() as s:
        assert (
            svc.save_rule(
                s, muc_admin, {**DELEGATION, "status": "active"}, default_city="muenchen"
            ).status
            == "proposed"
        )
    with pytest.raises(Forbidden), db.write() as s:
        svc.decide_delegation(s, aux_agent, "muc-an-aux", accept=True, default_city="muenchen")
    aux_admin = _actor(db, "agent.aux", Role.city_admin)
    with db.write() as s:
        assert (
            svc.decide_delegation(
                s, aux_admin, "muc-an-aux", accept=True, default_city="muenchen"
            ).status
            == "active"
        )
