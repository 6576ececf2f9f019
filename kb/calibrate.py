"""Sixth tuning round: can a calibrated decision over ranked-list features beat the hand rule?

A research script, not used at match time (docs/matching.md, "Sixth round"). For every
question it takes features of the ranked list (top score, lead over the runner-up, whether
the runner-up is of the same service, shares of the question's weighted words the best entry
covers / covers alone / lacks, unknown-word share, matched rare words, question length,
whether the best entry matched through synonym words only, the dominance test, the current
rule's decision), fits a plain-Python L2 logistic regression ("is the best entry right?") on
kb_dev (+ the Familienlotse set as extra training rows) and compares it with the current
answer rule by cross-validation on kb_dev:

* out-of-fold: probabilities from repeated k-fold, threshold picked on them (optimistic);
* nested: the threshold is picked inside each training fold (inner out-of-fold, at most
  `--rate` wrong answers) and applied to the held-out fold (the honest estimate);

for the model alone and for "current rule **or** model" (a complement that only adds answers).

    python -m kb.calibrate                     # kb_dev + familienlotse, report
    python -m kb.calibrate --measure tests/data/kb_eval.jsonl   # the fitted model on a set

No numpy: the sets have a few hundred rows, Newton's method in plain Python is enough.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kb._entry import load_dir
from kb._evaluate import LabelledQuestion, load_labelled
from kb._familienlotse import familienlotse_sets
from kb._matcher import Matcher, _idf

ROOT = Path(__file__).parents[1]
FEATURES = (
    "score",
    "margin",
    "same_service",
    "coverage",
    "own_share",
    "runner_up_share",
    "unknown_share",
    "rare_words",
    "length",
    "synonym_only",
    "dominates",
    "rule",
)
# An idf this high (ln(1 + …)) marks a word found in at most a few entries.
RARE_IDF = 2.5


@dataclass
class Row:
    """One question: its features, whether the best entry is right, and for the report."""

    x: list[float]
    right: bool
    answerable: bool
    rule: bool
    question: str


def features(matcher: Matcher, item: LabelledQuestion) -> Row | None:
    """The features of one question's ranked list; None when nothing was found at all."""
    ranked = matcher._ranked(item.q, city=item.city, audience=item.audience)
    result = matcher.match(item.q, city=item.city, audience=item.audience)
    if not ranked.scored:
        return None
    docs = matcher._docs
    weights = ranked.term_weights
    total = sum(weights.values()) or 1.0
    best_doc = docs[ranked.slots[0]]
    best_terms = set(best_doc.terms)
    best_score = ranked.scored[0][1]
    if len(ranked.scored) > 1:
        other_doc = docs[ranked.slots[1]]
        other_terms = set(other_doc.terms)
        second = ranked.scored[1][1]
        same_service = other_doc.entry.service == best_doc.entry.service
    else:
        other_terms, second, same_service = set(), 0.0, False
    tokens = matcher.analyzer.tokens(item.q, matcher._surface, matcher._df_words)
    synonyms = {t.stem for t in tokens if t.canonical}
    known = matcher._df_words
    n = len(docs)
    covered = [t for t in weights if t in best_terms]

    def share(terms: Sequence[str]) -> float:
        return sum(weights[t] for t in terms) / total

    x = [
        best_score / 100.0,
        (best_score - second) / 100.0,
        float(same_service),
        share(covered),
        share([t for t in covered if t not in other_terms]),
        share([t for t in weights if t in other_terms and t not in best_terms]),
        share([t for t in weights if t not in known]),
        float(sum(1 for t in covered if _idf(known.get(t, 0), n) >= RARE_IDF)),
        float(len(tokens)),
        float(bool(covered) and all(t in synonyms for t in covered)),
        float(matcher._dominates(ranked)),
        float(result.decision == "answer"),
    ]
    return Row(
        x=x,
        right=item.expect is not None and result.entry == item.expect,
        answerable=item.expect is not None,
        rule=result.decision == "answer",
        question=item.q,
    )


