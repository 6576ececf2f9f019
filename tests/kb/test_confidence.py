"""The learned answer decision: the shipped model, its export from scikit-learn, the threshold."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from kb import Matcher, load_dir, load_labelled
from kb._confidence import FEATURES, SHIPPED, ConfidenceModel, shipped_model
from kb.confidence import HELD_OUT, Rows, _classifier, fit, pick_threshold, rows_of

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"


@cache
def demo_entries() -> tuple:  # type: ignore[type-arg]
    return tuple(load_dir(ROOT / "kb" / "demo"))


def test_the_exported_trees_give_scikit_learns_probabilities() -> None:
    matcher = Matcher(demo_entries(), confidence=None)
    # Right and wrong best entries both (the near-miss probes have no right one).
    labelled = load_labelled(DATA / "kb_dev.jsonl")[:100]
    rows = rows_of(matcher, labelled + load_labelled(DATA / "kb_dev_nearmiss.jsonl")[:50])
    model = fit(rows, 0.02, {})
    reference = _classifier().fit(rows.x, rows.right).predict_proba(rows.x)[:, 1]
    ours = [model.probability(x) for x in rows.x]
    assert len(model.trees) == 200 and len({round(p, 6) for p in ours}) > 20
    assert ours == pytest.approx([float(p) for p in reference], abs=1e-9)
    # The JSON form round-trips to the same model.
    again = ConfidenceModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert [again.probability(x) for x in rows.x] == ours


def test_the_shipped_model_fits_the_matcher_and_never_saw_the_blind_set() -> None:
    model = shipped_model()
    assert model.features == FEATURES
    assert 0.5 < model.threshold < 1.0
    sets = model.meta["sets"]
    assert "kb_dev.jsonl" in sets and "kb_eval8.jsonl" in sets
    assert not set(sets) & set(HELD_OUT) and "kb_eval17.jsonl" in HELD_OUT
    assert "kb_eval15.jsonl" in sets
    assert Matcher(demo_entries()[:3]).confidence is model


def test_a_model_for_other_features_is_refused(tmp_path: Path) -> None:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["features"] = data["features"][:-1]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="retrain"):
        ConfidenceModel.load(path)


@pytest.mark.parametrize(
    ("question", "city", "expect", "rule_reason"),
    [
        # Right, but a sibling sits within the rule's margin.
        ("perso pin gesperrt", "nuernberg", "eid-pin-gesperrt-puk", "close_second"),
        # Right, below the rule's score bar: the words are the entry's own, the lead is wide.
        ("NFC liest ausweis nicht, hülle schon abgemacht", "augsburg", "eid-ausweis-nicht-erkannt",
         "low_score"),
    ],
)
def test_the_model_answers_what_the_rule_holds_back(
    question: str, city: str, expect: str, rule_reason: str
) -> None:
    rule = Matcher(demo_entries(), confidence=None).match(question, city=city)
    assert (rule.entry, rule.decision, rule.reason) == (expect, "suggest", rule_reason)
    assert rule.confidence is None
    learned = Matcher(demo_entries()).match(question, city=city)
    assert (learned.entry, learned.decision, learned.reason) == (expect, "answer", None)
    assert learned.confidence is not None and learned.confidence >= shipped_model().threshold


def test_the_model_holds_back_what_it_is_not_sure_of_and_says_so() -> None:
    # The rule answers it (score just over its bar, clear lead); the model is not sure enough.
    # A right answer held back: the price the model pays for fewer wrong ones elsewhere.
    question = "geht online zahlen mit girocard oder nur visa mastercard"
    rule = Matcher(demo_entries(), confidence=None).match(question, city="muenchen")
    assert rule.decision == "answer"
    learned = Matcher(demo_entries()).match(question, city="muenchen")
    assert (learned.decision, learned.reason) == ("suggest", "low_confidence")
    assert learned.entry == rule.entry and learned.suggestions[0] == rule.entry


def test_the_threshold_is_the_lowest_bar_within_the_wrong_answer_rate() -> None:
    right = [True, True, False, True, True, False, True, False]
    probs = [0.99, 0.95, 0.93, 0.9, 0.9, 0.8, 0.7, 0.6]
    rows = Rows([[0.0]] * 8, right, [False] * 8, questions=50, answerable=40)
    # 1 wrong answer of 50 allowed (2 %): down to 0.9 (4 right, 1 wrong); 0.8 would be 2 wrong.
    assert pick_threshold(probs, rows, 0.02) == 0.9
    # None allowed: only above the first wrong one.
    assert pick_threshold(probs, rows, 0.0) == 0.95
    # Ties cannot be split: with 0.93 and 0.9 tied the bar stays above both.
    tied = [0.99, 0.95, 0.9, 0.9, 0.9, 0.8, 0.7, 0.6]
    assert pick_threshold(tied, rows, 0.0) == 0.95


@cache
def demo_matcher(*, with_other_bodies: bool = True) -> Matcher:
    # Built once per kind for the tests below (a build takes about a second; CI time).
    return Matcher(demo_entries(), other_bodies=None if with_other_bodies else ())


@pytest.mark.parametrize(
    ("question", "city", "words", "names"),
    [
        # The online ID's PIN entries rank first: they have PIN, PUK, gesperrt.
        ("Ich habe die PIN meiner Sparkassen-Karte dreimal falsch eingegeben", "muenchen",
         ["sparkass"], ["Sparkasse"]),
        ("Mei Handy-SIM is gsperrt, wo krieg i die PUK her?", "augsburg", ["sim"], ["SIM"]),
        ("Wie ändere ich meine Adresse bei der Krankenkasse nach dem Umzug?", "nuernberg",
         ["krankenkass"], ["Krankenkasse"]),
    ],
)
def test_a_question_about_another_body_is_no_answer_and_says_why(
    question: str, city: str, words: list[str], names: list[str]
) -> None:
    matcher = demo_matcher()
    ranked = matcher._ranked(question, city=city, audience="external")
    assert matcher.other_body_words(ranked) == words
    result = matcher.match(question, city=city)
    assert result.decision != "answer" and result.reason == "other_body"
    # Named as the list writes them, for the chat to say where to turn.
    assert result.other_bodies == names
    # Without the list the same question is the model's confident (and wrong) answer or close
    # to it: the words are what holds it back.
    blind = demo_matcher(with_other_bodies=False)
    assert blind.other_body_words(blind._ranked(question, city=city, audience="external")) == []
    assert blind.match(question, city=city).confidence > result.confidence  # type: ignore[operator]


def test_another_bodys_word_the_best_entry_uses_does_not_count() -> None:
    # The card-payment entry's variants name the bank: a question about a declined card
    # that mentions the bank is still the entry's own question.
    matcher = demo_matcher()
    question = "Meine Kreditkarte wird beim Bezahlen der Gebühr abgelehnt, die Bank sagt alles ok"
    ranked = matcher._ranked(question, city="muenchen", audience="external")
    assert "bank" in ranked.other_bodies
    assert ranked.scored[0][0] == "epayment-kreditkarte"
    assert matcher.other_body_words(ranked) == []


def test_the_other_bodies_list_takes_single_words_only() -> None:
    from kb._matcher import load_other_bodies

    text = "# comment\nFinanzamt\n\nSIM  # phone\n"
    assert load_other_bodies(text) == ["finanzamt", "sim"]
    assert load_other_bodies(text, as_written=True) == ["Finanzamt", "SIM"]
    with pytest.raises(ValueError, match="'Deutsche Bahn' must be one content word"):
        Matcher((), other_bodies=["Bank", "Deutsche Bahn"])
    with pytest.raises(ValueError, match="'und' must be one content word"):
        Matcher((), other_bodies=["und"])  # a stop word


def test_the_hand_rule_also_holds_an_answer_back_for_another_body() -> None:
    # Without the model the rule decides; a question it would answer is held back when it
    # names a body the best entry never names, and answered again without the list.
    entries = demo_entries()
    question = "sim pin 3 mal falsch, handy gesperrt, puk wo"
    with_list = Matcher(entries, confidence=None)
    without = Matcher(entries, confidence=None, other_bodies=())
    plain = without.match(question, city="nuernberg")
    assert (plain.decision, plain.entry, plain.other_bodies) == ("answer", "eid-pin-gesperrt-puk", [])
    held = with_list.match(question, city="nuernberg")
    assert held.entry == plain.entry
    assert (held.decision, held.reason, held.other_bodies) == ("suggest", "other_body", ["SIM"])
