"""Labelled sets, the rapidfuzz baselines and the evaluation figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb import (
    FuzzBaseline,
    KBEntry,
    LabelledQuestion,
    LabelledSetError,
    MatchResult,
    evaluate,
    familienlotse_sets,
    load_labelled,
)

FAMILIENLOTSE = Path(__file__).parents[1] / "data" / "familienlotse"


class Scripted:
    """A stand-in matcher that returns prepared results, to check the arithmetic."""

    def __init__(self, results: dict[str, MatchResult]) -> None:
        self.results = results

    def match(
        self, question: str, *, city: str | None = None, audience: str = "external"
    ) -> MatchResult:
        return self.results[question]


def test_figures_follow_their_definitions() -> None:
    labelled = [
        LabelledQuestion("q1", "a"),  # answered right
        LabelledQuestion("q2", "b"),  # answered wrong
        LabelledQuestion("q3", "c"),  # suggested, right one second
        LabelledQuestion("q4", "d"),  # handed over, nowhere
        LabelledQuestion("u1", None),  # handed over: handled
        LabelledQuestion("u2", None),  # suggested: handled, not strict handover
        LabelledQuestion("u3", None),  # answered: wrong
    ]
    results = {
        "q1": MatchResult("answer", "a", 90, [("x", 10)]),
        "q2": MatchResult("answer", "x", 80, [("b", 70)]),
        "q3": MatchResult("suggest", "x", 50, [("c", 45), ("y", 20)]),
        "q4": MatchResult("handover", "x", 10, [("y", 5), ("z", 4), ("w", 3)]),
        "u1": MatchResult("handover", None, 0, []),
        "u2": MatchResult("suggest", "x", 50, []),
        "u3": MatchResult("answer", "x", 99, []),
    }
    report = evaluate(Scripted(results), labelled, name="scripted")
    assert (report.answerable, report.unanswerable) == (4, 3)
    assert report.top1 == pytest.approx(1 / 4)
    assert report.top3 == pytest.approx(3 / 4)
    assert report.confident_correct == pytest.approx(1 / 4)
    assert report.wrong_answers == 2
    assert report.wrong_answer == pytest.approx(2 / 7)
    assert report.unanswerable_handled == pytest.approx(2 / 3)
    assert report.unanswerable_handover == pytest.approx(1 / 3)
    # Confident wrong answers come first among the worst misses, highest score first.
    assert [m.q for m in report.worst_misses[:2]] == ["u3", "q2"]
    assert "top-1" in report.format()
    assert report.to_dict()["wrong_answers"] == 2


def test_load_labelled_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    good = {"q": "Passwort vergessen", "city": "muenchen", "audience": "external", "expect": "a"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({"q": "x", "expect": "zz"}) + "\n")
    assert load_labelled(path)[0] == LabelledQuestion(
        "Passwort vergessen", "a", "muenchen", "external", 1
    )
    with pytest.raises(LabelledSetError) as info:
        load_labelled(path, known_ids={"a"})
    assert (info.value.path, info.value.line) == (path, 3)
    assert "unknown entry id 'zz'" in str(info.value)
    path.write_text('{"q": "x", "expect": null}\n{"q": oops}\n')
    with pytest.raises(LabelledSetError, match=r"set.jsonl:2: not valid JSON"):
        load_labelled(path)
    path.write_text('{"q": "x", "audience": "staff", "expect": null}\n')
    with pytest.raises(LabelledSetError, match="audience"):
        load_labelled(path)
    with pytest.raises(LabelledSetError, match="cannot read"):
        load_labelled(tmp_path / "missing.jsonl")


def kb() -> list[KBEntry]:
    return [
        KBEntry("a", "Passwort vergessen", "s", questions=["Ich habe mein Passwort vergessen"]),
        KBEntry("b", "Termin absagen", "s", questions=["Wie sage ich meinen Termin ab?"]),
        KBEntry("m", "Parken", "s", city="muenchen", questions=["Anwohnerparkausweis beantragen"]),
    ]


@pytest.mark.parametrize("scorer", ["wratio", "token_set"])
def test_baselines_answer_above_the_cutoff_and_respect_cities(scorer: str) -> None:
    baseline = FuzzBaseline(kb(), scorer=scorer)  # type: ignore[arg-type]
    assert baseline.match("Ich habe mein Passwort vergessen").decision == "answer"
    result = baseline.match("Anwohnerparkausweis beantragen", city="augsburg")
    assert result.entry != "m"
    assert baseline.match("Anwohnerparkausweis beantragen", city="muenchen").entry == "m"
    assert baseline.match("zzzz qqqq").decision == "handover"


def test_familienlotse_sets_hold_questions_out() -> None:
    entries, questions = familienlotse_sets(FAMILIENLOTSE / "nlu.md")
    ids = {e.id for e in entries}
    assert "elterngeld-topic" in ids and "greet" not in ids
    held = {q.q for q in questions if q.expect is not None}
    assert held and all(q not in e.questions for e in entries for q in held)
    assert any(q.expect is None and q.q == "hallo" for q in questions)
    assert (FAMILIENLOTSE / "LICENSE").is_file()
