"""Decision time of the indexed router against a linear scan at 10, 1,000 and 10,000 rules."""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from hotline.routing import (
    Audience,
    CityInfo,
    Conditions,
    Facts,
    Router,
    Rule,
    RuleSet,
    RuleStatus,
    ServiceInfo,
    fold,
    lint,
)

SIZES = (10, 1_000, 10_000)
N_CITIES = 300
N_SERVICES = 400
N_TOPICS = 25
CHANNELS = ("web", "telegram", "api", "email")
WORDS = (
    *("antrag", "formular", "termin", "frist", "gebühr", "bescheid", "konto", "passwort"),
    *("login", "ausweis", "pin", "brief", "adresse", "umzug", "fahrzeug", "kennzeichen"),
    *("hund", "steuer", "gewerbe", "parkausweis", "zahlung", "karte"),
)
TRIGGERS = ("fehlermeldung", "funktioniert nicht", "seite lädt nicht", "absturz", "paypal")


def build_network(rng: random.Random) -> tuple[list[CityInfo], list[ServiceInfo]]:
    """Hundreds of municipalities, a large service catalogue with LeiKa keys and owners."""
    cities = [
        CityInfo(key=f"stadt{i:03d}", name=f"Stadt {i}", active=rng.random() > 0.02)
        for i in range(N_CITIES)
    ]
    cities[0] = CityInfo(key="stadt000", name="Stadt 0", active=True)  # the default city
    services = [
        ServiceInfo(
            key=f"dienst{i:03d}",
            name=f"Dienst {i}",
            owner=rng.choice(cities).key if rng.random() < 0.3 else None,
            leika=f"99{i:012d}" if rng.random() < 0.5 else None,
            topic=f"thema{rng.randrange(N_TOPICS):02d}",
        )
        for i in range(N_SERVICES)
    ]
    return cities, services


def build_rules(
    n: int, rng: random.Random, cities: list[CityInfo], services: list[ServiceInfo]
) -> list[Rule]:
    """A realistic mix: most rules are one city's delegation of one service, some cover a
    topic or audience, some are network-wide by service, a few need words in the text."""
    owned = [s for s in services if s.owner]
    rules = []
    for i in range(n):
        owner = rng.choice(cities).key
        kind = rng.random()
        route_to = rng.choice(cities).key
        if kind < 0.50:
            when = Conditions(origin_city=(owner,), service=(rng.choice(services).key,))
        elif kind < 0.65:
            when = Conditions(
                origin_city=(owner,),
                topic=(f"thema{rng.randrange(N_TOPICS):02d}",),
                audience=rng.choice([None, Audience.internal]),
            )
            route_to = rng.choice([route_to, "origin_city"])
        elif kind < 0.80:
            when = Conditions(
                service=tuple({rng.choice(owned).key for _ in range(2)}),
                audience=rng.choice([None, Audience.internal, Audience.external]),
            )
            route_to = "service_owner"
        elif kind < 0.92:
            when = Conditions(
                service=(rng.choice(services).key,),
                text_any=tuple(rng.sample(TRIGGERS, 2)),
            )
            route_to = rng.choice([route_to, "service_owner"])
        else:
            when = Conditions(origin_city=(owner,), channel=(rng.choice(CHANNELS),))
        status = RuleStatus.active if rng.random() > 0.05 else RuleStatus.proposed
        rules.append(
            Rule(
                id=f"regel-{i:05d}",
                owner=owner,
                priority=rng.choice((10, 50, 100, 100, 100, 200)),
                status=status,
                when=when,
                route_to=route_to,
            )
        )
    return rules


def build_facts(
    count: int, rng: random.Random, cities: list[CityInfo], services: list[ServiceInfo]
) -> list[Facts]:
    facts = []
    for _ in range(count):
        service = rng.choice(services)
        name = service.leika if service.leika and rng.random() < 0.3 else service.key
        words = rng.sample(WORDS, 6)
        if rng.random() < 0.2:
            words.append(rng.choice(TRIGGERS))
        facts.append(
            Facts(
                origin_city=rng.choice(cities).key if rng.random() < 0.95 else None,
                service=name if rng.random() < 0.9 else None,
                audience=rng.choice(list(Audience)),
                channel=rng.choice(CHANNELS),
                text=" ".join(words).capitalize() + "?",
            )
        )
    return facts


