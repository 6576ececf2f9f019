"""The learned answer decision (fifteenth round): how likely is the best entry the right one?

The hand rule (`Thresholds`: score bar, lead over the runner-up, dominance, long-question relief,
unknown-word guard) looks at two or three numbers of the ranked list. With over 3,000 labelled
questions (tests/data/kb_*.jsonl) a gradient-boosted tree ensemble over some twenty features of
the ranked list tells right from wrong best entries better: it learns, for instance, that a
moderate score with a wide lead and a good variant overlap is safe, or that a high score whose
runner-up covers a question word the best entry lacks is not.

The model is trained offline with scikit-learn (`python -m kb.confidence train`) and shipped as
plain data (`kb/data/confidence.json`: the trees' split features, thresholds, children and leaf
values). Evaluating it is a walk down each tree, no pickle; `tests/kb/test_confidence.py` checks
that this walk gives scikit-learn's own probabilities. Since the twenty-first round the features
include the variant classifier's opinion (`kb._classifier`); its twin `confidence_plain.json`,
trained with the classifier off, decides for KBs too large or too small for the classifier.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kb._matcher import Matcher, _Ranked

SHIPPED = Path(__file__).parent / "data" / "confidence.json"
# The same model trained with the variant classifier off (`Weights.classifier` = 0): for KBs
# above `Matcher.classifier_max_entries`, whose classifier features are always 0.
SHIPPED_PLAIN = Path(__file__).parent / "data" / "confidence_plain.json"

# An idf this high (ln(1 + …)) marks a word found in at most a few entries.
RARE_IDF = 2.5
_PARTS = ("words", "chars", "fuzzy", "dice", "body", "city", "profile", "classifier")
FEATURES: tuple[str, ...] = (
    "score",  # the best entry's score (0–100)
    "margin",  # its lead over the runner-up
    "lead2",  # the runner-up's lead over the third
    "same_service",  # the runner-up is of the same service (a sibling)
    "coverage",  # share of the question's weighted words the best entry covers
    "own_share",  # … that it covers and the runner-up does not
    "runner_up_share",  # … that the runner-up covers and the best entry does not
    "unknown_share",  # … that no entry of the KB knows
    "rare_words",  # how many rare words (idf ≥ RARE_IDF) the best entry covers
    "length",  # content words of the question
    "long",  # 1 for a long question (`Thresholds.long_words` content words or more)
    "other_body",  # question words naming another body the best entry never names (bank …)
    "class_agree",  # 1 when the variant classifier also likes the best entry most (`kb._classifier`)
    *(f"best_{part}" for part in _PARTS),  # the best entry's feature scores (0–1)
    *(f"diff_{part}" for part in _PARTS),  # … minus the runner-up's
)


def features(matcher: Matcher, ranked: _Ranked) -> list[float]:
    """The feature vector of one question's ranked list (order: `FEATURES`)."""
    from kb._matcher import _idf

    docs = matcher._docs
    weights = ranked.term_weights
    total = sum(weights.values()) or 1.0
    scored, slots, found = ranked.scored, ranked.slots, ranked.candidates
    best_doc = docs[slots[0]]
    best_terms = set(best_doc.terms)
    best = scored[0][1]
    second = scored[1][1] if len(scored) > 1 else 0.0
    third = scored[2][1] if len(scored) > 2 else 0.0
    if len(scored) > 1:
        other_doc = docs[slots[1]]
        other_terms = set(other_doc.terms)
        same_service = float(other_doc.entry.service == best_doc.entry.service)
    else:
        other_terms, same_service = set(), 0.0
    known = matcher._df_words
    n = len(docs)
    covered = [t for t in weights if t in best_terms]
    own = sum(weights[t] for t in covered if t not in other_terms)
    runner_up = sum(v for t, v in weights.items() if t in other_terms and t not in best_terms)
    rare = sum(1 for t in covered if _idf(known.get(t, 0), n) >= RARE_IDF)
    first = found[0]
    runner = found[1] if len(found) > 1 else None
    parts_best = [float(getattr(first, part)) for part in _PARTS]
    parts_other = [float(getattr(runner, part)) if runner else 0.0 for part in _PARTS]
    # Rounded: sums over sets (character grams) differ in the last bits from run to run with
    # Python's hash seed, which would make training not quite reproducible.
    values = [
        best,
        best - second,
        second - third,
        same_service,
        sum(weights[t] for t in covered) / total,
        own / total,
        runner_up / total,
        matcher._unknown_share(ranked),
        float(rare),
        float(ranked.words),
        float(ranked.words >= matcher.thresholds.long_words),
        float(len(matcher.other_body_words(ranked))),
        float(first.classifier > 0.0 and first.classifier >= max(c.classifier for c in found)),
        *parts_best,
        *(b - o for b, o in zip(parts_best, parts_other, strict=True)),
    ]
    return [round(v, 9) for v in values]


@dataclass(frozen=True)
class Tree:
    """One regression tree as parallel lists; a leaf has `left` = -1."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]


@dataclass(frozen=True)
class ConfidenceModel:
    """P(best entry is right) from `features`; answer from `threshold` on."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]
    threshold: float
    # Where it came from (training sets, wrong-answer rate the threshold allows, library).
    meta: dict[str, Any]
    _flat: tuple[tuple[tuple[Any, ...], ...], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # The trees' lists unpacked once: `probability` runs for every question (hot path).
        flat = tuple((t.feature, t.threshold, t.left, t.right, t.value) for t in self.trees)
        object.__setattr__(self, "_flat", flat)

    def probability(self, x: Sequence[float]) -> float:
        raw = self.baseline
        for feature, threshold, left, right, value in self._flat:
            # Down one tree: scikit-learn sends x <= threshold to the left child.
            node = 0
            while left[node] >= 0:
                node = left[node] if x[feature[node]] <= threshold[node] else right[node]
            raw += value[node]
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, raw))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "threshold": self.threshold,
            "baseline": self.baseline,
            "meta": self.meta,
            "trees": [
                {
                    "feature": list(t.feature),
                    "threshold": list(t.threshold),
                    "left": list(t.left),
                    "right": list(t.right),
                    "value": list(t.value),
                }
                for t in self.trees
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidenceModel:
        names = tuple(data["features"])
        if names != FEATURES:
            raise ValueError(
                "the confidence model was trained on other features than the matcher computes; "
                "retrain it with `python -m kb.confidence train`"
            )
        trees = tuple(
            Tree(
                tuple(t["feature"]),
                tuple(float(v) for v in t["threshold"]),
                tuple(t["left"]),
                tuple(t["right"]),
                tuple(float(v) for v in t["value"]),
            )
            for t in data["trees"]
        )
        return cls(names, float(data["baseline"]), trees, float(data["threshold"]), data["meta"])

    @classmethod
    def load(cls, path: str | Path) -> ConfidenceModel:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@cache
def shipped_model() -> ConfidenceModel:
    """The model trained on the labelled sets and the demo KB (`kb/data/confidence.json`)."""
    return ConfidenceModel.load(SHIPPED)


@cache
def shipped_plain_model() -> ConfidenceModel:
    """The model for KBs ranked without the variant classifier (`kb/data/confidence_plain.json`)."""
    return ConfidenceModel.load(SHIPPED_PLAIN)
