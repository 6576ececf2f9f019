"""Routing rules in the database: the current rule set, its cached router, changes and tools."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from hotline.db import utcnow
from hotline.errors import Conflict, Forbidden, InvalidInput, NotFound, VersionConflict
from hotline.models import (
    City,
    Role,
    RoutingConfig,
    RoutingRule,
    RoutingRuleEvent,
    RuleStatus,
    Service,
    Ticket,
)
from hotline.routing import (
    CHANNELS,
    CityInfo,
    Facts,
    ReplayTicket,
    Router,
    Rule,
    RuleProblem,
    RuleSet,
    RuleSetError,
    ServiceInfo,
    delegation_target,
    needs_acceptance,
    parse_ruleset,
    validate_ruleset,
)
from hotline.services.actors import Actor
from hotline.services.catalog import city_keys

# --- reading the current rule set --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    fallback: str
    default_city: str
    generation: int


def routing_config(session: Session, *, default_city: str) -> RoutingSettings:
    """The stored routing settings; the setting HOTLINE_DEFAULT_CITY fills what is not stored."""
    config = session.get(RoutingConfig, 1)
    if config is None:
        return RoutingSettings("origin_city", default_city, 0)
    return RoutingSettings(config.fallback, config.default_city or default_city, config.generation)


def bump_generation(session: Session) -> None:
    """Mark rules or catalogue as changed so every process rebuilds its router on next use."""
    config = session.get(RoutingConfig, 1)
    if config is None:
        config = RoutingConfig(id=1, generation=0)
    config.generation += 1
    config.updated_at = utcnow()
    session.add(config)
    session.flush()


def catalog(session: Session) -> tuple[list[CityInfo], list[ServiceInfo]]:
    cities = session.exec(select(City).order_by(col(City.id))).all()
    keys = {c.id: c.key for c in cities}
    services = session.exec(select(Service).order_by(col(Service.id))).all()
    return (
        [CityInfo(key=c.key, name=c.name, active=c.active) for c in cities],
        [
            ServiceInfo(
                key=s.key,
                name=s.name,
                owner=keys.get(s.owner_city_id) if s.owner_city_id else None,
                leika=s.leika_key,
                topic=s.topic,
            )
            for s in services
        ],
    )


def rule_from_row(row: RoutingRule, keys: dict[int, str]) -> Rule:
    return Rule.model_validate(
        {
            "id": row.rule_key,
            "owner": keys[row.owner_city_id],
            "priority": row.priority,
            "status": row.status,
            "when": row.conditions or {},
            "route_to": row.route_to,
            "sla_hours": row.sla_hours,
            "description": row.description,
            "version": row.version,
        }
    )


def ordered_rules(session: Session) -> list[RoutingRule]:
    stmt = select(RoutingRule).order_by(
        col(RoutingRule.priority), col(RoutingRule.position), col(RoutingRule.id)
    )
    return list(session.exec(stmt).all())


def current_ruleset(session: Session, *, default_city: str) -> RuleSet:
    cities, services = catalog(session)
    keys = city_keys(session)
    config = routing_config(session, default_city=default_city)
    return RuleSet(
        cities=tuple(cities),
        services=tuple(services),
        fallback=config.fallback,
        default_city=config.default_city,
        rules=tuple(rule_from_row(r, keys) for r in ordered_rules(session)),
    )


@dataclass
class RouterCache:
    """One compiled router per process, rebuilt when the stored generation changes."""

    generation: int | None = None
    router: Router | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, session: Session, *, default_city: str) -> Router:
        generation = routing_config(session, default_city=default_city).generation
        with self.lock:
            if self.router is not None and self.generation == generation:
                return self.router
        router = Router(current_ruleset(session, default_city=default_city))
        with self.lock:
            self.router, self.generation = router, generation
        return router


# --- permissions -------------------------------------------------------------------------------


def _is_admin_of(actor: Actor, city_id: int | None) -> bool:
    if actor.network:
        return True
    if actor.role is not None and actor.role not in (Role.city_admin, Role.coordinator):
        return False  # agents read rules, they do not change them
    return city_id is not None and actor.city_id == city_id


def _require_admin(actor: Actor, city: City, what: str) -> None:
    if not _is_admin_of(actor, city.id):
        raise Forbidden(
            f"Only an admin of {city.name} or a coordinator may {what}.", code="not_rule_admin"
        )


# --- changes -----------------------------------------------------------------------------------


def _problems_error(problems: list[RuleProblem], source: str) -> InvalidInput:
    lines = [
        f"{source}{':' + str(p.line) if p.line else ''}: "
        f"{'rule ' + repr(p.rule) + ', ' if p.rule else ''}{p.field}: {p.message}"
        for p in problems
    ]
    return InvalidInput(
        "; ".join(lines)[:4000],
        code="invalid_rules",
        problems=[
            {"rule": p.rule, "field": p.field, "line": p.line, "message": p.message}
            for p in problems
        ],
    )


def _validate(session: Session, ruleset: RuleSet, source: str) -> None:
    problems = validate_ruleset(ruleset, channels=CHANNELS)
    if problems:
        raise _problems_error(problems, source)


def _city(session: Session, key: str) -> City:
    city = session.exec(select(City).where(City.key == key)).first()
    if city is None:
        raise InvalidInput(f"Unknown city {key!r}.", code="unknown_city")
    return city


def _event(
    session: Session,
    actor: Actor,
    key: str,
    version: int,
    kind: str,
    before: Rule | None,
    after: Rule | None,
) -> None:
    session.add(
        RoutingRuleEvent(
            rule_key=key,
            version=version,
            kind=kind,
            actor=actor.label[:120],
            before=before.to_dict() if before else None,
            after=after.to_dict() if after else None,
        )
    )


def _store(row: RoutingRule, rule: Rule, owner: City) -> None:
    row.rule_key = rule.id
    row.owner_city_id = owner.id or 0
    row.priority = rule.priority
    row.status = RuleStatus(str(rule.status))
    row.conditions = rule.when.to_dict()
    row.route_to = rule.route_to
    row.sla_hours = rule.sla_hours
    row.description = rule.description
    row.updated_at = utcnow()


def _status_for(actor: Actor, session: Session, new: Rule, old: Rule | None) -> RuleStatus:
    """A delegation stays proposed unless the actor may accept it for the receiving city."""
    if needs_acceptance(new, old):
        target = delegation_target(new)
        target_city = (
            session.exec(select(City).where(City.key == target)).first() if target else None
        )
        if not (target_city and _is_admin_of(actor, target_city.id)):
            return RuleStatus.proposed
        return RuleStatus(str(new.status))
    if old is not None and str(new.status) != str(old.status) and old.status == RuleStatus.proposed:
        # Accepting goes through accept_rule, where the receiving city decides.
        return RuleStatus.proposed
    return RuleStatus(str(new.status))


def parse_rule(data: dict[str, Any]) -> Rule:
    try:
        return Rule.model_validate({**data, "version": data.get("version") or 1})
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(detail, code="invalid_rule") from exc


def save_rule(
    session: Session,
    actor: Actor,
    data: dict[str, Any],
    *,
    default_city: str,
    version: int | None = None,
    key: str | None = None,
) -> RoutingRule:
    """Create (key None) or replace (key given, `version` must match) one rule."""
    rule = parse_rule(data)
    owner = _city(session, rule.owner)
    _require_admin(actor, owner, "change this city's rules")
    keys = city_keys(session)
    old_row: RoutingRule | None = None
    old: Rule | None = None
    if key is not None:
        old_row = session.exec(
            select(RoutingRule).where(RoutingRule.rule_key == key).with_for_update()
        ).first()
        if old_row is None:
            raise NotFound(f"There is no rule {key!r}.", code="rule_not_found")
        old = rule_from_row(old_row, keys)
        _require_admin(actor, session.get_one(City, old_row.owner_city_id), "change this rule")
        if version is None or version != old_row.version:
            raise VersionConflict(
                f"Rule {key} was changed meanwhile (your version {version}, current {old_row.version}).",
                current_version=old_row.version,
            )
        if (
            rule.id != key
            and session.exec(select(RoutingRule).where(RoutingRule.rule_key == rule.id)).first()
        ):
            raise Conflict(f"A rule {rule.id!r} exists already.", code="duplicate_rule")
    elif session.exec(select(RoutingRule).where(RoutingRule.rule_key == rule.id)).first():
        raise Conflict(f"A rule {rule.id!r} exists already.", code="duplicate_rule")
    status = _status_for(actor, session, rule, old)
    new_version = (old_row.version + 1) if old_row else 1
    rule = rule.model_copy(update={"status": status, "version": new_version})
    # The whole set must stay valid with the change (unknown keys, targets, values).
    current = current_ruleset(session, default_city=default_city)
    others = [r for r in current.rules if r.id != (key or rule.id)]
    _validate(session, current.model_copy(update={"rules": (*others, rule)}), f"rule {rule.id}")
    row = old_row or RoutingRule(
        rule_key=rule.id,
        owner_city_id=owner.id or 0,
        route_to=rule.route_to,
        position=_next_position(session),
    )
    _store(row, rule, owner)
    row.version = new_version
    session.add(row)
    _event(session, actor, rule.id, new_version, "updated" if old_row else "created", old, rule)
    bump_generation(session)
    session.flush()
    return row


def _next_position(session: Session) -> int:
    rows = session.exec(select(RoutingRule.position)).all()
    return max(rows, default=-1) + 1


def get_rule(session: Session, key: str) -> RoutingRule:
    row = session.exec(select(RoutingRule).where(RoutingRule.rule_key == key)).first()
    if row is None:
        raise NotFound(f"There is no rule {key!r}.", code="rule_not_found")
    return row


def delete_rule(
    session: Session, actor: Actor, key: str, *, version: int, default_city: str
) -> None:
    row = get_rule(session, key)
    _require_admin(actor, session.get_one(City, row.owner_city_id), "delete this rule")
    if row.version != version:
        raise VersionConflict(f"Rule {key} was changed meanwhile.", current_version=row.version)
    keys = city_keys(session)
    _event(session, actor, key, row.version, "deleted", rule_from_row(row, keys), None)
    session.delete(row)
    bump_generation(session)
    session.flush()


def decide_delegation(
    session: Session, actor: Actor, key: str, *, accept: bool, default_city: str
) -> RoutingRule:
    """The receiving city (or a coordinator) accepts or rejects a proposed delegation."""
    row = session.exec(
        select(RoutingRule).where(RoutingRule.rule_key == key).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"There is no rule {key!r}.", code="rule_not_found")
    keys = city_keys(session)
    before = rule_from_row(row, keys)
    target = delegation_target(before)
    if target is None:
        raise InvalidInput(
            f"Rule {key} is not a delegation to another city.", code="not_a_delegation"
        )
    if row.status != RuleStatus.proposed:
        raise Conflict(f"Rule {key} is {row.status}, not proposed.", code="not_proposed")
    _require_admin(actor, _city(session, target), "accept or reject delegations to this city")
    row.status = RuleStatus.active if accept else RuleStatus.rejected
    row.version += 1
    row.updated_at = utcnow()
    session.add(row)
    _event(
        session,
        actor,
        key,
        row.version,
        "accepted" if accept else "rejected",
        before,
        rule_from_row(row, keys),
    )
    bump_generation(session)
    session.flush()
    return row


def rule_history(session: Session, key: str) -> list[RoutingRuleEvent]:
    stmt = (
        select(RoutingRuleEvent)
        .where(RoutingRuleEvent.rule_key == key)
        .order_by(col(RoutingRuleEvent.id))
    )
    events = list(session.exec(stmt).all())
    if not events:
        get_rule(session, key)
    return events


# --- files: parse against the database, import, export -----------------------------------------


def parse_against_db(session: Session, text: str, *, source: str, default_city: str) -> RuleSet:
    """Parse a rule file; its rules must fit the database's cities and services."""
    cities, services = catalog(session)
    try:
        parsed = parse_ruleset(
            text, source=source, cities=cities, services=services, channels=CHANNELS
        )
    except RuleSetError as exc:
        raise _problems_error(exc.problems, source) from exc
    # A file may carry its own catalogue for offline checks; importing uses the database's.
    in_db = parsed.model_copy(update={"cities": tuple(cities), "services": tuple(services)})
    _validate(session, in_db, source)
    return in_db


