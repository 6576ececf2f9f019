"""German folding and the `text_any` condition: case, umlauts, punctuation, phrases, prefixes."""

from __future__ import annotations

import pytest

from hotline.routing import Facts, Router, fold
from tests.routing.builders import make


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Überweisung: PayPal?", "ueberweisung paypal"),
        ("STRASSE Straße straße", "strasse strasse strasse"),
        ("Grüße aus Nürnberg!!!", "gruesse aus nuernberg"),
        ("Ue-berweisung", "ue berweisung"),
        ("Ka\u0308se", "kaese"),  # decomposed umlaut
        ("Café  crème", "cafe creme"),
        ("", ""),
    ],
)
def test_fold(text, folded):
    assert fold(text) == folded


def matches(phrases: str, text: str) -> bool:
    ruleset = make(
        f"- {{id: t, owner: augsburg, when: {{text_any: {phrases}}}, route_to: augsburg}}"
    )
    return Router(ruleset).decide(Facts(text=text)).rule == "t"


@pytest.mark.parametrize(
    ("phrases", "text", "expected"),
    [
        ("[überweisung, paypal]", "Geht das mit PAYPAL?", True),
        ("[überweisung]", "Ich habe eine Ueberweisung gemacht.", True),  # ue spelled out
        ("[ueberweisung]", "Meine Überweisung fehlt", True),  # and the other way round
        ("[straße]", "Welche Strasse?", True),
        ("['seite lädt nicht']", "Die Seite... lädt nicht!", True),  # phrase across punctuation
        ("['seite lädt nicht']", "Die Seite lädt jetzt", False),
        ("[paypal]", "Mein PayPal-Konto", True),
        ("[paypal]", "Mein Paypalkonto", False),  # whole words only
        ("[konto]", "Paypalkonto", False),
        ("['überweis*']", "Zwei Überweisungen", True),  # trailing * = prefix
        ("['überweis*']", "Rücküberweisung", False),
        ("[paypal]", "", False),
    ],
)
def test_text_any(phrases, text, expected):
    assert matches(phrases, text) is expected


def test_text_any_without_text_reports_it_in_german():
    ruleset = make("- {id: t, owner: augsburg, when: {text_any: paypal}, route_to: augsburg}")
    step = Router(ruleset).decide(Facts(), full_trace=True).trace[0]
    assert step["condition"] == "text_any"
    assert step["text"].startswith("Kein Text vorhanden")
