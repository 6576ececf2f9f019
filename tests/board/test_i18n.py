"""Every board text written as `_("…")` has an English translation (German is the source)."""

from __future__ import annotations

import re
from pathlib import Path

from hotline.board.i18n import catalogue, translator

BOARD = Path(__file__).resolve().parents[2] / "hotline" / "board"
# _("text") or _('text'), possibly with keyword values after the literal.
LITERAL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def board_texts() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(BOARD.rglob("*")):
        if path.suffix not in (".html", ".py") or "i18n" in path.parts:
            continue
        for match in LITERAL.finditer(path.read_text(encoding="utf-8")):
            text = match.group(1) if match.group(1) is not None else match.group(2)
            found.setdefault(text.replace('\\"', '"').replace("\\'", "'"), str(path.name))
    return found


def test_every_board_text_has_an_english_translation() -> None:
    texts = board_texts()
    assert len(texts) > 20  # the scan finds the layout's texts at least
    missing = {text: where for text, where in texts.items() if text not in catalogue()}
    assert not missing, f"texts without English (add them to hotline/board/i18n/): {missing}"


def test_translator_formats_and_falls_back_to_german() -> None:
    en = translator("en")
    assert en("Angemeldet als {name}", name="Anna") == "Logged in as Anna"
    assert translator("de")("Angemeldet als {name}", name="Anna") == "Angemeldet als Anna"
    assert en("Ein Text ohne Übersetzung") == "Ein Text ohne Übersetzung"
