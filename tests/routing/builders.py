"""Test data for routing: a small catalogue with an inactive city, and rule-set builders."""

from __future__ import annotations

import textwrap
from pathlib import Path

from hotline.routing import RuleSet, parse_ruleset

DEMO = Path(__file__).resolve().parents[2] / "hotline" / "demo"

CATALOG = """\
cities:
  - {key: muenchen, name: München}
  - {key: augsburg, name: Augsburg}
  - {key: nuernberg, name: Nürnberg}
  - {key: fuerth, name: Fürth, active: false}
services:
  - {key: epayment, name: ePayment, owner: augsburg, topic: zahlung, leika: "99000000000001"}
  - {key: bayernid, name: BayernID, topic: konto}
  - {key: kfz-online, name: i-Kfz, owner: augsburg, topic: kfz}
  - {key: hundesteuer-online, name: Hundesteuer online, owner: nuernberg, topic: steuer}
  - {key: altdienst, name: Altdienst, owner: fuerth, topic: steuer}
"""


def rules_yaml(rules: str, *, fallback: str = "origin_city", default: str = "muenchen") -> str:
    """A complete rule file: the test catalogue, fallback, default city and `rules` (a YAML
    list, written flush left in the test)."""
    body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ") if rules.strip() else ""
    return (
        CATALOG
        + f"fallback: {fallback}\ndefault_city: {default}\nrules:"
        + ("\n" + body + "\n" if body else " []\n")
    )


def make(rules: str = "", *, fallback: str = "origin_city", default: str = "muenchen") -> RuleSet:
    return parse_ruleset(rules_yaml(rules, fallback=fallback, default=default))
