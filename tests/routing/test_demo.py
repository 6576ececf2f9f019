"""The demo rules: they validate against the demo catalogue, lint sensibly, route as described."""

from __future__ import annotations

import pytest

from hotline.routing import (
    Facts,
    LintKind,
    Router,
    RuleSet,
    RuleStatus,
    coverage,
    is_delegation,
    lint,
)


def test_every_demo_rule_has_a_german_description(demo_ruleset: RuleSet):
    assert len(demo_ruleset.rules) >= 6
    assert all(r.description and len(r.description) > 20 for r in demo_ruleset.rules)


def test_demo_has_a_proposed_delegation_and_lint_reports_only_that(demo_ruleset: RuleSet):
    proposed = [r for r in demo_ruleset.rules if r.status is RuleStatus.proposed]
    assert proposed and all(is_delegation(r) for r in proposed)
    warnings = lint(demo_ruleset)
    assert [(w.kind, w.rule) for w in warnings] == [
        (LintKind.PROPOSED_DELEGATION, "aug-hundesteuer-an-nuernberg")
    ]


@pytest.mark.parametrize(
    ("facts", "city", "rule"),
    [
        # Augsburg answers ePayment for all three, external and internal.
        ({"origin_city": "muenchen", "service": "epayment"}, "augsburg", "epayment-alle"),
        (
            {"origin_city": "nuernberg", "service": "epayment", "audience": "internal"},
            "augsburg",
            "epayment-alle",
        ),
        # Internal questions about the form platform go to its owner.
        (
            {"origin_city": "muenchen", "service": "formularplattform", "audience": "internal"},
            "nuernberg",
            "formularplattform-intern",
        ),
        # A citizen's question about forms stays with the origin city.
        (
            {"origin_city": "muenchen", "service": "formularplattform", "audience": "external"},
            "muenchen",
            None,
        ),
        # A technical problem with a shared service goes to the city that built it.
        (
            {
                "origin_city": "nuernberg",
                "service": "99115005000000",
                "text": "Die Ummeldung: Seite lädt nicht!",
            },
            "muenchen",
            "technik-gemeinsame-dienste",
        ),
        # Without a technical keyword the origin city answers.
        (
            {
                "origin_city": "nuernberg",
                "service": "wohnsitz-online",
                "text": "Welche Unterlagen?",
            },
            "nuernberg",
            None,
        ),
        # An accepted delegation: Nürnberg's i-Kfz questions go to Augsburg.
        ({"origin_city": "nuernberg", "service": "kfz-online"}, "augsburg", "nue-kfz-an-augsburg"),
        # The proposed delegation does not apply yet.
        ({"origin_city": "augsburg", "service": "hundesteuer-online"}, "augsburg", None),
        ({"service": "bayernid", "audience": "internal"}, "muenchen", "konten-intern-muenchen"),
        ({}, "muenchen", None),
    ],
)
def test_demo_routing(demo_ruleset: RuleSet, facts: dict[str, str], city: str, rule: str | None):
    decision = Router(demo_ruleset).decide(Facts(**facts))
    assert (decision.city, decision.rule) == (city, rule)


def test_demo_coverage_is_complete(demo_ruleset: RuleSet):
    rows = coverage(demo_ruleset)
    assert len(rows) == 3 * len(demo_ruleset.services) * 2
    assert {r.city for r in rows if r.service == "epayment"} == {"augsburg"}
