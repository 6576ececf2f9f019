"""Routing ("Zuständigkeit"): rule files, the router with its trace, lint, coverage, replay.

Pure code: no database, no web. The service layer supplies the catalogue (cities, services)
and stores decisions; see docs/routing.md for the file format and the exact semantics.
"""

from hotline.domain import CHANNELS
from hotline.routing._coverage import (
    CoverageBy,
    CoverageRow,
    Move,
    ReplayTicket,
    coverage,
    coverage_csv,
    coverage_table,
    replay,
)
from hotline.routing._delegation import delegation_target, is_delegation, needs_acceptance
from hotline.routing._engine import Router
from hotline.routing._lint import LintKind, LintWarning, lint
from hotline.routing._models import (
    ORIGIN_CITY,
    SERVICE_OWNER,
    Audience,
    CityInfo,
    Conditions,
    Facts,
    RoutingDecision,
    Rule,
    RuleSet,
    RuleStatus,
    ServiceInfo,
    TraceStep,
    Via,
)
from hotline.routing._parse import (
    RuleProblem,
    RuleSetError,
    catalog_from_yaml,
    parse_ruleset,
    validate_ruleset,
)
from hotline.routing._text import fold

__all__ = [
    "CHANNELS",
    "ORIGIN_CITY",
    "SERVICE_OWNER",
    "Audience",
    "CityInfo",
    "Conditions",
    "CoverageBy",
    "CoverageRow",
    "Facts",
    "LintKind",
    "LintWarning",
    "Move",
    "ReplayTicket",
    "Router",
    "RoutingDecision",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RuleSetError",
    "RuleStatus",
    "ServiceInfo",
    "TraceStep",
    "Via",
    "catalog_from_yaml",
    "coverage",
    "coverage_csv",
    "coverage_table",
    "delegation_target",
    "fold",
    "is_delegation",
    "lint",
    "needs_acceptance",
    "parse_ruleset",
    "replay",
    "validate_ruleset",
]