def naive_scan(ruleset: RuleSet) -> Callable[[Facts], str]:
    """What one would write without an index: walk the sorted list, test every rule."""
    by_alias = {s.key: s for s in ruleset.services} | {
        s.leika: s for s in ruleset.services if s.leika
    }
    active = {c.key for c in ruleset.cities if c.active}
    rules = sorted(enumerate(ruleset.rules), key=lambda p: (p[1].priority, p[0]))
    prepared = [
        (
            r,
            None if r.when.service is None else {by_alias[s].key for s in r.when.service},
            None if r.when.text_any is None else [fold(t) for t in r.when.text_any],
        )
        for _, r in rules
    ]

    def decide(facts: Facts) -> str:
        info = by_alias.get(facts.service or "")
        text = f" {fold(facts.text or '')} "
        for rule, services, phrases in prepared:
            w = rule.when
            if rule.status is not RuleStatus.active:
                continue
            if w.origin_city is not None and facts.origin_city not in w.origin_city:
                continue
            if services is not None and (info is None or info.key not in services):
                continue
            topic = facts.topic or (info.topic if info else None)
            if w.topic is not None and topic not in w.topic:
                continue
            if w.audience is not None and facts.audience != w.audience:
                continue
            if w.channel is not None and facts.channel not in w.channel:
                continue
            if phrases is not None and not any(f" {p} " in text for p in phrases):
                continue
            target = rule.route_to
            if target == "origin_city":
                target = facts.origin_city or ""
            elif target == "service_owner":
                target = (info.owner if info else None) or ""
            if target in active:
                return target
        return facts.origin_city if facts.origin_city in active else ruleset.default_city

    return decide


def measure(decide: Callable[[Facts], object], facts: list[Facts], runs: int) -> list[list[float]]:
    """Per run, the time of every decision in microseconds."""
    out = []
    for _ in range(runs):
        samples = []
        for f in facts:
            start = time.perf_counter_ns()
            decide(f)
            samples.append((time.perf_counter_ns() - start) / 1000)
        out.append(samples)
    return out


def summary(runs: list[list[float]]) -> str:
    medians = [statistics.median(r) for r in runs]
    p99s = [statistics.quantiles(r, n=100)[98] for r in runs]
    return (
        f"median {statistics.median(medians):8.1f} µs   p99 {statistics.median(p99s):8.1f} µs"
        f" (worst run {max(p99s):8.1f} µs)"
    )


def main() -> None:
    rng = random.Random(20260101)
    cities, services = build_network(rng)
    facts = build_facts(2_000, rng, cities, services)
    print(
        f"{N_CITIES} cities, {N_SERVICES} services, {N_TOPICS} topics; {len(facts)} facts; "
        "times per decision"
    )
    for n in SIZES:
        rules = build_rules(n, rng, cities, services)
        ruleset = RuleSet(cities=cities, services=services, default_city="stadt000", rules=rules)
        start = time.perf_counter()
        router = Router(ruleset)
        build_ms = (time.perf_counter() - start) * 1000
        # Same decisions either way, or the figures mean nothing.
        for f in facts[:200]:
            a, b = router.decide(f), router.decide(f, full_trace=True)
            assert (a.city, a.rule, a.via) == (b.city, b.rule, b.via), f
        indexed = measure(router.decide, facts, runs=5)
        linear_facts = facts if n <= 1_000 else facts[:300]
        linear = measure(
            partial(router.decide, full_trace=True), linear_facts, runs=5 if n <= 1_000 else 3
        )
        naive = measure(naive_scan(ruleset), facts, runs=5 if n <= 1_000 else 3)
        steps = statistics.mean(len(router.decide(f).trace) for f in facts)
        via_rule = sum(router.decide(f).rule is not None for f in facts) / len(facts)
        print(
            f"\n{n:>6} rules  (index built in {build_ms:.1f} ms; {via_rule:.0%} decided by a rule;"
        )
        print(f"              indexed trace has {steps:.1f} steps on average)")
        print(f"  indexed            {summary(indexed)}")
        print(f"  naive linear scan  {summary(naive)}   (no trace)")
        print(f"  full_trace=True    {summary(linear)}   ({len(linear_facts)} facts)")
        start = time.perf_counter()
        warnings = lint(ruleset)
        by_kind = Counter(str(w.kind) for w in warnings)
        print(
            f"  lint               {(time.perf_counter() - start) * 1000:8.1f} ms "
            f"({', '.join(f'{n} {k}' for k, n in sorted(by_kind.items())) or 'no warnings'})"
        )


if __name__ == "__main__":
    main()
