"""Reading and validating rule files: every problem with rule, field and YAML line."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hotline.domain import CHANNELS
from hotline.routing._catalog import Catalog
from hotline.routing._models import (
    DYNAMIC_TARGETS,
    ORIGIN_CITY,
    CityInfo,
    Conditions,
    Rule,
    RuleSet,
    ServiceInfo,
)
from hotline.routing._text import phrase_problem

Path = tuple[str | int, ...]
_TOP_KEYS = ("cities", "services", "fallback", "default_city", "rules")


class RuleProblem(BaseModel):
    """One reason why a rule file is refused."""

    model_config = ConfigDict(frozen=True)

    rule: str | None  # the rule id, None for problems outside a rule (or a rule without id)
    field: str  # e.g. "when.service[1]", "route_to", "rules[3].id", "default_city"
    line: int | None  # 1-based line in the YAML text, when known
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        rule = f"rule {self.rule!r}, " if self.rule is not None else ""
        field = f"field {self.field!r}: " if self.field else ""
        return f"{where}{rule}{field}{self.message}"


class RuleSetError(ValueError):
    """A rule file that does not validate; it is refused as a whole."""

    def __init__(self, problems: Sequence[RuleProblem], *, source: str = "<rules>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}: {len(self.problems)} problem(s), the rule set is refused"
        return "\n".join([head, *(f"{self.source}: {p}" for p in self.problems)])


# --- YAML with line numbers ---------------------------------------------------------------


def _load_yaml(text: str) -> tuple[Any, dict[Path, int], list[tuple[Path, int]]]:
    """The document, the line of every mapping key / sequence item, and duplicate keys."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    duplicates: list[tuple[Path, int]] = []
    if node is None:
        return data, lines, duplicates
    on_path: set[int] = set()

    def walk(current: yaml.Node, path: Path) -> None:
        if id(current) in on_path:  # recursive anchors
            return
        on_path.add(id(current))
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in current.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                if key in seen:
                    duplicates.append(((*path, key), key_node.start_mark.line + 1))
                seen.add(key)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                walk(item, (*path, i))
        on_path.discard(id(current))

    walk(node, ())
    return data, lines, duplicates


def _line_finder(lines: dict[Path, int]) -> Callable[[Path], int | None]:
    def find(path: Path) -> int | None:
        # The most specific known position; a missing field points at its rule.
        while len(path) >= 1:
            if path in lines:
                return lines[path]
            path = path[:-1]
        return None

    return find


