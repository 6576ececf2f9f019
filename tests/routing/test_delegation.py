"""Which rules are delegations, who must accept them, and when a change needs new acceptance."""

from __future__ import annotations

import pytest

from hotline.routing import Rule, delegation_target, is_delegation, needs_acceptance


def rule(owner: str, route_to: str, **kw) -> Rule:
    return Rule(id="r", owner=owner, route_to=route_to, **kw)


@pytest.mark.parametrize(
    ("owner", "route_to", "when", "target"),
    [
        # A city hands its own questions to another city: the receiver must accept.
        ("augsburg", "nuernberg", {"origin_city": ["augsburg"]}, "nuernberg"),
        # Owned by X, routing to Y, whatever the origin condition: Y must accept.
        ("muenchen", "augsburg", {"service": ["epayment"]}, "augsburg"),
        # Taking on work oneself, even other cities' questions: no one else's work grows.
        ("augsburg", "augsburg", {"service": ["epayment"]}, None),
        # Every question stays with its own city.
        ("muenchen", "origin_city", {"origin_city": ["muenchen"]}, None),
        # The catalogue's owner entry is the owner's standing commitment for its service.
        ("muenchen", "service_owner", {"origin_city": ["muenchen"]}, None),
    ],
)
def test_delegation_definition(owner, route_to, when, target):
    r = rule(owner, route_to, when=when)
    assert delegation_target(r) == target
    assert is_delegation(r) is (target is not None)


def test_needs_acceptance():
    accepted = rule("augsburg", "nuernberg", status="active", when={"origin_city": "augsburg"})
    assert needs_acceptance(accepted) is True  # a new delegation
    assert needs_acceptance(accepted, accepted.model_copy(update={"status": "proposed"})) is True
    reworded = accepted.model_copy(update={"description": "neu", "version": 2})
    assert needs_acceptance(reworded, accepted) is False
    for change in (
        {"route_to": "muenchen"},
        {"priority": 1},
        {"sla_hours": 4},
        {"when": accepted.when.model_copy(update={"service": ("epayment",)})},
    ):
        assert needs_acceptance(accepted.model_copy(update=change), accepted) is True
    assert needs_acceptance(rule("augsburg", "augsburg")) is False