@dataclass(slots=True)
class ImportSummary:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    proposed: list[str] = field(default_factory=list)


def import_rules(
    session: Session, actor: Actor, text: str, *, source: str, default_city: str
) -> ImportSummary:
    """Replace the network's rule set (coordinators) or one city's own rules (its admin)."""
    ruleset = parse_against_db(session, text, source=source, default_city=default_city)
    cities = {c.key: c for c in session.exec(select(City)).all()}
    keys = {c.id: c.key for c in cities.values() if c.id is not None}
    existing = {r.rule_key: r for r in ordered_rules(session)}
    if actor.network:
        replace = set(existing)
        config = session.get(RoutingConfig, 1) or RoutingConfig(id=1, generation=0)
        config.fallback, config.default_city = ruleset.fallback, ruleset.default_city
        session.add(config)
    else:
        if actor.role not in (None, Role.city_admin):
            raise Forbidden(
                "Only city admins and coordinators import rules.", code="not_rule_admin"
            )
        own = {k for k, r in existing.items() if r.owner_city_id == actor.city_id}
        foreign = [r.id for r in ruleset.rules if cities[r.owner].id != actor.city_id]
        if foreign:
            raise Forbidden(
                f"The file has rules of other cities ({', '.join(foreign[:5])}); a city admin imports "
                "only the own city's rules.",
                code="not_rule_admin",
            )
        taken = [r.id for r in ruleset.rules if r.id in existing and r.id not in own]
        if taken:
            raise Conflict(
                f"Rule ids used by other cities: {', '.join(taken[:5])}.", code="duplicate_rule"
            )
        replace = own
        current = routing_config(session, default_city=default_city)
        if (ruleset.fallback, ruleset.default_city) != (current.fallback, current.default_city):
            raise Forbidden(
                "Only a coordinator changes fallback and default_city.", code="not_rule_admin"
            )
    summary = ImportSummary()
    seen: set[str] = set()
    for position, rule in enumerate(ruleset.rules):
        row = existing.get(rule.id)
        old = rule_from_row(row, keys) if row and rule.id in replace else None
        status = _status_for(actor, session, rule, old)
        same = old is not None and old.model_dump(exclude={"version"}) == rule.model_copy(
            update={"status": status}
        ).model_dump(exclude={"version"})
        if row is None:
            row = RoutingRule(rule_key=rule.id, owner_city_id=0, route_to=rule.route_to, version=0)
            summary.created += 1
        elif not same:
            summary.updated += 1
        stored = rule.model_copy(
            update={
                "status": status,
                "version": row.version if same else row.version + 1,
            }
        )
        _store(row, stored, cities[rule.owner])
        row.position = position
        if not same:
            row.version = stored.version
            _event(session, actor, rule.id, row.version, "imported", old, stored)
        if status == RuleStatus.proposed:
            summary.proposed.append(rule.id)
        session.add(row)
        seen.add(rule.id)
    for key in replace - seen:
        row = existing[key]
        _event(session, actor, key, row.version, "deleted", rule_from_row(row, keys), None)
        session.delete(row)
        summary.deleted += 1
    bump_generation(session)
    session.flush()
    return summary


