"""A second, real evaluation set built from the Familienlotse Rasa NLU data (Apache-2.0)."""

from __future__ import annotations

import re
from pathlib import Path

from kb._entry import KBEntry
from kb._evaluate import LabelledQuestion

# Small talk and questions the bot declines: no KB entry, so they must not be answered.
UNANSWERABLE_INTENTS = frozenset(
    {
        "greet",
        "goodbye",
        "affirm",
        "deny",
        "out_of_scope",
        "who_are_you",
        "how_are_you",
        "feeling_good",
        "feeling_bad",
    }
)
# Slot answers inside a dialogue (a federal state, "Mutter", "3. Monat", a code word):
# not questions a KB answers, so they are neither entries nor test questions.
SLOT_INTENTS = frozenset(
    {
        "choose_elterngeld_residence",
        "familydescription_parent",
        "familydescription_pregnancy_month",
        "enter_telegramcode",
    }
)
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def read_nlu(path: str | Path) -> dict[str, list[str]]:
    """Intents and their example utterances from a Rasa NLU Markdown file (annotations removed)."""
    intents: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            kind, _, name = line[3:].partition(":")
            current = intents.setdefault(name.strip(), []) if kind == "intent" else None
        elif line.startswith("- ") and current is not None:
            text = _ANNOTATION.sub(r"\1", line[2:]).strip()
            if text and text not in current:
                current.append(text)
    return intents


def familienlotse_sets(
    path: str | Path, *, every: int = 3
) -> tuple[list[KBEntry], list[LabelledQuestion]]:
    """Entries (one per FAQ intent) and labelled questions from a Familienlotse `nlu.md`.

    Every `every`-th utterance of an FAQ intent is held out as a question; the rest become
    the entry's question variants. All small-talk utterances are unanswerable questions.
    """
    entries: list[KBEntry] = []
    questions: list[LabelledQuestion] = []
    for intent, utterances in read_nlu(path).items():
        if intent in SLOT_INTENTS:
            continue
        if intent in UNANSWERABLE_INTENTS:
            questions.extend(LabelledQuestion(q, None) for q in utterances)
            continue
        held = [u for i, u in enumerate(utterances) if i % every == every - 1]
        variants = [u for i, u in enumerate(utterances) if i % every != every - 1]
        entry_id = intent.replace("_", "-")
        entries.append(
            KBEntry(
                id=entry_id,
                # The first variant, not the intent name: a title must not leak the label.
                title=variants[0],
                service="familienlotse",
                questions=variants,
                answer=f"(Antwort des Familienlotsen zum Thema {intent})",
            )
        )
        questions.extend(LabelledQuestion(q, entry_id) for q in held)
    return entries, questions
