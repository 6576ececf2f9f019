"""Command line for the knowledge base: match questions and check the matcher's figures."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kb._entry import KBEntry, KBFormatError, load_dir
from kb._evaluate import (
    EvalReport,
    FuzzBaseline,
    LabelledQuestion,
    LabelledSetError,
    evaluate,
    load_labelled,
)
from kb._familienlotse import familienlotse_sets
from kb._matcher import Matcher

app = typer.Typer(
    help="Knowledge base: match questions against KB files and measure the matcher.",
    no_args_is_help=True,
    add_completion=False,
)


class Audience(StrEnum):
    external = "external"
    internal = "internal"


class Baseline(StrEnum):
    wratio = "wratio"
    token_set = "token_set"


KBOption = Annotated[
    Path,
    typer.Option("--kb", help="Directory of KB Markdown files.", file_okay=False),
]


RuleOption = Annotated[
    bool,
    typer.Option(
        "--rule",
        help="Decide with the hand rule (score bar and lead, `kb.Thresholds`) instead of the "
        "learned confidence model.",
    ),
]


def _matcher(entries: list[KBEntry], rule: bool) -> Matcher:
    return Matcher(entries, confidence=None) if rule else Matcher(entries)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _load_kb(path: Path) -> list[KBEntry]:
    try:
        return load_dir(path)
    except KBFormatError as exc:
        for error in exc.errors:
            typer.echo(f"error: {error.args[0]}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def match(
    kb: KBOption,
    city: Annotated[
        str | None, typer.Option(help="City key of the asker (e.g. muenchen); none: shared only.")
    ] = None,
    audience: Annotated[Audience, typer.Option(help="Who asks.")] = Audience.external,
    rule: RuleOption = False,
) -> None:
    """Read questions from stdin, one a line; write one JSON object a line."""
    matcher = _matcher(_load_kb(kb), rule)
    for line in sys.stdin:
        question = line.strip()
        if not question:
            continue
        result = matcher.match(question, city=city, audience=audience.value)
        record = {
            "question": question,
            "decision": result.decision,
            "entry": result.entry,
            "score": round(result.score, 1),
            "alternatives": [entry_id for entry_id, _ in result.alternatives],
        }
        typer.echo(json.dumps(record, ensure_ascii=False))


def _reports(
    entries: list[KBEntry],
    labelled: list[LabelledQuestion],
    which: list[str],
    name: str,
    rule: bool = False,
) -> list[EvalReport]:
    reports = []
    for kind in which:
        if kind == "matcher":
            label = "matcher (rule)" if rule else "matcher"
            reports.append(evaluate(_matcher(entries, rule), labelled, name=f"{label} on {name}"))
        else:
            baseline = FuzzBaseline(entries, scorer="wratio" if kind == "wratio" else "token_set")
            reports.append(evaluate(baseline, labelled, name=f"{baseline.name} on {name}"))
    return reports


def _print(reports: list[EvalReport], as_json: bool) -> None:
    if as_json:
        payload = [r.to_dict() for r in reports]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, ensure_ascii=False))
        return
    typer.echo("\n\n".join(r.format() for r in reports))


@app.command()
def check(
    kb: KBOption,
    questions: Annotated[
        Path, typer.Argument(help='JSON lines: {"q", "city", "audience", "expect": id|null}.')
    ],
    baseline: Annotated[
        Baseline | None, typer.Option(help="Measure a plain rapidfuzz baseline instead.")
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Measure the matcher and both baselines.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    rule: RuleOption = False,
) -> None:
    """Measure the matcher (or a baseline) on a labelled question file."""
    entries = _load_kb(kb)
    try:
        labelled = load_labelled(questions, known_ids={e.id for e in entries})
    except LabelledSetError as exc:
        raise _fail(str(exc)) from exc
    single = baseline.value if baseline is not None else "matcher"
    which = ["matcher", "wratio", "token_set"] if compare else [single]
    _print(_reports(entries, labelled, which, questions.name, rule), as_json)


@app.command()
def familienlotse(
    nlu: Annotated[Path, typer.Argument(help="Familienlotse Rasa NLU file (nlu.md).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    rule: RuleOption = False,
) -> None:
    """Measure the matcher and both baselines on the Familienlotse intents (a real set)."""
    if not nlu.is_file():
        raise _fail(f"{nlu}: no such file")
    entries, labelled = familienlotse_sets(nlu)
    _print(
        _reports(entries, labelled, ["matcher", "wratio", "token_set"], "familienlotse", rule),
        as_json,
    )