def export_rules(session: Session, *, default_city: str) -> str:
    return current_ruleset(session, default_city=default_city).to_yaml(include_catalog=False)


# --- replay ------------------------------------------------------------------------------------


def ticket_facts(
    ticket: Ticket, keys: dict[int, str], service_keys: dict[int, str], text: str
) -> Facts:
    return Facts(
        origin_city=keys.get(ticket.origin_city_id) if ticket.origin_city_id else None,
        service=service_keys.get(ticket.service_id) if ticket.service_id else None,
        topic=ticket.topic,
        audience=ticket.audience,
        channel=ticket.channel,
        text=text,
    )


def recent_tickets(session: Session, actor: Actor, *, days: int) -> Iterable[ReplayTicket]:
    """The tickets of the last `days` days the actor may see, as routing facts."""
    from hotline.models import Message, MessageKind

    since = utcnow() - timedelta(days=days)
    stmt = select(Ticket).where(col(Ticket.created_at) >= since)
    if not actor.network:
        stmt = stmt.where(Ticket.responsible_city_id == actor.city_id)
    tickets = list(session.exec(stmt.order_by(col(Ticket.id))).all())
    keys = city_keys(session)
    service_keys = {s.id: s.key for s in session.exec(select(Service)).all() if s.id is not None}
    first_bodies: dict[int, str] = {}
    if tickets:
        ids = [t.id for t in tickets]
        for m in session.exec(
            select(Message)
            .where(col(Message.ticket_id).in_(ids), Message.kind == MessageKind.citizen)
            .order_by(col(Message.id))
        ).all():
            first_bodies.setdefault(m.ticket_id, m.body)
    for t in tickets:
        yield ReplayTicket(
            ref=t.reference,
            facts=ticket_facts(
                t, keys, service_keys, f"{t.subject}\n{first_bodies.get(t.id or 0, '')}"
            ),
            current_city=keys[t.responsible_city_id],
        )


def load_yaml_text(raw: bytes, *, limit: int) -> str:
    if len(raw) > limit:
        raise InvalidInput("The rule file is too large.", code="payload_too_large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The rule file is not UTF-8 text.", code="invalid_rules") from exc
