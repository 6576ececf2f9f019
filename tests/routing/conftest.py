"""Fixtures for routing tests: the demo catalogue and the demo rule set."""

from __future__ import annotations

import pytest

from hotline.routing import CityInfo, RuleSet, ServiceInfo, catalog_from_yaml, parse_ruleset
from tests.routing.builders import DEMO


@pytest.fixture
def demo_catalog() -> tuple[list[CityInfo], list[ServiceInfo]]:
    return catalog_from_yaml(
        (DEMO / "cities.yml").read_text(encoding="utf-8"),
        (DEMO / "services.yml").read_text(encoding="utf-8"),
    )


@pytest.fixture
def demo_ruleset(demo_catalog: tuple[list[CityInfo], list[ServiceInfo]]) -> RuleSet:
    cities, services = demo_catalog
    return parse_ruleset(
        (DEMO / "rules.yml").read_text(encoding="utf-8"),
        source="rules.yml",
        cities=cities,
        services=services,
    )
