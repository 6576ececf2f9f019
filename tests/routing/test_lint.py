"""Lint: shadowed rules, overlaps at equal priority, pending delegations, inactive targets, gaps."""

from __future__ import annotations

import textwrap

from hotline.routing import LintKind, LintWarning, lint
from tests.routing.builders import make

# A catch-all per city keeps the gap check quiet where a test is about something else.
COVERED = """
- {id: z-rest, owner: muenchen, priority: 1000, route_to: origin_city}
"""


def lint_covered(rules: str, **kwargs: str) -> list[LintWarning]:
    return lint(make(textwrap.dedent(rules) + COVERED, **kwargs))


def kinds(warnings: list[LintWarning]) -> list[tuple[str, str | None]]:
    return [(w.kind.value, w.rule) for w in warnings]


def test_clean_rule_set_has_no_warnings():
    assert lint(make(COVERED)) == []


def test_shadowed_rule():
    warnings = lint_covered(
        """
        - {id: broad, owner: augsburg, priority: 10, when: {service: [epayment, kfz-online]},
           route_to: augsburg}
        - {id: narrow, owner: nuernberg, priority: 20, when: {origin_city: nuernberg,
           service: epayment}, route_to: nuernberg}
        """
    )
    assert kinds(warnings) == [("shadowed", "narrow")]
    assert warnings[0].related == "broad"
    assert "kann nie entscheiden" in warnings[0].message


def test_not_shadowed_when_the_earlier_rule_may_not_decide():
    warnings = lint_covered(
        """
        - {id: words, owner: augsburg, priority: 1, when: {text_any: fehler}, route_to: augsburg}
        - {id: proposed, owner: augsburg, priority: 2, status: proposed, route_to: augsburg}
        - {id: home, owner: muenchen, priority: 3, route_to: origin_city}
        - {id: owner, owner: muenchen, priority: 4, route_to: service_owner}
        - {id: later, owner: nuernberg, priority: 5, when: {service: bayernid}, route_to: nuernberg}
        """
    )
    assert [w for w in warnings if w.kind is LintKind.SHADOWED] == []


def test_shadowed_by_dynamic_target_that_is_always_known():
    warnings = lint_covered(
        """
        - {id: home, owner: muenchen, priority: 1, when: {origin_city: [augsburg, nuernberg]},
           route_to: origin_city}
        - {id: later, owner: augsburg, priority: 2, when: {origin_city: augsburg,
           audience: internal}, route_to: nuernberg}
        """
    )
    assert ("shadowed", "later") in kinds(warnings)


def test_shadowed_with_text_conditions():
    warnings = lint_covered(
        """
        - {id: a, owner: augsburg, priority: 1, when: {text_any: [paypal, überweisung]},
           route_to: augsburg}
        - {id: b, owner: augsburg, priority: 2, when: {text_any: [Ueberweisung],
           service: epayment}, route_to: augsburg}
        - {id: c, owner: augsburg, priority: 3, when: {text_any: [lastschrift, paypal]},
           route_to: augsburg}
        """
    )
    assert kinds(warnings) == [("shadowed", "b")]


def test_overlap_at_equal_priority_with_different_targets():
    warnings = lint_covered(
        """
        - {id: by-origin, owner: nuernberg, when: {origin_city: nuernberg}, route_to: nuernberg}
        - {id: by-service, owner: augsburg, when: {service: epayment}, route_to: augsburg}
        - {id: same-target, owner: augsburg, when: {service: kfz-online}, route_to: nuernberg}
        - {id: disjoint, owner: augsburg, when: {origin_city: augsburg, service: bayernid},
           route_to: augsburg}
        """
    )
    assert kinds(warnings) == [("overlap", "by-service")]
    assert warnings[0].related == "by-origin"
    assert "Priorität 100" in warnings[0].message


def test_no_overlap_at_different_priorities_or_audiences():
    warnings = lint_covered(
        """
        - {id: a, owner: nuernberg, priority: 1, when: {origin_city: nuernberg},
           route_to: nuernberg}
        - {id: b, owner: augsburg, priority: 2, when: {service: epayment}, route_to: augsburg}
        - {id: c, owner: augsburg, priority: 3, when: {audience: internal}, route_to: augsburg}
        - {id: d, owner: muenchen, priority: 3, when: {audience: external}, route_to: muenchen}
        """
    )
    assert [w for w in warnings if w.kind is LintKind.OVERLAP] == []


def test_proposed_delegation():
    warnings = lint_covered(
        """
        - {id: deleg, owner: augsburg, status: proposed, when: {origin_city: augsburg,
           service: hundesteuer-online}, route_to: nuernberg}
        - {id: self, owner: augsburg, status: proposed, when: {service: epayment},
           route_to: augsburg}
        """
    )
    assert kinds(warnings) == [("proposed_delegation", "deleg")]
    assert "wartet auf die Annahme durch Nürnberg" in warnings[0].message


def test_inactive_targets():
    warnings = lint_covered(
        """
        - {id: to-fuerth, owner: fuerth, when: {service: altdienst}, route_to: fuerth}
        - {id: gone, owner: fuerth, status: rejected, when: {service: bayernid}, route_to: fuerth}
        """,
        fallback="fuerth",
    )
    assert kinds(warnings) == [("inactive_target", "to-fuerth"), ("inactive_target", None)]
    assert "Rückfallstadt Fürth" in warnings[1].message


def test_gaps_are_origin_and_audience_combinations_only_the_fallback_decides():
    warnings = lint(
        make(
            """
            - {id: muc, owner: muenchen, when: {origin_city: muenchen}, route_to: muenchen}
            - {id: aug-intern, owner: augsburg, when: {origin_city: augsburg,
               audience: internal}, route_to: augsburg}
            - {id: proposed, owner: nuernberg, status: proposed, when: {origin_city: nuernberg},
               route_to: nuernberg}
            """
        )
    )
    gaps = [(w.origin_city, str(w.audience)) for w in warnings if w.kind is LintKind.GAP]
    # Fürth is inactive: questions from there are not a gap to report.
    assert gaps == [
        ("augsburg", "external"),
        ("nuernberg", "external"),
        ("nuernberg", "internal"),
    ]
    assert "Rückfallregel" in warnings[-1].message
