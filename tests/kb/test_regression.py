"""Accuracy guard: the matcher's figures on the labelled sets must not fall back."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from kb import EvalReport, Matcher, evaluate, familienlotse_sets, load_dir, load_labelled

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"
RECORDED = json.loads((DATA / "kb_matcher_figures.json").read_text(encoding="utf-8"))
TOLERANCE = 0.02  # two percentage points


def assert_not_worse(report: EvalReport, recorded: dict[str, float]) -> None:
    assert report.top1 >= recorded["top1"] - TOLERANCE, report.format()
    assert report.confident_correct >= recorded["confident_correct"] - TOLERANCE, report.format()
    assert report.wrong_answer <= recorded["wrong_answer"] + TOLERANCE, report.format()


@pytest.mark.parametrize(
    "name",
    [
        "kb_dev",
        "kb_dev_long",
        "kb_eval",
        "kb_eval2",
        "kb_eval3",
        "kb_eval4",
        "kb_eval5",
        "kb_eval6",
        "kb_eval7",
        "kb_eval8",
        "kb_eval9",
        "kb_eval10",
        "kb_eval11",
        "kb_eval12",
        "kb_eval13",
        "kb_eval14",
        "kb_eval15",
        "kb_eval16",
        "kb_eval17",
    ],
)
def test_demo_kb_figures_hold(name: str) -> None:
    questions = DATA / f"{name}.jsonl"
    kb_dir = ROOT / "kb" / "demo"
    if not questions.is_file() or not kb_dir.is_dir():
        pytest.skip(f"{questions.name} or kb/demo is not there")
    matcher = demo_matcher()
    labelled = load_labelled(questions, known_ids={e.id for e in matcher.entries()})
    assert_not_worse(evaluate(matcher, labelled), RECORDED[name])


@cache
def demo_matcher() -> Matcher:
    # One build for all sets: matching does not change the matcher (CI time).
    return Matcher(load_dir(ROOT / "kb" / "demo"))


def test_familienlotse_figures_hold() -> None:
    entries, labelled = familienlotse_sets(DATA / "familienlotse" / "nlu.md")
    assert_not_worse(evaluate(Matcher(entries), labelled), RECORDED["familienlotse"])
