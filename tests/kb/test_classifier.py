"""The variant classifier (kb/_classifier.py) and how the matcher uses it."""

from __future__ import annotations

import dataclasses

from kb import Matcher, Weights
from kb._classifier import VariantClassifier, trained
from kb._confidence import shipped_model, shipped_plain_model
from kb._entry import KBEntry
from tests.kb.test_matcher import entry, small_kb


def with_classifier(entries: list[KBEntry]) -> Matcher:
    """A matcher that uses the classifier although the KB is below its minimum size."""
    matcher = Matcher(entries)
    matcher.classifier_min_entries = 2
    return matcher


def test_it_learns_the_words_that_tell_siblings_apart() -> None:
    labels = ["passwort"] * 3 + ["benutzername"] * 3
    texts = [
        "bayernid passwort vergess",
        "kennwort bayernid vergess neu",
        "passwort zurucksetz bayernid",
        "bayernid benutzernam vergess",
        "bayernid nam konto vergess",
        "benutzernam bayernid wiss nicht",
    ]
    classifier = VariantClassifier(labels, texts)
    everything = classifier.mask(["passwort", "benutzername"])
    both = ["passwort", "benutzername", "unknown"]
    probs = classifier.probabilities("bayernid kennwort vergess", everything, both)
    assert set(probs) == {"passwort", "benutzername"}
    assert probs["passwort"] > 0.7 > 0.3 > probs["benutzername"]
    probs = classifier.probabilities("benutzernam vergess", everything, both)
    assert probs["benutzername"] > 0.7 > 0.3 > probs["passwort"]
    # Only the entries at the allowed positions are scored; each on its own (no softmax).
    only = classifier.probabilities(
        "bayernid kennwort vergess", classifier.mask(["benutzername"]), both
    )
    assert list(only) == ["benutzername"] and only["benutzername"] < 0.3
    assert not classifier.mask(["unknown"]).any()


def test_it_is_trained_once_per_content() -> None:
    variants = {"a": ("hund steu anmeld",), "b": ("auto zulass",)}
    first = trained(variants)
    assert trained(dict(reversed(list(variants.items())))) is first
    assert trained({**variants, "b": ("auto zulass", "kfz zulass")}) is not first


def test_the_matcher_ranks_with_it_and_retrains_after_a_change() -> None:
    matcher = with_classifier(small_kb())
    ranked = matcher._ranked("BayernID Kennwort vergessen", city=None, audience="external")
    best = ranked.candidates[0]
    assert best.entry_id == "bayernid-passwort"
    assert best.classifier > max(c.classifier for c in ranked.candidates[1:])
    assert matcher.decision_model is shipped_model()
    matcher.upsert(entry("fundbuero", ["Ich habe meinen Geldbeutel verloren.", "Fundsache abholen"]))
    ranked = matcher._ranked("Geldbeutel verloren", city=None, audience="external")
    assert ranked.candidates[0].entry_id == "fundbuero"
    assert ranked.candidates[0].classifier > 0.5


def test_another_citys_entry_gets_no_share_of_the_probability() -> None:
    entries = [
        *small_kb(),
        entry("parken-augsburg", ["Anwohnerparkausweis in Augsburg beantragen"], city="augsburg"),
        entry("parken-muenchen", ["Anwohnerparkausweis in München beantragen"], city="muenchen"),
        entry("intern-formular", ["Formular im Formularserver veröffentlichen"], audience="internal"),
    ]
    matcher = with_classifier(entries)
    everyone = [e.id for e in entries]
    probs = matcher._class_probabilities(
        "anwohnerparkausweis beantrag", "muenchen", "external", everyone
    )
    assert "parken-muenchen" in probs
    assert "parken-augsburg" not in probs and "intern-formular" not in probs
    assert max(probs, key=probs.__getitem__) == "parken-muenchen"
    staff = matcher._class_probabilities("formular veroffentlich", "muenchen", "internal", everyone)
    assert "intern-formular" in staff


def test_a_large_or_small_kb_or_the_weight_zero_ranks_without_it() -> None:
    matcher = with_classifier(small_kb())
    matcher.classifier_max_entries = 5
    assert not matcher.prepare()
    ranked = matcher._ranked("BayernID Kennwort vergessen", city=None, audience="external")
    assert all(c.classifier == 0.0 for c in ranked.candidates)
    # The confidence model trained without the classifier's opinion decides.
    assert matcher.decision_model is shipped_plain_model()
    off = Matcher(small_kb(), weights=dataclasses.replace(Weights(), classifier=0.0))
    off.classifier_min_entries = 2
    assert not off.prepare() and off.decision_model is shipped_plain_model()
    assert with_classifier(small_kb()).prepare()
    # Below the minimum size (by default) the classifier is off as well: its opinion on a
    # small KB is surer than the confidence model, which learned on the demo KB, allows.
    small = Matcher(small_kb())
    assert len(small_kb()) < small.classifier_min_entries
    assert not small.prepare() and small.decision_model is shipped_plain_model()
    ranked = small._ranked("BayernID Kennwort vergessen", city=None, audience="external")
    assert all(c.classifier == 0.0 for c in ranked.candidates)
