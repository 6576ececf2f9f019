"""Reading rule files: format, catalogue precedence, export round trip, every validation error."""

from __future__ import annotations

import pytest

from hotline.routing import (
    Audience,
    CityInfo,
    Conditions,
    Facts,
    Router,
    Rule,
    RuleProblem,
    RuleSet,
    RuleSetError,
    RuleStatus,
    ServiceInfo,
    parse_ruleset,
    validate_ruleset,
)
from tests.routing.builders import CATALOG, make, rules_yaml


def problems(text: str, **kwargs) -> list[RuleProblem]:
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(text, **kwargs)
    return info.value.problems


def rule_problems(rules: str) -> list[RuleProblem]:
    return problems(rules_yaml(rules))


def only(found: list[RuleProblem]) -> RuleProblem:
    assert len(found) == 1, found
    return found[0]


# --- the format ---------------------------------------------------------------------------


def test_full_rule_with_defaults_and_scalars():
    rs = make(
        """
        - id: nue-epayment-to-augsburg
          owner: nuernberg
          when:
            origin_city: nuernberg
            service: 99000000000001
            audience: external
            text_any: paypal
          route_to: augsburg
        """
    )
    rule = rs.rules[0]
    assert rule.priority == 100
    assert rule.status is RuleStatus.active
    assert rule.version == 1
    assert rule.sla_hours is None and rule.description is None
    assert rule.when == Conditions(
        origin_city=("nuernberg",),
        service=("99000000000001",),
        audience=Audience.external,
        text_any=("paypal",),
    )
    assert rs.fallback == "origin_city"
    assert rs.default_city == "muenchen"


def test_rule_without_when_matches_everything_and_empty_rules_are_fine():
    assert make("- {id: x, owner: muenchen, route_to: muenchen}").rules[0].when == Conditions()
    assert make("").rules == ()


def test_export_round_trip_is_stable():
    rs = make(
        """
        - id: a
          owner: augsburg
          priority: 5
          status: proposed
          when: {origin_city: [augsburg], service: hundesteuer-online, channel: web,
                 text_any: ['seite lädt nicht', 'technisch*'], audience: internal}
          route_to: nuernberg
          sla_hours: 8
          description: Vorschlag – Nürnberg übernimmt.
          version: 2
        - {id: b, owner: muenchen, route_to: service_owner, when: {topic: [zahlung, konto]}}
        """,
        fallback="augsburg",
    )
    text = rs.to_yaml()
    again = parse_ruleset(text)
    assert again == rs
    assert again.to_yaml() == text
    assert "Nürnberg übernimmt" in text  # no \\u escapes in exported German text


def test_export_without_catalogue_reads_back_with_the_database_catalogue():
    rs = make("- {id: a, owner: augsburg, route_to: augsburg}")
    text = rs.to_yaml(include_catalog=False)
    assert "cities" not in rs.to_dict(include_catalog=False)
    again = parse_ruleset(text, cities=list(rs.cities), services=list(rs.services))
    assert again == rs


# --- catalogue precedence -------------------------------------------------------------------


DB_CITIES = [CityInfo(key="muenchen", name="München"), CityInfo(key="passau", name="Passau")]
DB_SERVICES = [ServiceInfo(key="dbdienst", name="DB-Dienst")]


def test_catalogue_from_the_file_takes_precedence_over_the_supplied_one():
    rs = parse_ruleset(rules_yaml(""), cities=DB_CITIES, services=DB_SERVICES)
    assert {c.key for c in rs.cities} == {"muenchen", "augsburg", "nuernberg", "fuerth"}
    assert "dbdienst" not in {s.key for s in rs.services}


def test_supplied_catalogue_is_used_when_the_file_has_none():
    text = (
        "default_city: muenchen\nrules:\n"
        "  - {id: a, owner: passau, route_to: passau, when: {service: dbdienst}}\n"
    )
    rs = parse_ruleset(text, cities=DB_CITIES, services=DB_SERVICES)
    assert rs.rules[0].owner == "passau"
    assert rs.cities == tuple(DB_CITIES)


