"""The router's semantics: order, conditions, targets, skips, fallback, trace and the index."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from hotline.routing import (
    Audience,
    CityInfo,
    Conditions,
    Facts,
    Router,
    RoutingDecision,
    Rule,
    RuleSet,
    RuleStatus,
    ServiceInfo,
    TraceStep,
    Via,
)
from tests.routing.builders import make


def decide(
    rules: str, *, fallback: str = "origin_city", full_trace: bool = False, **facts: Any
) -> RoutingDecision:
    return Router(make(rules, fallback=fallback)).decide(Facts(**facts), full_trace=full_trace)


def rule_steps(decision: RoutingDecision) -> list[TraceStep]:
    return [step for step in decision.trace if "rule" in step]


# --- order --------------------------------------------------------------------------------


def test_lower_priority_runs_first_even_when_later_in_file():
    d = decide(
        """
        - {id: late, owner: muenchen, priority: 100, when: {service: epayment}, route_to: muenchen}
        - {id: early, owner: nuernberg, priority: 10, when: {service: epayment},
           route_to: nuernberg}
        """,
        service="epayment",
    )
    assert (d.city, d.rule, d.via) == ("nuernberg", "early", Via.RULE)
    assert [s["rule"] for s in rule_steps(d)] == ["early"]


def test_equal_priority_first_in_file_wins():
    d = decide(
        """
        - {id: first, owner: muenchen, when: {service: epayment}, route_to: muenchen}
        - {id: second, owner: nuernberg, when: {service: epayment}, route_to: nuernberg}
        """,
        service="epayment",
    )
    assert d.rule == "first"


def test_first_matching_rule_decides_and_rules_after_it_are_not_tried():
    d = decide(
        """
        - {id: a, owner: muenchen, priority: 1, when: {service: bayernid}, route_to: muenchen}
        - {id: b, owner: augsburg, priority: 2, route_to: augsburg}
        - {id: c, owner: nuernberg, priority: 3, route_to: nuernberg}
        """,
        service="epayment",
        full_trace=True,
    )
    assert d.rule == "b"
    assert [(s["rule"], s["result"]) for s in d.trace] == [("a", "no_match"), ("b", "matched")]


# --- conditions ---------------------------------------------------------------------------


RULES_ALL_CONDITIONS = """
- id: all
  owner: augsburg
  when:
    origin_city: [nuernberg]
    service: [epayment]
    topic: [zahlung]
    audience: external
    channel: [telegram, web]
    text_any: [überweisung, paypal]
  route_to: augsburg
