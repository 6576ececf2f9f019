"""Lint of a valid rule set: shadowed rules, ambiguous overlaps, pending delegations,
inactive targets and origin/audience gaps that only the fallback decides."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from hotline.routing._catalog import AUDIENCE_DE
from hotline.routing._delegation import delegation_target
from hotline.routing._engine import DIMENSIONS, CompiledRule, Router, iter_bits
from hotline.routing._models import (
    DYNAMIC_TARGETS,
    ORIGIN_CITY,
    SERVICE_OWNER,
    Audience,
    RuleSet,
    RuleStatus,
)
from hotline.routing._text import phrase_key


class LintKind(StrEnum):
    SHADOWED = "shadowed"
    OVERLAP = "overlap"
    PROPOSED_DELEGATION = "proposed_delegation"
    INACTIVE_TARGET = "inactive_target"
    GAP = "gap"


class LintWarning(BaseModel):
    """A finding that does not make the rule set invalid but deserves a look."""

    model_config = ConfigDict(frozen=True)

    kind: LintKind
    rule: str | None
    message: str  # German, shown to city admins
    related: str | None = None  # the other rule (shadowed by / overlaps with)
    origin_city: str | None = None  # gaps
    audience: Audience | None = None  # gaps


def lint(ruleset: RuleSet) -> list[LintWarning]:
    """Every finding, ordered by kind and then by evaluation order."""
    return _Linter(Router(ruleset)).run()


class _Linter:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.cat = router.catalog
        self.compiled = router.compiled
        self.active = 0  # active rules whose fixed target is active (or that route dynamically)
        self.live = 0  # rules that are not rejected
        self.without_text = 0
        self.by_priority: dict[int, int] = {}
        self.by_target: dict[str, int] = {}
        for c in self.compiled:
            bit = 1 << c.rank
            rule = c.rule
            if rule.status is not RuleStatus.rejected:
                self.live |= bit
            if rule.status is RuleStatus.active and (
                rule.route_to in DYNAMIC_TARGETS or self.cat.is_active(rule.route_to)
            ):
                self.active |= bit
            if c.text is None:
                self.without_text |= bit
            self.by_priority[rule.priority] = self.by_priority.get(rule.priority, 0) | bit
            self.by_target[rule.route_to] = self.by_target.get(rule.route_to, 0) | bit

    def run(self) -> list[LintWarning]:
        out: list[LintWarning] = []
        shadowed: set[str] = set()
        for c in self.compiled:
            if c.rule.status is RuleStatus.rejected:
                continue
            warning = self._shadowed(c)
            if warning is not None:
                shadowed.add(c.rule.id)
                out.append(warning)
        for c in self.compiled:
            if c.rule.status is not RuleStatus.rejected and c.rule.id not in shadowed:
                warning = self._overlap(c)
                if warning is not None:
                    out.append(warning)
        out.extend(self._proposed_delegations())
        out.extend(self._inactive_targets())
        out.extend(self._gaps())
        order = list(LintKind)
        return sorted(out, key=lambda w: order.index(w.kind))

    # --- masks ----------------------------------------------------------------------------

    def _covering(self, c: CompiledRule) -> int:
        """Rules whose indexed conditions hold whenever those of `c` hold."""
        router = self.router
        mask = router.all_mask
        for dimension in DIMENSIONS:
            wildcard = router.wildcard[dimension]
            specific = router.specific[dimension]
            values = c.values(dimension)
            if values is None:
                mask &= wildcard
            else:
                for value in values:
                    mask &= wildcard | specific.get(value, 0)
            if not mask:
                break
        return mask

    def _intersecting(self, c: CompiledRule) -> int:
        """Rules whose indexed conditions can hold together with those of `c`."""
        router = self.router
        mask = router.all_mask
        for dimension in DIMENSIONS:
            values = c.values(dimension)
            if values is None:
                continue
            allowed = router.wildcard[dimension]
            specific = router.specific[dimension]
            for value in values:
                allowed |= specific.get(value, 0)
            mask &= allowed
            if not mask:
                break
        return mask

    # --- kinds ----------------------------------------------------------------------------

    def _shadowed(self, c: CompiledRule) -> LintWarning | None:
        earlier = (1 << c.rank) - 1
        mask = self._covering(c) & self.active & earlier
        if c.text is None:
            mask &= self.without_text
        for rank in iter_bits(mask):
            a = self.compiled[rank]
            if self._text_covers(a, c) and self._target_sure(a, c):
                return LintWarning(
                    kind=LintKind.SHADOWED,
                    rule=c.rule.id,
                    related=a.rule.id,
                    message=(
                        f"Regel {c.rule.id} kann nie entscheiden: die frühere Regel {a.rule.id} "
                        f"(Priorität {a.rule.priority}) passt immer, wenn sie passt."
                    ),
                )
        return None

    @staticmethod
    def _text_covers(a: CompiledRule, c: CompiledRule) -> bool:
        if a.rule.when.text_any is None:
            return True
        if c.rule.when.text_any is None:
            return False
        # Conservative: a phrase of c finds a text only if a has the very same phrase.
        return {phrase_key(p) for p in c.rule.when.text_any} <= {
            phrase_key(p) for p in a.rule.when.text_any
        }

    def _target_sure(self, a: CompiledRule, c: CompiledRule) -> bool:
        """Whether a's target is known and active for every question c would match."""
        route = a.rule.route_to
        if route == ORIGIN_CITY:
            return c.origin_city is not None and all(self.cat.is_active(k) for k in c.origin_city)
        if route == SERVICE_OWNER:
            if c.service is None:
                return False
            owners = [
                self.cat.services[k].owner if k in self.cat.services else None for k in c.service
            ]
            return all(self.cat.is_active(o) for o in owners)
        return True

    def _overlap(self, c: CompiledRule) -> LintWarning | None:
        earlier = (1 << c.rank) - 1
        mask = (
            self._intersecting(c)
            & self.live
            & earlier
            & self.by_priority[c.rule.priority]
            & ~self.by_target[c.rule.route_to]
        )
        if not mask:
            return None
        first = self.compiled[(mask & -mask).bit_length() - 1]
        others = mask.bit_count() - 1
        more = f" (und {others} weitere)" if others else ""
        return LintWarning(
            kind=LintKind.OVERLAP,
            rule=c.rule.id,
            related=first.rule.id,
            message=(
                f"Regel {c.rule.id} überschneidet sich mit {first.rule.id}{more} bei gleicher "
                f"Priorität {c.rule.priority}, aber anderem Ziel ({c.rule.route_to} statt "
                f"{first.rule.route_to}); nur die Reihenfolge in der Datei entscheidet. "
                "Bitte Prioritäten unterscheiden oder Bedingungen trennen."
            ),
        )

    def _proposed_delegations(self) -> list[LintWarning]:
        out = []
        for c in self.compiled:
            rule = c.rule
            target = delegation_target(rule)
            if rule.status is RuleStatus.proposed and target is not None:
                out.append(
                    LintWarning(
                        kind=LintKind.PROPOSED_DELEGATION,
                        rule=rule.id,
                        message=(
                            f"Delegation von {self.cat.city_name(rule.owner)} an "
                            f"{self.cat.city_name(target)} ist vorgeschlagen und wartet auf die "
                            f"Annahme durch {self.cat.city_name(target)}; bis dahin gilt sie nicht."
                        ),
                    )
                )
        return out

    def _inactive_targets(self) -> list[LintWarning]:
        out = []
        for c in self.compiled:
            rule = c.rule
            if (
                rule.status is not RuleStatus.rejected
                and rule.route_to not in DYNAMIC_TARGETS
                and not self.cat.is_active(rule.route_to)
            ):
                out.append(
                    LintWarning(
                        kind=LintKind.INACTIVE_TARGET,
                        rule=rule.id,
                        message=(
                            f"Regel {rule.id} leitet an {self.cat.city_name(rule.route_to)}, "
                            "die Stadt ist nicht aktiv; die Regel wird übersprungen."
                        ),
                    )
                )
        fallback = self.router.ruleset.fallback
        if fallback != ORIGIN_CITY and not self.cat.is_active(fallback):
            out.append(
                LintWarning(
                    kind=LintKind.INACTIVE_TARGET,
                    rule=None,
                    message=(
                        f"Die Rückfallstadt {self.cat.city_name(fallback)} ist nicht aktiv; "
                        "ohne passende Regel entscheidet die Standardstadt."
                    ),
                )
            )
        return out

    def _gaps(self) -> list[LintWarning]:
        router = self.router
        out = []
        ruleset = router.ruleset
        for city in ruleset.cities:
            if not city.active:
                continue
            origin = router.wildcard["origin_city"] | router.specific["origin_city"].get(
                city.key, 0
            )
            for audience in Audience:
                mask = (
                    origin
                    & (
                        router.wildcard["audience"]
                        | router.specific["audience"].get(str(audience), 0)
                    )
                    & self.active
                )
                if mask:
                    continue
                if ruleset.fallback == ORIGIN_CITY:
                    then = city.name
                elif self.cat.is_active(ruleset.fallback):
                    then = self.cat.city_name(ruleset.fallback)
                else:
                    then = self.cat.city_name(ruleset.default_city)
                out.append(
                    LintWarning(
                        kind=LintKind.GAP,
                        rule=None,
                        origin_city=city.key,
                        audience=audience,
                        message=(
                            f"Für Fragen aus {city.name} (Zielgruppe "
                            f"{AUDIENCE_DE[str(audience)]}) gibt es keine Regel; es entscheidet "
                            f"immer die Rückfallregel (zuständig: {then})."
                        ),
                    )
                )
        return out
