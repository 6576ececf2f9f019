"""Delegations: rules by which a city hands questions to another city, which must accept.

Definition (docs/routing.md, "Delegation"): a rule is a delegation when its `route_to` is a
city key other than the rule's owner. The receiving city (`delegation_target`) must accept
it: the service layer keeps such a rule `proposed` until an admin of the receiving city sets
it `active` (accepted) or `rejected`.

Not delegations:
- `route_to` = the owner: the owner takes on work itself (e.g. Augsburg answers ePayment
  questions from every city); nobody else's work grows.
- `route_to: origin_city`: every question stays with its own city.
- `route_to: service_owner`: a question about a shared service goes to the city listed as
  the service's owner in the catalogue; that listing is the owner's standing commitment to
  support its service, so no per-rule acceptance is needed. Such a rule never sends a
  question to a city other than the owner of the very service asked about.
"""

from __future__ import annotations

from hotline.routing._models import DYNAMIC_TARGETS, Rule, RuleStatus


def delegation_target(rule: Rule) -> str | None:
    """The city that must accept `rule`, or None when the rule is not a delegation."""
    if rule.route_to in DYNAMIC_TARGETS or rule.route_to == rule.owner:
        return None
    return rule.route_to


def is_delegation(rule: Rule) -> bool:
    """Whether `rule` hands questions to a city other than its owner (see module docstring)."""
    return delegation_target(rule) is not None


def needs_acceptance(new: Rule, old: Rule | None = None) -> bool:
    """Whether saving `new` (replacing `old`, if any) needs the receiving city's acceptance.

    True for a delegation that is new, that was not active before, or whose meaning changed
    (owner, target, conditions, priority, SLA); only a changed description, version or status
    keeps an accepted delegation accepted.
    """
    if not is_delegation(new):
        return False
    if old is None or old.status is not RuleStatus.active:
        return True
    meaning = {"owner", "route_to", "when", "priority", "sla_hours"}
    return new.model_dump(include=meaning) != old.model_dump(include=meaning)
