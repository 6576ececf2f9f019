"""The sixth-round research script: features, the plain-Python logistic fit, thresholds."""

from __future__ import annotations

import random

from kb import KBEntry, LabelledQuestion, Matcher
from kb.calibrate import FEATURES, Row, count, features, fit, nested, pick_threshold


def row(x: list[float], right: bool, *, rule: bool = False) -> Row:
    return Row(x=x, right=right, answerable=True, rule=rule, question="")


def test_fit_separates_a_separable_set() -> None:
    rng = random.Random(1)
    rows = [row([v, rng.random()], v > 0.5) for v in (rng.random() for _ in range(200))]
    model = fit(rows, l2=1.0)
    assert model.prob([0.95, 0.5]) > 0.9 > 0.1 > model.prob([0.05, 0.5])
    # The informative feature carries the weight, the noise feature hardly any.
    assert abs(model.coef[1]) > 5 * abs(model.coef[2])


def test_threshold_keeps_wrong_answers_within_the_rate() -> None:
    rows = [row([0.0], right) for right in [True] * 8 + [False] * 2]
    probs = [0.9, 0.8, 0.95, 0.7, 0.6, 0.5, 0.4, 0.3, 0.85, 0.2]
    t, right, wrong = pick_threshold(probs, rows, rate=0.1, union=False)
    assert (t, right, wrong) == (0.3, 8, 1)
    assert count([p >= t for p in probs], rows) == (right, wrong)
    # "rule or model" keeps every rule answer.
    rows[0].rule = True
    assert pick_threshold([0.0] * 10, rows, rate=0.0, union=True)[1:] == (1, 0)


def test_nested_runs_on_a_small_set() -> None:
    rng = random.Random(2)
    rows = [row([v], v > 0.3) for v in (rng.random() for _ in range(60))]
    right, wrong = nested(rows, [], l2=1.0, rate=0.05, union=False, k=3, seeds=1)
    assert 0 <= wrong <= 6 and right > 20


def test_features_of_a_question() -> None:
    entries = [
        KBEntry(
            id=i,
            title=t,
            service="ausweis",
            city=None,
            audience="external",
            questions=[t],
            answer="Antwort",
        )
        for i, t in (("verloren", "Reisepass verloren"), ("abholen", "Reisepass abholen"))
    ]
    got = features(Matcher(entries), LabelledQuestion("Reisepass verloren", "verloren"))
    assert got is not None and got.right and len(got.x) == len(FEATURES)
    x = dict(zip(FEATURES, got.x, strict=True))
    assert x["same_service"] == 1.0 and x["coverage"] == 1.0 and x["runner_up_share"] == 0.0
    assert 0.0 < x["own_share"] < 1.0 and x["dominates"] == 1.0
    assert features(Matcher(entries), LabelledQuestion("xyzzy", None)) is None
