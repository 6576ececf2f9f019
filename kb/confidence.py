"""Train and evaluate the learned answer decision (`kb._confidence`; needs the dev extras).

    python -m kb.confidence evaluate   # leave one labelled set out: rule vs model, per set
    python -m kb.confidence train      # fit on all training sets, write kb/data/confidence.json
                                       # and its twin without the variant classifier
                                       # (kb/data/confidence_plain.json, for large KBs)
    python -m kb.confidence evaluate --plain   # the same for the twin

The training sets are the labelled files given (default: every `tests/data/kb_*.jsonl` except
the held-out blind sets in `HELD_OUT`), matched against the demo KB. A row is one question with
at least one candidate; its label is whether the best entry is the expected one (an
unanswerable question's best entry is never right). The answer threshold is the probability
with the most right answers among those whose out-of-fold wrong answers stay within `--rate`
of all training questions (a wrong confident answer costs more than a handover).

`evaluate` is the honest estimate: each set is predicted by a model trained on the other sets,
with the threshold chosen on those sets' out-of-fold probabilities.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb._confidence import FEATURES, SHIPPED, SHIPPED_PLAIN, ConfidenceModel, Tree, features
from kb._entry import load_dir
from kb._evaluate import LabelledQuestion, load_labelled
from kb._matcher import Matcher, Weights

ROOT = Path(__file__).parents[1]
DATA = ROOT / "tests" / "data"
# The blind set written after the model: never trained on, so its figures stay honest. A blind
# set joins the training sets once its figures are published and a newer one is written
# (twenty-third round: kb_eval16 joined, kb_eval17 is the blind one).
HELD_OUT = ("kb_eval17.jsonl",)
PARAMS: dict[str, Any] = {
    "max_depth": 3,
    "learning_rate": 0.05,
    "max_iter": 200,
    "l2_regularization": 1.0,
    "min_samples_leaf": 30,
    "early_stopping": False,
    "random_state": 0,
}


@dataclass
class Rows:
    """The questions of one or more sets with a candidate: features, labels, the rule."""

    x: list[list[float]]
    right: list[bool]
    rule: list[bool]
    questions: int  # all questions, also those without any candidate
    answerable: int


def rows_of(matcher: Matcher, labelled: Sequence[LabelledQuestion]) -> Rows:
    rows = Rows([], [], [], len(labelled), sum(q.expect is not None for q in labelled))
    for item in labelled:
        ranked = matcher._ranked(item.q, city=item.city, audience=item.audience)
        if not ranked.scored:
            continue
        rows.x.append(features(matcher, ranked))
        rows.right.append(item.expect is not None and ranked.scored[0][0] == item.expect)
        # The rule's decision from the same ranking (`match` would rank the question again).
        second = ranked.scored[1][1] if len(ranked.scored) > 1 else 0.0
        named = matcher.other_body_words(ranked)
        rows.rule.append(matcher._rule_reason(ranked, ranked.scored[0][1], second, named) is None)
    return rows


def _merge(parts: Sequence[Rows]) -> Rows:
    merged = Rows([], [], [], 0, 0)
    for part in parts:
        merged.x += part.x
        merged.right += part.right
        merged.rule += part.rule
        merged.questions += part.questions
        merged.answerable += part.answerable
    return merged


def _classifier() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**PARAMS)


def pick_threshold(probs: Sequence[float], rows: Rows, rate: float) -> float:
    """The lowest probability bar with the most right answers within `rate` wrong ones."""
    pairs = sorted(zip(probs, rows.right, strict=True), key=lambda pr: -pr[0])
    limit = rate * rows.questions
    best, best_right, right, wrong = 1.01, 0, 0, 0
    for i, (p, is_right) in enumerate(pairs):
        right += is_right
        wrong += not is_right
        # Ties: the bar can only fall between different probabilities.
        if i + 1 < len(pairs) and pairs[i + 1][0] == p:
            continue
        if wrong <= limit and right > best_right:
            best, best_right = p, right
    return best


def _out_of_fold(rows: Rows) -> list[float]:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    probs = cross_val_predict(_classifier(), rows.x, rows.right, cv=folds, method="predict_proba")
    return [float(p) for p in probs[:, 1]]


def fit(rows: Rows, rate: float, meta: dict[str, Any]) -> ConfidenceModel:
    """Fit on `rows`, choose the threshold out of fold, export the trees as plain data."""
    import sklearn

    threshold = pick_threshold(_out_of_fold(rows), rows, rate)
    clf = _classifier().fit(rows.x, rows.right)
    trees = []
    for (predictor,) in clf._predictors:  # one tree per iteration for a binary target
        nodes = predictor.nodes
        leaf = [bool(v) for v in nodes["is_leaf"]]

        def children(side: str, nodes: Any = nodes, leaf: list[bool] = leaf) -> tuple[int, ...]:
            return tuple(-1 if end else int(v) for v, end in zip(nodes[side], leaf, strict=True))

        trees.append(
            Tree(
                tuple(int(v) for v in nodes["feature_idx"]),
                tuple(float(v) for v in nodes["num_threshold"]),
                children("left"),
                children("right"),
                tuple(float(v) for v in nodes["value"]),
            )
        )
    baseline = float(clf._baseline_prediction.ravel()[0])
    info = {**meta, "rate": rate, "params": PARAMS, "scikit_learn": sklearn.__version__}
    return ConfidenceModel(FEATURES, baseline, tuple(trees), threshold, info)


def _sets(paths: Sequence[Path]) -> list[Path]:
    if paths:
        return list(paths)
    return sorted(p for p in DATA.glob("kb_*.jsonl") if p.name not in HELD_OUT)


def _count(answer: Sequence[bool], rows: Rows) -> tuple[int, int]:
    right = sum(1 for a, r in zip(answer, rows.right, strict=True) if a and r)
    wrong = sum(1 for a, r in zip(answer, rows.right, strict=True) if a and not r)
    return right, wrong


def evaluate(per_set: dict[str, Rows], rate: float) -> list[dict[str, Any]]:
    """Leave one set out: each set predicted by a model fitted on the others."""
    report = []
    for name, held in per_set.items():
        if not held.answerable:  # the near-miss probes: training rows only
            continue
        train = _merge([rows for other, rows in per_set.items() if other != name])
        model = fit(train, rate, {})
        answer = [model.probability(x) >= model.threshold for x in held.x]
        rule = _count(held.rule, held)
        got = _count(answer, held)
        report.append(
            {
                "set": name,
                "questions": held.questions,
                "answerable": held.answerable,
                "rule": {"right": rule[0], "wrong": rule[1]},
                "model": {"right": got[0], "wrong": got[1]},
            }
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.confidence", description=__doc__)
    parser.add_argument("command", choices=("train", "evaluate"))
    parser.add_argument("sets", nargs="*", type=Path, help="labelled sets (default: see above)")
    parser.add_argument("--kb", type=Path, default=ROOT / "kb" / "demo")
    parser.add_argument("--rate", type=float, default=0.015, help="wrong answers allowed (of all)")
    parser.add_argument("--out", type=Path, default=SHIPPED)
    parser.add_argument("--out-plain", type=Path, default=SHIPPED_PLAIN)
    parser.add_argument(
        "--plain", action="store_true", help="evaluate the model without the variant classifier"
    )
    args = parser.parse_args(argv)

    entries = load_dir(args.kb)
    known = {e.id for e in entries}
    paths = _sets(args.sets)
    labelled = [(p, load_labelled(p, known_ids=known)) for p in paths]

    def rows_by_set(*, plain: bool) -> dict[str, Rows]:
        weights = Weights(classifier=0.0) if plain else Weights()
        matcher = Matcher(entries, weights=weights, confidence=None)
        return {p.stem: rows_of(matcher, questions) for p, questions in labelled}

    if args.command == "evaluate":
        per_set = rows_by_set(plain=args.plain)
        total = {"rule": [0, 0], "model": [0, 0]}
        print(f"{'set':<18}{'n':>5}  rule right/wrong   model right/wrong")
        for line in evaluate(per_set, args.rate):
            cells = []
            for key in ("rule", "model"):
                right, wrong = line[key]["right"], line[key]["wrong"]
                total[key][0] += right
                total[key][1] += wrong
                cells.append(
                    f"{100 * right / line['answerable']:5.1f} % / {wrong:>2}"
                    f" ({100 * wrong / line['questions']:.1f} %)"
                )
            print(f"{line['set']:<18}{line['questions']:>5}  {cells[0]}   {cells[1]}")
        print(f"total right / wrong: rule {total['rule']}, model {total['model']}")
        return 0
    meta = {
        "kb": str(args.kb.relative_to(ROOT)) if args.kb.is_relative_to(ROOT) else str(args.kb),
        "sets": [p.name for p in paths],
    }
    for out, plain in ((args.out, False), (args.out_plain, True)):
        model = fit(_merge(list(rows_by_set(plain=plain).values())), args.rate, meta)
        out.write_text(json.dumps(model.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{out}: {len(model.trees)} trees, answer from P ≥ {model.threshold:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
