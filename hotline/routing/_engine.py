"""The router: the first rule in (priority, position) order whose conditions hold decides."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from hotline.routing._catalog import AUDIENCE_DE, Catalog
from hotline.routing._models import (
    ORIGIN_CITY,
    SERVICE_OWNER,
    Facts,
    RoutingDecision,
    Rule,
    RuleSet,
    RuleStatus,
    ServiceInfo,
    TraceStep,
    Via,
)
from hotline.routing._text import compile_phrases, fold

# The conditions the index knows; text_any is checked on the few rules the index lets through.
DIMENSIONS: tuple[str, ...] = ("origin_city", "service", "topic", "audience", "channel")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule prepared for evaluation: value sets for membership tests, the text pattern."""

    rule: Rule
    position: int  # in the rule set, i.e. in the file
    rank: int  # in evaluation order (priority, position)
    origin_city: frozenset[str] | None
    service: frozenset[str] | None  # service keys; LeiKa keys in the rule are resolved
    topic: frozenset[str] | None
    audience: frozenset[str] | None
    channel: frozenset[str] | None
    text: re.Pattern[str] | None

    def values(self, dimension: str) -> frozenset[str] | None:
        values: frozenset[str] | None = getattr(self, dimension)
        return values


def compile_rule(rule: Rule, position: int, rank: int, catalog: Catalog) -> CompiledRule:
    when = rule.when

    def as_set(values: tuple[str, ...] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    services = None
    if when.service is not None:
        # A name the catalogue does not know stays as written: it can only match facts that
        # name the same unknown service, which is what an unvalidated rule set would expect.
        services = frozenset(k for s in when.service for k in (catalog.service_keys(s) or {s}))
    return CompiledRule(
        rule=rule,
        position=position,
        rank=rank,
        origin_city=as_set(when.origin_city),
        service=services,
        topic=as_set(when.topic),
        audience=None if when.audience is None else frozenset({str(when.audience)}),
        channel=as_set(when.channel),
        text=None if when.text_any is None else compile_phrases(when.text_any),
    )


@dataclass(slots=True)
class _Context:
    """The facts of one question, resolved against the catalogue."""

    origin_city: str | None
    service: str | None  # the service key when the catalogue knows it, else as given
    service_info: ServiceInfo | None
    service_given: str | None
    topic: str | None
    topic_derived: bool
    audience: str | None
    channel: str | None
    text: str | None
    _folded: str | None = field(default=None)

    def folded(self) -> str:
        if self._folded is None:
            self._folded = fold(self.text or "")
        return self._folded

    def value(self, dimension: str) -> str | None:
        value: str | None = getattr(self, dimension)
        return value


def _list(values: tuple[str, ...] | None) -> str:
    return "[" + ", ".join(values or ()) + "]"


class Router:
    """Decides the responsible city for facts; build once per rule set, reuse for many facts.

    The index keeps, per indexed condition, a bit mask of the rules without that condition
    (the wildcard bucket) and one per value; bit i stands for the i-th rule in evaluation
    order. AND-ing the masks for the facts leaves exactly the rules whose indexed conditions
    hold, in order, so only those are evaluated.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.catalog = Catalog(ruleset.cities, ruleset.services)
        order = sorted(range(len(ruleset.rules)), key=lambda i: (ruleset.rules[i].priority, i))
        self.compiled: tuple[CompiledRule, ...] = tuple(
            compile_rule(ruleset.rules[pos], pos, rank, self.catalog)
            for rank, pos in enumerate(order)
        )
        self.all_mask = (1 << len(self.compiled)) - 1
        self.wildcard: dict[str, int] = {}
        self.specific: dict[str, dict[str, int]] = {}
        for dimension in DIMENSIONS:
            wildcard = 0
            specific: dict[str, int] = {}
            for compiled in self.compiled:
                bit = 1 << compiled.rank
                values = compiled.values(dimension)
                if values is None:
                    wildcard |= bit
                else:
                    for value in values:
                        specific[value] = specific.get(value, 0) | bit
            self.wildcard[dimension] = wildcard
            self.specific[dimension] = specific

    # --- public ---------------------------------------------------------------------------

    def decide(self, facts: Facts, *, full_trace: bool = False) -> RoutingDecision:
        """The responsible city. The trace lists the rules whose conditions were evaluated
        and a count of the rules the index excluded; `full_trace=True` evaluates every rule
        up to the decision one by one (for explain and dry-run tools; linear time)."""
        ctx = self._context(facts)
        trace: list[TraceStep] = []
        ranks = range(len(self.compiled)) if full_trace else iter_bits(self.candidates(ctx))
        for rank in ranks:
            compiled = self.compiled[rank]
            step, city = self._evaluate(compiled, ctx)
            trace.append(step)
            if city is not None:
                self._note_excluded(trace, rank + 1)
                rule = compiled.rule
                return RoutingDecision.model_construct(
                    city=city,
                    rule=rule.id,
                    rule_version=rule.version,
                    via=Via.RULE,
                    sla_hours=rule.sla_hours,
                    trace=tuple(trace),
                )
        self._note_excluded(trace, len(self.compiled))
        city, via, step = self._fallback(ctx)
        trace.append(step)
        return RoutingDecision.model_construct(
            city=city, rule=None, rule_version=None, via=via, sla_hours=None, trace=tuple(trace)
        )

    def candidates(self, ctx: _Context) -> int:
        """Bit mask (by rank) of the rules whose indexed conditions hold for the facts."""
        mask = self.all_mask
        for dimension in DIMENSIONS:
            value = ctx.value(dimension)
            allowed = self.wildcard[dimension]
            if value is not None:
                allowed |= self.specific[dimension].get(value, 0)
            mask &= allowed
            if not mask:
                break
        return mask

    # --- evaluation -----------------------------------------------------------------------

    def _context(self, facts: Facts) -> _Context:
        info = self.catalog.service(facts.service)
        topic, derived = facts.topic, False
        if topic is None and info is not None and info.topic:
            # A question about ePayment is a question on its service's topic; without this a
            # topic rule would miss every ticket that only names the service.
            topic, derived = info.topic, True
        return _Context(
            origin_city=facts.origin_city,
            service=info.key if info else facts.service,
            service_info=info,
            service_given=facts.service,
            topic=topic,
            topic_derived=derived,
            audience=None if facts.audience is None else str(facts.audience),
            channel=facts.channel,
            text=facts.text,
        )

    def _note_excluded(self, trace: list[TraceStep], considered: int) -> None:
        evaluated = sum(1 for step in trace if "rule" in step)
        excluded = considered - evaluated
        if excluded > 0:
            trace.insert(
                0,
                {
                    "result": "excluded",
                    "count": excluded,
                    "text": (
                        f"{excluded} Regel(n) kamen nach Herkunft, Dienst, Thema, Zielgruppe "
                        "oder Kanal von vornherein nicht in Frage (nicht einzeln aufgeführt)."
                    ),
                },
            )

    def _evaluate(self, compiled: CompiledRule, ctx: _Context) -> tuple[TraceStep, str | None]:
        """The trace step for one rule and the city when it decides."""
        rule = compiled.rule
        failed = self._failed_condition(compiled, ctx)
        if failed is not None:
            condition, detail, text = failed
            return {
                "rule": rule.id,
                "result": "no_match",
                "condition": condition,
                "detail": detail,
                "text": text,
            }, None
        target = self._target(rule, ctx)
        if isinstance(target, tuple):
            detail, text = target
            return {
                "rule": rule.id,
                "result": "no_match",
                "condition": "route_to",
                "detail": detail,
                "text": text,
            }, None
        cat = self.catalog
        if rule.status is not RuleStatus.active:
            if rule.status is RuleStatus.proposed:
                text = (
                    "Regel würde passen, ist aber nur vorgeschlagen"
                    + (
                        f" und von {cat.city_name(rule.route_to)} noch nicht angenommen"
                        if rule.route_to in cat.cities and rule.route_to != rule.owner
                        else ""
                    )
                    + "."
                )
            else:
                text = "Regel würde passen, ist aber abgelehnt."
            return {
                "rule": rule.id,
                "result": "skipped",
                "reason": str(rule.status),
                "text": text,
            }, None
        if not cat.is_active(target):
            known = target in cat.cities
            return {
                "rule": rule.id,
                "result": "skipped",
                "reason": "inactive_target" if known else "unknown_target",
                "city": target,
                "text": (
                    f"Regel würde passen, aber die Zielstadt {cat.city_name(target)} "
                    "ist nicht aktiv."
                    if known
                    else f"Regel würde passen, aber die Zielstadt {target} gibt es nicht."
                ),
            }, None
        step: TraceStep = {
            "rule": rule.id,
            "result": "matched",
            "city": target,
            "version": rule.version,
            "text": f"Regel passt: zuständig ist {cat.city_name(target)}.",
        }
        if rule.description:
            step["description"] = rule.description
        return step, target

    def _failed_condition(
        self, compiled: CompiledRule, ctx: _Context
    ) -> tuple[str, str, str] | None:
        """(condition, detail, German text) of the first condition that does not hold."""
        when = compiled.rule.when
        cat = self.catalog
        if compiled.origin_city is not None and ctx.origin_city not in compiled.origin_city:
            wanted = _list(when.origin_city)
            if ctx.origin_city is None:
                return (
                    "origin_city",
                    "origin_city unknown",
                    f"Herkunft unbekannt, verlangt {wanted}",
                )
            return (
                "origin_city",
                f"origin_city {ctx.origin_city!r} not in {wanted}",
                f"Herkunft {cat.city_name(ctx.origin_city)} passt nicht zu {wanted}",
            )
        if compiled.service is not None and ctx.service not in compiled.service:
            wanted = _list(when.service)
            if ctx.service is None:
                return "service", "service unknown", f"Dienst unbekannt, verlangt {wanted}"
            return (
                "service",
                f"service {ctx.service_given!r} not in {wanted}",
                f"Dienst {cat.service_name(ctx.service)} passt nicht zu {wanted}",
            )
        if compiled.topic is not None and ctx.topic not in compiled.topic:
            wanted = _list(when.topic)
            if ctx.topic is None:
                return "topic", "topic unknown", f"Thema unbekannt, verlangt {wanted}"
            source = " (aus dem Dienst)" if ctx.topic_derived else ""
            return (
                "topic",
                f"topic {ctx.topic!r}{' (from service)' if ctx.topic_derived else ''} "
                f"not in {wanted}",
                f"Thema {ctx.topic}{source} passt nicht zu {wanted}",
            )
        if compiled.audience is not None and ctx.audience not in compiled.audience:
            wanted_de = AUDIENCE_DE.get(str(when.audience), str(when.audience))
            if ctx.audience is None:
                return (
                    "audience",
                    "audience unknown",
                    f"Zielgruppe unbekannt, verlangt {wanted_de}",
                )
            return (
                "audience",
                f"audience {ctx.audience!r} is not {str(when.audience)!r}",
                f"Zielgruppe {AUDIENCE_DE.get(ctx.audience, ctx.audience)} passt nicht "
                f"zu {wanted_de}",
            )
        if compiled.channel is not None and ctx.channel not in compiled.channel:
            wanted = _list(when.channel)
            if ctx.channel is None:
                return "channel", "channel unknown", f"Kanal unbekannt, verlangt {wanted}"
            return (
                "channel",
                f"channel {ctx.channel!r} not in {wanted}",
                f"Kanal {ctx.channel} passt nicht zu {wanted}",
            )
        if compiled.text is not None and compiled.text.search(ctx.folded()) is None:
            wanted = _list(when.text_any)
            if not ctx.folded():
                return "text_any", "no text", f"Kein Text vorhanden, verlangt eines von {wanted}"
            return (
                "text_any",
                f"text contains none of {wanted}",
                f"Text enthält keines der Wörter {wanted}",
            )
        return None

    def _target(self, rule: Rule, ctx: _Context) -> str | tuple[str, str]:
        """The target city, or (detail, German text) when the fact it depends on is unknown."""
        if rule.route_to == ORIGIN_CITY:
            if ctx.origin_city is None:
                return (
                    "route_to origin_city: origin city unknown",
                    "Ziel Herkunftsstadt nicht bestimmbar: Herkunft unbekannt",
                )
            if ctx.origin_city not in self.catalog.cities:
                return (
                    f"route_to origin_city: {ctx.origin_city!r} is not a city of the network",
                    f"Ziel Herkunftsstadt nicht bestimmbar: {ctx.origin_city} gehört nicht "
                    "zum Verbund",
                )
            return ctx.origin_city
        if rule.route_to == SERVICE_OWNER:
            info = ctx.service_info
            if info is None:
                return (
                    "route_to service_owner: service unknown",
                    "Ziel Betreiberstadt nicht bestimmbar: Dienst unbekannt",
                )
            if info.owner is None:
                return (
                    f"route_to service_owner: service {info.key!r} has no owner",
                    f"Ziel Betreiberstadt nicht bestimmbar: {info.name} hat keine Betreiberstadt",
                )
            return info.owner
        return rule.route_to

    def _fallback(self, ctx: _Context) -> tuple[str, Via, TraceStep]:
        cat = self.catalog
        fallback = self.ruleset.fallback
        default = self.ruleset.default_city
        default_name = cat.city_name(default)
        if fallback == ORIGIN_CITY:
            origin = ctx.origin_city
            if origin is not None and cat.is_active(origin):
                return (
                    origin,
                    Via.FALLBACK,
                    {
                        "result": "fallback",
                        "city": origin,
                        "text": f"Keine Regel passt: zuständig ist die Herkunftsstadt "
                        f"{cat.city_name(origin)} (Rückfallregel).",
                    },
                )
            if origin is None:
                reason, why = "origin_unknown", "die Herkunftsstadt ist unbekannt"
            elif origin not in cat.cities:
                reason, why = "origin_not_in_network", f"{origin} gehört nicht zum Verbund"
            else:
                reason, why = "origin_inactive", f"{cat.city_name(origin)} ist nicht aktiv"
        elif cat.is_active(fallback):
            return (
                fallback,
                Via.FALLBACK,
                {
                    "result": "fallback",
                    "city": fallback,
                    "text": f"Keine Regel passt: zuständig ist {cat.city_name(fallback)} "
                    "(Rückfallregel).",
                },
            )
        else:
            reason = "fallback_inactive"
            why = f"die Rückfallstadt {cat.city_name(fallback)} ist nicht aktiv"
        return (
            default,
            Via.DEFAULT,
            {
                "result": "default",
                "city": default,
                "reason": reason,
                "text": f"Keine Regel passt und {why}: zuständig ist die Standardstadt "
                f"{default_name}.",
            },
        )


def iter_bits(mask: int) -> Iterator[int]:
    """Positions of the set bits, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