def test_no_catalogue_anywhere_is_an_error():
    found = problems("default_city: muenchen\nrules: []\n")
    assert {p.field for p in found} >= {"cities", "services"}
    assert "no cities" in found[0].message


# --- validation: each problem names rule, field and line ------------------------------------


def test_yaml_syntax_error_with_line():
    text = rules_yaml("- {id: a, owner: muenchen, route_to: muenchen}") + "  - id: [unclosed\n"
    p = only(problems(text))
    assert p.message.startswith("YAML syntax error")
    assert p.line is not None and p.line >= text.count("\n") - 1


@pytest.mark.parametrize(
    ("rule", "field", "needle"),
    [
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {origin_city: [münchen]}}",
            "when.origin_city[0]",
            "unknown city 'münchen'",
        ),
        ("{id: a, owner: berlin, route_to: muenchen}", "owner", "unknown city 'berlin'"),
        ("{id: a, owner: muenchen, route_to: augsbrug}", "route_to", "did you mean 'augsburg'"),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {service: [bayernid, epaymnet]}}",
            "when.service[1]",
            "unknown service 'epaymnet'; did you mean 'epayment'",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {topic: zahlungen}}",
            "when.topic[0]",
            "unknown topic",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {channel: fax}}",
            "when.channel[0]",
            "unknown channel 'fax'",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, priority: '100'}",
            "priority",
            "whole number",
        ),
        ("{id: a, owner: muenchen, route_to: muenchen, priority: 1.5}", "priority", "whole number"),
        ("{id: a, owner: muenchen, route_to: muenchen, status: accepted}", "status", "active"),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {audience: buerger}}",
            "when.audience",
            "external",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, prioirty: 5}",
            "prioirty",
            "did you mean 'priority'",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {servce: epayment}}",
            "when.servce",
            "did you mean 'service'",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {service: []}}",
            "when.service",
            "empty list",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {text_any: ['*fehler']}}",
            "when.text_any[0]",
            "'*'",
        ),
        (
            "{id: a, owner: muenchen, route_to: muenchen, when: {text_any: ['?!']}}",
            "when.text_any[0]",
            "no letters",
        ),
        ("{id: a, owner: muenchen, route_to: muenchen, sla_hours: 0}", "sla_hours", "greater"),
        (
            "{id: a, owner: muenchen, route_to: service_owner, when: {service: bayernid}}",
            "route_to",
            "owner city",
        ),
        ("{id: a, owner: muenchen}", "route_to", "missing"),
    ],
)
def test_rule_problem_names_rule_field_and_line(rule, field, needle):
    p = only(rule_problems(f"- {{id: ok, owner: muenchen, route_to: muenchen}}\n- {rule}"))
    assert p.rule == "a"
    assert p.field == field
    assert needle in p.message
    assert p.line == CATALOG.count("\n") + 5  # the line of the second rule
    assert "line" in str(p) and "'a'" in str(p)


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ("{id: '', owner: muenchen, route_to: muenchen}", "empty"),
        ("{id: 'Regel Eins', owner: muenchen, route_to: muenchen}", "lower-case"),
        ("{owner: muenchen, route_to: muenchen}", "missing"),
    ],
)
def test_bad_or_missing_rule_id(rule, needle):
    p = only(rule_problems(f"- {rule}"))
    assert p.rule is None
    assert p.field == "rules[0].id"
    assert needle in p.message


def test_duplicate_rule_ids_name_the_first_line():
    found = rule_problems(
        """
        - {id: a, owner: muenchen, route_to: muenchen}
        - {id: a, owner: augsburg, route_to: augsburg}
        """
    )
    p = only(found)
    assert (p.rule, p.field) == ("a", "id")
    assert p.line == CATALOG.count("\n") + 5
    assert f"first used on line {CATALOG.count(chr(10)) + 4}" in p.message


