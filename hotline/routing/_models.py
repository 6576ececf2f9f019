"""The data of routing: catalogue entries, rules, rule sets, facts about a question, decisions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from hotline.domain import Audience, RuleStatus

ORIGIN_CITY = "origin_city"
SERVICE_OWNER = "service_owner"
DYNAMIC_TARGETS = (ORIGIN_CITY, SERVICE_OWNER)

# Mirrors hotline.models.Channel; kept here as a plain tuple so that routing stays free of the
# database layer. parse_ruleset(channels=...) lets the caller pass the authoritative list.

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
CITY_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

TraceStep = dict[str, Any]
"""One JSON-serialisable trace entry; keys are described in docs/routing.md."""


class Via(StrEnum):
    RULE = "rule"
    FALLBACK = "fallback"
    DEFAULT = "default"


NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Values = tuple[NonEmpty, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _to_str(value: Any) -> Any:
    # Unquoted LeiKa keys (99115005000000) arrive from YAML as int; they are keys, not numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class CityInfo(_Frozen):
    """A city of the network as routing sees it."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=CITY_KEY_PATTERN)]
    name: NonEmpty
    active: StrictBool = True


class ServiceInfo(_Frozen):
    """A supported service; `owner` is the city that built or operates a shared service."""

    key: NonEmpty
    name: NonEmpty
    owner: str | None = None
    leika: str | None = None
    topic: str | None = None

    @field_validator("leika", "key", mode="before")
    @classmethod
    def _keys_are_text(cls, value: Any) -> Any:
        return _to_str(value)


class Conditions(_Frozen):
    """What a rule asks of the facts; an omitted condition holds for any value."""

    origin_city: Annotated[Values, Field(min_length=1)] | None = None
    service: Annotated[Values, Field(min_length=1)] | None = None
    topic: Annotated[Values, Field(min_length=1)] | None = None
    audience: Audience | None = None
    channel: Annotated[Values, Field(min_length=1)] | None = None
    text_any: Annotated[Values, Field(min_length=1)] | None = None

    @field_validator("origin_city", "service", "topic", "channel", "text_any", mode="before")
    @classmethod
    def _scalar_is_list(cls, value: Any) -> Any:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return (_to_str(value),)
        if isinstance(value, list | tuple):
            return tuple(_to_str(v) for v in value)
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("origin_city", "service", "topic", "audience", "channel", "text_any"):
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = str(value) if isinstance(value, Audience) else list(value)
        return out


class Rule(_Frozen):
    """One routing rule: if all conditions hold, `route_to` is responsible."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=RULE_ID_PATTERN)]
    owner: NonEmpty
    priority: Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000)] = 100
    status: RuleStatus = RuleStatus.active
    when: Conditions = Conditions()
    route_to: NonEmpty
    sla_hours: Annotated[StrictInt, Field(gt=0, le=10_000)] | None = None
    description: str | None = None
    version: Annotated[StrictInt, Field(ge=1, le=2_000_000_000)] = 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "owner": self.owner,
            "priority": self.priority,
            "status": str(self.status),
            "when": self.when.to_dict(),
            "route_to": self.route_to,
        }
        if self.sla_hours is not None:
            out["sla_hours"] = self.sla_hours
        if self.description is not None:
            out["description"] = self.description
        out["version"] = self.version
        return out


class RuleSet(_Frozen):
    """Everything routing needs: the catalogue, the fallback and the ordered rules."""

    cities: tuple[CityInfo, ...] = ()
    services: tuple[ServiceInfo, ...] = ()
    fallback: str = ORIGIN_CITY
    default_city: str
    rules: tuple[Rule, ...] = ()

    def to_dict(self, *, include_catalog: bool = True) -> dict[str, Any]:
        """Plain data in the rule-file layout; `include_catalog=False` leaves the catalogue to
        the database (the layout of hotline/demo/rules.yml)."""
        out: dict[str, Any] = {}
        if include_catalog:
            out["cities"] = [c.model_dump() for c in self.cities]
            out["services"] = [s.model_dump(exclude_none=True) for s in self.services]
        out["fallback"] = self.fallback
        out["default_city"] = self.default_city
        out["rules"] = [r.to_dict() for r in self.rules]
        return out

    def to_yaml(self, *, include_catalog: bool = True) -> str:
        return yaml.safe_dump(
            self.to_dict(include_catalog=include_catalog),
            allow_unicode=True,
            sort_keys=False,
            width=100,
        )


class Facts(BaseModel):
    """What is known about a question; every field may be unknown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    origin_city: str | None = None
    service: str | None = None  # a service key or a LeiKa key
    topic: str | None = None
    audience: Audience | None = None
    channel: str | None = None
    text: str | None = None

    @field_validator("service", mode="before")
    @classmethod
    def _service_is_text(cls, value: Any) -> Any:
        return _to_str(value)


class RoutingDecision(_Frozen):
    """Who is responsible, by which rule or fallback, and why (the trace)."""

    city: str
    rule: str | None
    rule_version: int | None
    via: Via
    sla_hours: int | None = None
    trace: tuple[TraceStep, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "city": self.city,
            "rule": self.rule,
            "rule_version": self.rule_version,
            "via": str(self.via),
            "sla_hours": self.sla_hours,
            "trace": [dict(step) for step in self.trace],
        }