"""
MATCHING: dict[str, Any] = dict(
    origin_city="nuernberg",
    service="epayment",
    topic="zahlung",
    audience="external",
    channel="web",
    text="Wie zahle ich mit PayPal?",
)


def test_all_conditions_hold_then_the_rule_decides():
    assert decide(RULES_ALL_CONDITIONS, **MATCHING).rule == "all"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("origin_city", "muenchen"),
        ("service", "bayernid"),
        ("topic", "konto"),
        ("audience", "internal"),
        ("channel", "api"),
        ("text", "Wo ist mein Antrag?"),
    ],
)
def test_each_condition_must_hold_and_the_trace_names_it(field, value):
    d = decide(RULES_ALL_CONDITIONS, full_trace=True, **{**MATCHING, field: value})
    assert d.via is Via.FALLBACK
    step = d.trace[0]
    assert step["rule"] == "all"
    assert step["result"] == "no_match"
    assert step["condition"] == ("text_any" if field == "text" else field)
    assert step["detail"] and step["text"]


@pytest.mark.parametrize("field", ["origin_city", "service", "audience", "channel", "text"])
def test_a_condition_on_an_unknown_fact_does_not_hold(field):
    facts = {k: v for k, v in MATCHING.items() if k != field}
    d = decide(RULES_ALL_CONDITIONS, full_trace=True, **facts)
    assert d.trace[0]["result"] == "no_match"
    assert d.trace[0]["condition"] == ("text_any" if field == "text" else field)


def test_a_topic_condition_does_not_hold_when_neither_topic_nor_service_is_known():
    d = decide(
        "- {id: pay, owner: augsburg, when: {topic: zahlung}, route_to: augsburg}", full_trace=True
    )
    assert (d.trace[0]["condition"], d.trace[0]["detail"]) == ("topic", "topic unknown")


def test_omitted_conditions_hold_for_any_value_including_unknown():
    d = decide("- {id: catch-all, owner: augsburg, route_to: augsburg}")
    assert (d.city, d.rule) == ("augsburg", "catch-all")


def test_trace_text_is_german_and_names_the_fact():
    d = decide(
        "- {id: x, owner: muenchen, when: {service: bayernid}, route_to: muenchen}",
        service="epayment",
        full_trace=True,
    )
    assert d.trace[0]["text"] == "Dienst ePayment passt nicht zu [bayernid]"


def test_topic_is_taken_from_the_service_when_the_facts_lack_it():
    rules = "- {id: pay, owner: augsburg, when: {topic: zahlung}, route_to: augsburg}"
    assert decide(rules, service="epayment").rule == "pay"
    # An explicit topic wins over the service's.
    assert decide(rules, service="epayment", topic="konto").rule is None


# --- services by key or LeiKa key -----------------------------------------------------------


@pytest.mark.parametrize("in_rule", ["epayment", "'99000000000001'", "99000000000001"])
@pytest.mark.parametrize("in_facts", ["epayment", "99000000000001"])
def test_a_service_is_named_by_key_or_leika_key_in_rules_and_facts(in_rule, in_facts):
    d = decide(
        f"- {{id: pay, owner: augsburg, when: {{service: {in_rule}}}, route_to: augsburg}}",
        service=in_facts,
    )
    assert d.rule == "pay"


def test_unknown_service_in_facts_matches_no_service_rule():
    d = decide(
        "- {id: pay, owner: augsburg, when: {service: epayment}, route_to: augsburg}",
        service="gibtsnicht",
        origin_city="nuernberg",
    )
    assert (d.rule, d.city) == (None, "nuernberg")


# --- targets ------------------------------------------------------------------------------


def test_route_to_origin_city_goes_to_the_origin():
    d = decide("- {id: home, owner: muenchen, route_to: origin_city}", origin_city="augsburg")
    assert (d.city, d.rule) == ("augsburg", "home")


def test_route_to_origin_city_without_origin_does_not_match_and_evaluation_goes_on():
    d = decide(
        """
        - {id: home, owner: muenchen, priority: 1, route_to: origin_city}
        - {id: next, owner: nuernberg, priority: 2, route_to: nuernberg}
        """
    )
    assert (d.city, d.rule) == ("nuernberg", "next")
    assert d.trace[0]["rule"] == "home"
    assert d.trace[0]["result"] == "no_match"
    assert d.trace[0]["condition"] == "route_to"


def test_route_to_origin_city_outside_the_network_does_not_match():
    d = decide("- {id: home, owner: muenchen, route_to: origin_city}", origin_city="regensburg")
    assert d.rule is None
    assert d.trace[0]["condition"] == "route_to"


def test_route_to_service_owner_goes_to_the_city_that_built_it():
    d = decide("- {id: tech, owner: muenchen, route_to: service_owner}", service="kfz-online")
    assert (d.city, d.rule) == ("augsburg", "tech")


@pytest.mark.parametrize("service", ["bayernid", None, "gibtsnicht"])
def test_route_to_service_owner_without_owner_does_not_match_and_evaluation_goes_on(service):
    facts = {"service": service} if service else {}
    d = decide(
        """
        - {id: tech, owner: muenchen, priority: 1, route_to: service_owner}
        - {id: next, owner: nuernberg, priority: 2, route_to: nuernberg}
        """,
        **facts,
    )
    assert d.rule == "next"
    assert (d.trace[0]["result"], d.trace[0]["condition"]) == ("no_match", "route_to")


# --- skips --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["proposed", "rejected"])
def test_proposed_and_rejected_rules_are_skipped_with_reason(status):
    d = decide(
        f"""
        - {{id: deleg, owner: augsburg, status: {status}, route_to: nuernberg}}
        - {{id: next, owner: muenchen, route_to: muenchen}}
        """
    )
    assert d.rule == "next"
    assert d.trace[0] == {**d.trace[0], "rule": "deleg", "result": "skipped", "reason": status}
    assert d.trace[0]["text"]


def test_rule_with_inactive_target_is_skipped_with_reason():
    d = decide(
        """
        - {id: to-fuerth, owner: fuerth, route_to: fuerth}
        - {id: next, owner: muenchen, route_to: muenchen}
        """
    )
    assert d.rule == "next"
    assert d.trace[0]["reason"] == "inactive_target"
    assert "Fürth" in d.trace[0]["text"]


def test_inactive_origin_or_service_owner_as_target_is_skipped():
    d = decide("- {id: home, owner: muenchen, route_to: origin_city}", origin_city="fuerth")
    assert d.trace[0]["reason"] == "inactive_target"
    assert d.via is Via.DEFAULT
    d = decide("- {id: tech, owner: muenchen, route_to: service_owner}", service="altdienst")
    assert d.trace[0]["reason"] == "inactive_target"


# --- fallback and default -----------------------------------------------------------------


def test_no_rule_matches_fallback_origin_city():
    d = decide("", origin_city="nuernberg")
    assert (d.city, d.rule, d.rule_version, d.via) == ("nuernberg", None, None, Via.FALLBACK)
    assert d.trace[-1]["result"] == "fallback"


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        (None, "origin_unknown"),
        ("fuerth", "origin_inactive"),
        ("regensburg", "origin_not_in_network"),
    ],
)
def test_fallback_cannot_decide_then_default_city(origin, reason):
    d = decide("", **({"origin_city": origin} if origin else {}))
    assert (d.city, d.via) == ("muenchen", Via.DEFAULT)
    assert d.trace[-1] == {**d.trace[-1], "result": "default", "reason": reason}


def test_fallback_to_a_named_city():
    d = decide("", fallback="augsburg", origin_city="nuernberg")
    assert (d.city, d.via) == ("augsburg", Via.FALLBACK)


def test_fallback_to_an_inactive_city_falls_to_the_default():
    d = decide("", fallback="fuerth", origin_city="nuernberg")
    assert (d.city, d.via) == ("muenchen", Via.DEFAULT)
    assert d.trace[-1]["reason"] == "fallback_inactive"


# --- the decision -------------------------------------------------------------------------


def test_decision_carries_rule_version_sla_and_a_json_trace():
    d = decide(
        """
        - {id: skip, owner: augsburg, status: proposed, route_to: nuernberg}
        - id: pay
          owner: augsburg
          when: {service: epayment}
          route_to: augsburg
          sla_hours: 24
          version: 3
          description: Augsburg beantwortet ePayment.
        """,
        service="epayment",
    )
    data = json.loads(json.dumps(d.to_dict()))
    assert data["city"] == "augsburg"
    assert data["rule"] == "pay"
    assert data["rule_version"] == 3
    assert data["via"] == "rule"
    assert data["sla_hours"] == 24
    assert [s["result"] for s in data["trace"]] == ["skipped", "matched"]
    assert data["trace"][-1]["description"] == "Augsburg beantwortet ePayment."


def test_fallback_decision_has_no_sla():
    assert decide("", origin_city="augsburg").sla_hours is None


# --- index and trace ----------------------------------------------------------------------


def _many_rules() -> str:
    lines = [
        f"- {{id: r{i}, owner: nuernberg, priority: {i}, when: {{origin_city: nuernberg, "
        f"service: bayernid}}, route_to: augsburg}}"
        for i in range(50)
    ]
    lines.append(
        "- {id: pay, owner: augsburg, priority: 60, when: {service: epayment}, route_to: augsburg}"
    )
    return "\n".join(lines)


def test_indexed_trace_lists_evaluated_rules_and_counts_the_excluded():
    d = decide(_many_rules(), service="epayment", origin_city="nuernberg")
    assert d.rule == "pay"
    assert d.trace[0]["result"] == "excluded"
    assert d.trace[0]["count"] == 50
    assert [s["rule"] for s in rule_steps(d)] == ["pay"]


def test_full_trace_lists_every_rule_tried():
    d = decide(_many_rules(), service="epayment", origin_city="nuernberg", full_trace=True)
    assert d.rule == "pay"
    assert len(rule_steps(d)) == 51
    assert all(s["result"] == "no_match" for s in d.trace[:50])
    assert not any(s["result"] == "excluded" for s in d.trace)


def test_index_keeps_skipped_rules_that_would_have_matched_in_the_trace():
    d = decide(
        """
        - {id: other, owner: muenchen, when: {service: bayernid}, route_to: muenchen}
        - {id: deleg, owner: augsburg, status: proposed, when: {service: epayment},
           route_to: nuernberg}
        """,
        service="epayment",
        origin_city="augsburg",
    )
    assert [s.get("rule") for s in d.trace] == [None, "deleg", None]
    assert d.trace[1]["reason"] == "proposed"


def _random_ruleset(rng: random.Random) -> RuleSet:
    cities = [CityInfo(key=f"c{i}", name=f"C{i}", active=i != 3) for i in range(6)]
    services = [
        ServiceInfo(
            key=f"s{i}",
            name=f"S{i}",
            owner=rng.choice([None, *(c.key for c in cities)]),
            leika=f"99{i:012d}" if i % 2 else None,
            topic=f"t{i % 3}",
        )
        for i in range(8)
    ]

    def maybe(values: list[str]) -> tuple[str, ...] | None:
        return tuple(rng.sample(values, rng.randint(1, 2))) if rng.random() < 0.4 else None

    rules = [
        Rule(
            id=f"r{i}",
            owner=rng.choice(cities).key,
            priority=rng.choice([1, 2, 3]),
            status=rng.choice([RuleStatus.active] * 4 + [RuleStatus.proposed, RuleStatus.rejected]),
            when=Conditions(
                origin_city=maybe([c.key for c in cities]),
                service=maybe([s.key for s in services] + ["99000000000001"]),
                topic=maybe(["t0", "t1", "t2"]),
                audience=rng.choice([None, None, Audience.external, Audience.internal]),
                channel=maybe(["web", "telegram", "api"]),
                text_any=maybe(["fehler", "zahlung", "geht nicht"]),
            ),
            route_to=rng.choice([*(c.key for c in cities), "origin_city", "service_owner"]),
        )
        for i in range(40)
    ]
    return RuleSet(cities=cities, services=services, default_city="c0", rules=rules)


def test_indexed_and_linear_evaluation_agree():
    rng = random.Random(7)
    for _ in range(30):
        router = Router(_random_ruleset(rng))
        for _ in range(60):
            facts = Facts(
                origin_city=rng.choice([None, "c0", "c1", "c2", "c3", "c4", "c5", "x"]),
                service=rng.choice([None, "s0", "s1", "s2", "s3", "99000000000003", "x"]),
                topic=rng.choice([None, None, "t0", "t1"]),
                audience=rng.choice([None, "external", "internal"]),
                channel=rng.choice([None, "web", "telegram", "api"]),
                text=rng.choice([None, "Fehler!", "Die Zahlung geht nicht", "Hallo"]),
            )
            fast = router.decide(facts)
            full = router.decide(facts, full_trace=True)
            assert (fast.city, fast.rule, fast.via) == (full.city, full.rule, full.via)
            # Every step of the indexed trace is a step of the full trace, and the count of
            # excluded rules accounts for the rest.
            fast_steps = rule_steps(fast)
            assert all(s in full.trace for s in fast_steps)
            excluded = sum(s.get("count", 0) for s in fast.trace if s["result"] == "excluded")
            assert excluded + len(fast_steps) == len(rule_steps(full))
