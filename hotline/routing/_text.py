"""German text folding and the word/phrase matcher behind the `text_any` condition."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_NON_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower case, umlauts spelled out (ä→ae, ß→ss), accents and punctuation dropped, words
    separated by single spaces: 'Überweisung: PayPal?' → 'ueberweisung paypal'."""
    # NFC first so that a decomposed 'a' + U+0308 is seen as 'ä'; umlauts are spelled out
    # before NFKD, which would otherwise reduce them to a bare vowel. casefold turns ß into ss.
    text = unicodedata.normalize("NFC", text).casefold().translate(_UMLAUTS)
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    return " ".join(_NON_WORD.split(text)).strip()


def phrase_problem(phrase: str) -> str | None:
    """Why a `text_any` entry cannot be used, or None when it is fine."""
    core = phrase[:-1] if phrase.endswith("*") else phrase
    if "*" in core:
        return f"'*' is only allowed at the end of a word ({phrase!r})"
    if not fold(core):
        return f"{phrase!r} contains no letters or digits"
    return None


def compile_phrases(phrases: Iterable[str]) -> re.Pattern[str]:
    """One regular expression over folded text that finds any of the phrases as whole words;
    a trailing '*' makes the last word a prefix ('überweis*' finds 'Überweisungen')."""
    parts = []
    for phrase in phrases:
        prefix = phrase.endswith("*")
        core = fold(phrase[:-1] if prefix else phrase)
        parts.append(re.escape(core) + (r"\w*" if prefix else ""))
    # Longest first so that the reported hit is the most specific phrase.
    parts.sort(key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")


def phrase_key(phrase: str) -> str:
    """A phrase in comparable form (folded, '*' kept), for lint's subset checks."""
    prefix = phrase.endswith("*")
    return fold(phrase[:-1] if prefix else phrase) + ("*" if prefix else "")