def test_fallback_and_default_city_must_exist_and_default_must_be_active():
    found = problems(rules_yaml("", fallback="berlin", default="hamburg"))
    assert {(p.field, "unknown city" in p.message) for p in found} == {
        ("fallback", True),
        ("default_city", True),
    }
    p = only(problems(rules_yaml("", default="fuerth")))
    assert "inactive" in p.message
    p = only(problems(CATALOG + "rules: []\n"))
    assert p.field == "default_city" and "required" in p.message


def test_the_whole_file_is_refused_and_every_problem_is_reported():
    found = rule_problems(
        """
        - {id: good, owner: muenchen, route_to: muenchen}
        - {id: bad1, owner: muenchen, route_to: berlin}
        - {id: bad2, owner: muenchen, route_to: muenchen, priority: high}
        """
    )
    assert [p.rule for p in found] == ["bad1", "bad2"]
    lines = [p.line or 0 for p in found]
    assert lines == sorted(lines)


def test_duplicate_yaml_keys_and_unknown_sections():
    text = rules_yaml("- {id: a, owner: muenchen, route_to: muenchen, priority: 1, priority: 2}")
    assert "duplicate key 'priority'" in only(problems(text)).message
    text = rules_yaml("") + "fallbak: origin_city\n"
    assert "did you mean 'fallback'" in only(problems(text)).message


def test_catalogue_problems_in_the_file():
    text = (
        "cities:\n  - {key: muenchen, name: München}\n  - {key: muenchen, name: München 2}\n"
        "  - {key: origin_city, name: X}\n"
        "services:\n  - {key: a, name: A, owner: berlin}\n  - {key: b, name: B, leika: a}\n"
        "default_city: muenchen\n"
    )
    found = problems(text)
    messages = " | ".join(p.message for p in found)
    assert "duplicate city 'muenchen'" in messages
    assert "reserved" in messages
    assert "unknown city 'berlin'" in messages
    assert "'a' is already the key of another service" in messages
    assert all(p.line is not None for p in found)


def test_services_may_share_a_leika_key_and_a_rule_naming_it_covers_all():
    # Munich's catalogue has "Beglaubigung von bis zu 5 / 20 Dokumenten" under one LeiKa key.
    text = (
        "cities:\n  - {key: muenchen, name: München}\n  - {key: augsburg, name: Augsburg}\n"
        "services:\n  - {key: beglaubigung-5, name: B5, leika: '99014002035000'}\n"
        "  - {key: beglaubigung-20, name: B20, leika: '99014002035000'}\n"
        "default_city: muenchen\n"
        "rules:\n  - {id: r, owner: augsburg, when: {service: '99014002035000'},"
        " route_to: augsburg}\n"
    )
    ruleset = parse_ruleset(text)
    router = Router(ruleset)
    for service in ("beglaubigung-5", "beglaubigung-20", "99014002035000"):
        assert router.decide(Facts(origin_city="muenchen", service=service)).rule == "r"


def test_not_a_mapping_and_empty_file():
    assert "mapping" in only(problems("- a\n- b\n")).message
    assert "empty" in only(problems("")).message


def test_validate_ruleset_checks_rule_sets_built_in_code():
    rs = RuleSet(
        cities=[CityInfo(key="muenchen", name="München")],
        services=[],
        default_city="muenchen",
        rules=[Rule(id="a", owner="muenchen", route_to="augsburg")],
    )
    p = only(validate_ruleset(rs))
    assert (p.rule, p.field, p.line) == ("a", "route_to", None)
    assert validate_ruleset(make("- {id: a, owner: muenchen, route_to: muenchen}")) == []


def test_error_text_names_the_source():
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(rules_yaml("- {id: a, owner: muenchen, route_to: berlin}"), source="x.yml")
    assert "x.yml: line" in str(info.value)