def _field_name(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _suggest(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


_FIELDS = {
    "rule": list(Rule.model_fields),
    "when": list(Conditions.model_fields),
    "city": list(CityInfo.model_fields),
    "service": list(ServiceInfo.model_fields),
}


def _pydantic_message(error: Any, kind: str) -> str:
    loc = error["loc"]
    etype = error["type"]
    if etype == "missing":
        return "required field is missing"
    if etype == "extra_forbidden":
        name = str(loc[-1])
        allowed = _FIELDS["when" if kind == "rule" and len(loc) > 1 else kind]
        return f"unknown field {name!r}{_suggest(name, allowed)} (allowed: {', '.join(allowed)})"
    if etype == "int_type":
        return f"must be a whole number, not {error['input']!r}"
    if etype == "bool_type":
        return f"must be true or false, not {error['input']!r}"
    if etype == "string_pattern_mismatch":
        return (
            f"{error['input']!r} may only contain lower-case letters a-z, digits, '-', '_'"
            + (" and '.'" if kind == "rule" else "")
            + " and must start with a letter or digit"
        )
    if etype == "string_too_short" and error["input"] == "":
        return "must not be empty"
    if etype == "too_short":
        return "must not be an empty list; leave the condition out to match any value"
    return str(error["msg"])


# --- parsing ------------------------------------------------------------------------------


def parse_ruleset(
    text: str,
    *,
    source: str = "<rules>",
    cities: list[CityInfo] | None = None,
    services: list[ServiceInfo] | None = None,
    channels: Sequence[str] = CHANNELS,
) -> RuleSet:
    """The rule set in `text`, or RuleSetError listing every problem found.

    `cities:` / `services:` sections in the file take precedence over the `cities` /
    `services` arguments (the database's catalogue); each is taken from one source whole.
    """
    try:
        data, lines, duplicates = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message += f" ({exc.context})"
        line = None if mark is None else mark.line + 1
        raise RuleSetError(
            [RuleProblem(rule=None, field="", line=line, message=message)], source=source
        ) from None
    except yaml.YAMLError as exc:
        raise RuleSetError(
            [RuleProblem(rule=None, field="", line=None, message=f"YAML error: {exc}")],
            source=source,
        ) from None

    line_of = _line_finder(lines)
    problems: list[RuleProblem] = []

    def problem(rule: str | None, field: str, path: Path, message: str) -> None:
        problems.append(RuleProblem(rule=rule, field=field, line=line_of(path), message=message))

    for path, line in duplicates:
        problems.append(
            RuleProblem(
                rule=None,
                field=_field_name(path),
                line=line,
                message=f"duplicate key {path[-1]!r}; the later value would silently win",
            )
        )

    if data is None:
        raise RuleSetError(
            [RuleProblem(rule=None, field="", line=None, message="the file is empty")],
            source=source,
        )
    if not isinstance(data, dict):
        raise RuleSetError(
            [
                RuleProblem(
                    rule=None,
                    field="",
                    line=1,
                    message="a rule file is a mapping with the keys " + ", ".join(_TOP_KEYS),
                )
            ],
            source=source,
        )
    for key in data:
        if key not in _TOP_KEYS:
            problem(
                None,
                str(key),
                (str(key),),
                f"unknown section {key!r}{_suggest(str(key), _TOP_KEYS)} "
                f"(allowed: {', '.join(_TOP_KEYS)})",
            )

    def catalog_section(name: str, model: type[CityInfo] | type[ServiceInfo]) -> list[Any] | None:
        raw = data.get(name)
        if name not in data:
            return None
        if not isinstance(raw, list):
            problem(None, name, (name,), f"{name} must be a list")
            return []
        out = []
        for i, item in enumerate(raw):
            try:
                out.append(model.model_validate(item))
            except ValidationError as exc:
                for error in exc.errors():
                    loc = (name, i, *error["loc"])
                    problem(None, _field_name(loc), loc, _pydantic_message(error, name[:-1]))
        return out

    file_cities = catalog_section("cities", CityInfo)
    file_services = catalog_section("services", ServiceInfo)
    used_cities = file_cities if file_cities is not None else cities
    used_services = file_services if file_services is not None else services
    if used_cities is None:
        problem(
            None,
            "cities",
            (),
            "no cities: the file has no 'cities:' section and no catalogue (database) was supplied",
        )
    if used_services is None:
        problem(
            None,
            "services",
            (),
            "no services: the file has no 'services:' section and no catalogue (database) was "
            "supplied",
        )

    fallback = data.get("fallback", ORIGIN_CITY)
    if not isinstance(fallback, str) or not fallback:
        problem(None, "fallback", ("fallback",), "must be 'origin_city' or a city key")
        fallback = ORIGIN_CITY
    default_city = data.get("default_city")
    if default_city is None:
        problem(None, "default_city", (), "required: the city that decides when nothing else does")
        default_city = ""
    elif not isinstance(default_city, str):
        problem(None, "default_city", ("default_city",), "must be a city key")
        default_city = ""

    raw_rules = data.get("rules")
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        problem(None, "rules", ("rules",), "rules must be a list")
        raw_rules = []
    rules: list[Rule] = []
    file_index: list[int] = []  # position in the file of each valid rule
    for i, raw in enumerate(raw_rules):
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(rule_id, str) or not rule_id:
            rule_id = None
        if not isinstance(raw, dict):
            problem(None, f"rules[{i}]", ("rules", i), "a rule must be a mapping")
            continue
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                bad_id = loc == ("id",)
                field = _field_name(loc)
                problem(
                    None if bad_id else rule_id,
                    f"rules[{i}].{field}" if bad_id or rule_id is None else field,
                    ("rules", i, *loc),
                    _pydantic_message(error, "rule"),
                )
            continue
        rules.append(rule)
        file_index.append(i)

    ruleset = RuleSet.model_construct(
        cities=tuple(used_cities or ()),
        services=tuple(used_services or ()),
        fallback=fallback,
        default_city=default_city,
        rules=tuple(rules),
    )

    def where(path: Path) -> int | None:
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            return line_of(("rules", file_index[path[1]], *path[2:]))
        if path and path[0] in ("cities", "services") and data.get(path[0]) is None:
            return None  # the catalogue came from the database, not from this file
        return line_of(path)

    if used_cities is not None and used_services is not None:
        # Without a catalogue every reference would be "unknown": one problem says it all.
        problems.extend(
            _check(ruleset, channels=channels, where=where, check_top=bool(default_city))
        )
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise RuleSetError(problems, source=source)
    return RuleSet(
        cities=ruleset.cities,
        services=ruleset.services,
        fallback=fallback,
        default_city=default_city,
        rules=ruleset.rules,
    )


def validate_ruleset(ruleset: RuleSet, *, channels: Sequence[str] = CHANNELS) -> list[RuleProblem]:
    """Cross-reference problems of a rule set built in code (e.g. from database rows); the
    same checks parse_ruleset applies, without line numbers."""
    return _check(ruleset, channels=channels, where=lambda path: None)


def _check(
    ruleset: RuleSet,
    *,
    channels: Sequence[str],
    where: Callable[[Path], int | None],
    check_top: bool = True,
) -> list[RuleProblem]:
    problems: list[RuleProblem] = []

    def problem(rule: str | None, field: str, path: Path, message: str) -> None:
        problems.append(RuleProblem(rule=rule, field=field, line=where(path), message=message))

    cat = Catalog(ruleset.cities, ruleset.services)
    city_keys = list(cat.cities)

    def city_problem(key: str) -> str | None:
        if key in cat.cities:
            return None
        return f"unknown city {key!r}{_suggest(key, city_keys)}"

    seen: set[str] = set()
    for i, city in enumerate(ruleset.cities):
        if city.key in seen:
            problem(None, f"cities[{i}].key", ("cities", i, "key"), f"duplicate city {city.key!r}")
        if city.key in DYNAMIC_TARGETS:
            problem(
                None,
                f"cities[{i}].key",
                ("cities", i, "key"),
                f"{city.key!r} is reserved for rule targets and cannot be a city key",
            )
        seen.add(city.key)
    names: dict[str, str] = {}  # key or LeiKa key -> the service it names
    for i, service in enumerate(ruleset.services):
        if service.key in names:
            earlier = names[service.key]
            problem(
                None,
                f"services[{i}].key",
                ("services", i, "key"),
                f"duplicate service {service.key!r}"
                if earlier == service.key
                else f"{service.key!r} is already the LeiKa key of service {earlier!r}",
            )
        names.setdefault(service.key, service.key)
        if service.leika is not None:
            # Several services may share a LeiKa key; it must not clash with a service key.
            if service.leika in names and names[service.leika] == service.leika:
                problem(
                    None,
                    f"services[{i}].leika",
                    ("services", i, "leika"),
                    f"{service.leika!r} is already the key of another service",
                )
            names.setdefault(service.leika, service.key)
        if service.owner is not None and (msg := city_problem(service.owner)):
            problem(None, f"services[{i}].owner", ("services", i, "owner"), msg)

    if check_top:
        if ruleset.fallback != ORIGIN_CITY and (msg := city_problem(ruleset.fallback)):
            problem(None, "fallback", ("fallback",), msg + " (or 'origin_city')")
        if msg := city_problem(ruleset.default_city):
            problem(None, "default_city", ("default_city",), msg)
        elif not cat.is_active(ruleset.default_city):
            problem(
                None,
                "default_city",
                ("default_city",),
                f"{ruleset.default_city!r} is inactive; the last resort must be an active city",
            )

    service_names = sorted({*cat.services, *(s.leika for s in cat.services.values() if s.leika)})
    topics = sorted(cat.topics)
    first_seen: dict[str, int] = {}
    for ri, rule in enumerate(ruleset.rules):
        base: Path = ("rules", ri)

        def rule_problem(field: str, path: Path, message: str, rule: Rule = rule) -> None:
            problem(rule.id, field, path, message)

        if rule.id in first_seen:
            line = where(("rules", first_seen[rule.id]))
            rule_problem(
                "id",
                (*base, "id"),
                "duplicate rule id" + (f"; first used on line {line}" if line else ""),
            )
        else:
            first_seen[rule.id] = ri
        if msg := city_problem(rule.owner):
            rule_problem("owner", (*base, "owner"), msg)
        if rule.route_to not in DYNAMIC_TARGETS and (msg := city_problem(rule.route_to)):
            rule_problem(
                "route_to",
                (*base, "route_to"),
                msg.replace("unknown city", "target city does not exist:")
                + " (or 'origin_city', 'service_owner')",
            )
        when = rule.when
        for j, key in enumerate(when.origin_city or ()):
            if msg := city_problem(key):
                rule_problem(f"when.origin_city[{j}]", (*base, "when", "origin_city", j), msg)
        for j, name in enumerate(when.service or ()):
            if cat.service_key(name) is None:
                rule_problem(
                    f"when.service[{j}]",
                    (*base, "when", "service", j),
                    f"unknown service {name!r}{_suggest(name, service_names)} "
                    "(a service key or LeiKa key)",
                )
        if topics:
            for j, topic in enumerate(when.topic or ()):
                if topic not in cat.topics:
                    rule_problem(
                        f"when.topic[{j}]",
                        (*base, "when", "topic", j),
                        f"unknown topic {topic!r}{_suggest(topic, topics)} "
                        f"(known: {', '.join(topics)})",
                    )
        for j, channel in enumerate(when.channel or ()):
            if channel not in channels:
                rule_problem(
                    f"when.channel[{j}]",
                    (*base, "when", "channel", j),
                    f"unknown channel {channel!r} (known: {', '.join(channels)})",
                )
        for j, phrase in enumerate(when.text_any or ()):
            if msg := phrase_problem(phrase):
                rule_problem(f"when.text_any[{j}]", (*base, "when", "text_any", j), msg)
        if rule.route_to == "service_owner" and when.service is not None:
            infos = [cat.service(name) for name in when.service]
            if infos and all(info is not None and info.owner is None for info in infos):
                rule_problem(
                    "route_to",
                    (*base, "route_to"),
                    "route_to service_owner, but none of the services in the condition has an "
                    "owner city, so the rule can never decide",
                )
    return problems


def catalog_from_yaml(
    cities_yaml: str, services_yaml: str
) -> tuple[list[CityInfo], list[ServiceInfo]]:
    """The catalogue from files in the layout of hotline/demo/cities.yml and services.yml;
    fields routing does not use (ags, service hours, ...) are ignored."""
    raw_cities = yaml.safe_load(cities_yaml) or []
    raw_services = yaml.safe_load(services_yaml) or []
    if not isinstance(raw_cities, list) or not isinstance(raw_services, list):
        raise ValueError("catalogue files must be YAML lists")
    city_fields = set(CityInfo.model_fields)
    service_fields = set(ServiceInfo.model_fields)
    cities = [
        CityInfo.model_validate({k: v for k, v in item.items() if k in city_fields})
        for item in raw_cities
    ]
    services = [
        ServiceInfo.model_validate(
            {
                ("leika" if k == "leika_key" else k): v
                for k, v in item.items()
                if k in service_fields or k == "leika_key"
            }
        )
        for item in raw_services
    ]
    return cities, services