def rows_of(matcher: Matcher, labelled: Sequence[LabelledQuestion]) -> list[Row]:
    return [row for item in labelled if (row := features(matcher, item)) is not None]


# --- the model --------------------------------------------------------------------------


@dataclass
class Logistic:
    """L2 logistic regression on standardised features: P(best entry is right)."""

    coef: list[float]
    mean: list[float]
    scale: list[float]

    def prob(self, x: Sequence[float]) -> float:
        z = self.coef[0] + sum(
            c * (v - m) / s
            for c, v, m, s in zip(self.coef[1:], x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_dict(self) -> dict[str, object]:
        return {"features": list(FEATURES), **self.__dict__}


def fit(rows: Sequence[Row], l2: float = 20.0, iterations: int = 50) -> Logistic:
    """Newton's method; the intercept is not penalised."""
    k = len(rows[0].x)
    n = len(rows)
    mean = [sum(r.x[j] for r in rows) / n for j in range(k)]
    scale = [max(1e-9, math.sqrt(sum((r.x[j] - mean[j]) ** 2 for r in rows) / n)) for j in range(k)]
    xs = [[1.0, *((r.x[j] - mean[j]) / scale[j] for j in range(k))] for r in rows]
    ys = [1.0 if r.right else 0.0 for r in rows]
    w = [0.0] * (k + 1)
    for _ in range(iterations):
        grad = [l2 * v if i else 0.0 for i, v in enumerate(w)]
        hess = [[(l2 if i == j and i else 0.0) for j in range(k + 1)] for i in range(k + 1)]
        for xi, yi in zip(xs, ys, strict=True):
            z = sum(a * b for a, b in zip(w, xi, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            for i in range(k + 1):
                grad[i] += (p - yi) * xi[i]
                row = hess[i]
                for j in range(k + 1):
                    row[j] += p * (1.0 - p) * xi[i] * xi[j]
        step = _solve(hess, grad)
        w = [a - b for a, b in zip(w, step, strict=True)]
        if max(abs(v) for v in step) < 1e-8:
            break
    return Logistic(w, mean, scale)


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gauss-Jordan with partial pivoting (the Hessian is positive definite)."""
    size = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(size):
        pivot = max(range(c, size), key=lambda r: abs(m[r][c]))
        m[c], m[pivot] = m[pivot], m[c]
        for r in range(size):
            if r != c and m[r][c]:
                factor = m[r][c] / m[c][c]
                for cc in range(c, size + 1):
                    m[r][cc] -= factor * m[c][cc]
    return [m[i][size] / m[i][i] for i in range(size)]


# --- decisions and cross-validation -----------------------------------------------------


def count(answer: Sequence[bool], rows: Sequence[Row]) -> tuple[int, int]:
    """(confident and correct, wrong answers) for answer decisions over rows."""
    right = sum(1 for a, r in zip(answer, rows, strict=True) if a and r.right)
    wrong = sum(1 for a, r in zip(answer, rows, strict=True) if a and not r.right)
    return right, wrong


def pick_threshold(
    probs: Sequence[float], rows: Sequence[Row], rate: float, union: bool
) -> tuple[float, int, int]:
    """The threshold with the most right answers and at most `rate` wrong ones (of all rows)."""
    best = (1.01, *count([union and r.rule for r in rows], rows))
    for t in sorted(set(probs)):
        answer = [p >= t or (union and r.rule) for p, r in zip(probs, rows, strict=True)]
        right, wrong = count(answer, rows)
        if wrong <= rate * len(rows) and right > best[1]:
            best = (t, right, wrong)
    return best


def _folds(n: int, k: int, seed: int) -> list[set[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [set(order[f::k]) for f in range(k)]


def out_of_fold(
    rows: Sequence[Row], extra: Sequence[Row], l2: float, k: int, seed: int
) -> list[float]:
    probs = [0.0] * len(rows)
    for test in _folds(len(rows), k, seed):
        model = fit([r for i, r in enumerate(rows) if i not in test] + list(extra), l2)
        for i in test:
            probs[i] = model.prob(rows[i].x)
    return probs


def nested(
    rows: Sequence[Row],
    extra: Sequence[Row],
    *,
    l2: float,
    rate: float,
    union: bool,
    k: int = 5,
    seeds: int = 3,
) -> tuple[float, float]:
    """Mean (right, wrong) on held-out folds, each threshold chosen without its fold."""
    right = wrong = 0
    for seed in range(seeds):
        for test in _folds(len(rows), k, 100 + seed):
            train = [r for i, r in enumerate(rows) if i not in test]
            t, _, _ = pick_threshold(out_of_fold(train, extra, l2, k, seed), train, rate, union)
            model = fit([*train, *extra], l2)
            held = [rows[i] for i in sorted(test)]
            got = count([model.prob(r.x) >= t or (union and r.rule) for r in held], held)
            right += got[0]
            wrong += got[1]
    return right / seeds, wrong / seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.calibrate", description=__doc__)
    parser.add_argument("--kb", type=Path, default=ROOT / "kb" / "demo")
    parser.add_argument("--dev", type=Path, default=ROOT / "tests" / "data" / "kb_dev.jsonl")
    parser.add_argument(
        "--familienlotse", type=Path, default=ROOT / "tests" / "data" / "familienlotse" / "nlu.md"
    )
    parser.add_argument("--l2", type=float, nargs="+", default=[1.0, 5.0, 20.0])
    parser.add_argument("--rate", type=float, default=0.016, help="wrong answers allowed (of all)")
    parser.add_argument("--measure", type=Path, help="apply the fitted model to this set")
    args = parser.parse_args(argv)

    entries = load_dir(args.kb)
    matcher = Matcher(entries)
    dev = rows_of(matcher, load_labelled(args.dev, known_ids={e.id for e in entries}))
    fl_entries, fl_labelled = familienlotse_sets(args.familienlotse)
    extra = rows_of(Matcher(fl_entries), fl_labelled)
    rule = count([r.rule for r in dev], dev)
    print(
        f"kb_dev: {len(dev)} questions with a candidate, {sum(r.answerable for r in dev)}"
        f" answerable; current rule: {rule[0]} right, {rule[1]} wrong"
    )
    chosen: dict[tuple[float, bool], float] = {}
    for l2 in args.l2:
        for union in (False, True):
            name = "rule or model" if union else "model alone  "
            probs = [0.0] * len(dev)
            for seed in range(5):
                for i, p in enumerate(out_of_fold(dev, extra, l2, 5, seed)):
                    probs[i] += p / 5
            t, right, wrong = pick_threshold(probs, dev, args.rate, union)
            chosen[(l2, union)] = t
            n_right, n_wrong = nested(dev, extra, l2=l2, rate=args.rate, union=union)
            print(
                f"l2={l2:<5} {name}  out-of-fold (threshold {t:.3f}): {right} right,"
                f" {wrong} wrong   nested: {n_right:.1f} right, {n_wrong:.1f} wrong"
            )
    if args.measure is not None:
        l2 = args.l2[-1]
        model = fit([*dev, *extra], l2)
        print(json.dumps(model.to_dict()))
        rows = rows_of(matcher, load_labelled(args.measure, known_ids={e.id for e in entries}))
        answerable = sum(r.answerable for r in rows)
        before = count([r.rule for r in rows], rows)
        print(
            f"{args.measure.name}: current rule {before[0]} right, {before[1]} wrong"
            f" ({answerable} answerable, {len(rows)} with a candidate)"
        )
        for union in (False, True):
            t = chosen[(l2, union)]
            got = count([model.prob(r.x) >= t or (union and r.rule) for r in rows], rows)
            print(
                f"  {'rule or model' if union else 'model alone'} (l2={l2}, threshold"
                f" {t:.3f}): {got[0]} right, {got[1]} wrong"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
