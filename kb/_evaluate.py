"""Labelled question sets, plain rapidfuzz baselines and the evaluation report."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from rapidfuzz import fuzz, process, utils

from kb._entry import AUDIENCES, KBEntry
from kb._matcher import MatchResult


class LabelledSetError(ValueError):
    """A labelled question file that cannot be used; names the file, the line and why."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class LabelledQuestion:
    """A question with the entry that answers it (`expect`), or None when none should."""

    q: str
    expect: str | None
    city: str | None = None
    audience: str = "external"
    line: int = 0


def load_labelled(
    path: str | Path, *, known_ids: Collection[str] | None = None
) -> list[LabelledQuestion]:
    """Read a JSON-lines file of `{"q", "city", "audience", "expect"}` objects."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelledSetError(path, None, f"cannot read the file: {exc.strerror or exc}") from exc
    questions: list[LabelledQuestion] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledSetError(path, number, f"not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise LabelledSetError(path, number, "each line must be a JSON object")
        q = data.get("q")
        if not isinstance(q, str) or not q.strip():
            raise LabelledSetError(path, number, "field 'q' (the question) is missing or empty")
        expect = data.get("expect")
        if expect is not None and not isinstance(expect, str):
            raise LabelledSetError(path, number, "field 'expect' must be an entry id or null")
        if expect is not None and known_ids is not None and expect not in known_ids:
            raise LabelledSetError(path, number, f"unknown entry id {expect!r} in 'expect'")
        city = data.get("city")
        if city is not None and (not isinstance(city, str) or not city):
            raise LabelledSetError(path, number, "field 'city' must be a city key or null")
        audience = data.get("audience") or "external"
        if audience not in AUDIENCES:
            raise LabelledSetError(
                path, number, f"field 'audience' must be one of {', '.join(AUDIENCES)}"
            )
        questions.append(LabelledQuestion(q, expect, city, audience, number))
    return questions


class Answerer(Protocol):
    """Anything that matches a question: the `Matcher` or a baseline."""

    def match(
        self, question: str, *, city: str | None = None, audience: str = "external"
    ) -> MatchResult: ...


BaselineScorer = Literal["wratio", "token_set"]


class FuzzBaseline:
    """Plain rapidfuzz: the single closest question variant over the allowed entries.

    Answers when the score reaches `cutoff`, otherwise hands over; no suggest step.
    It honours city and audience like the matcher, so the comparison is about matching only.
    """

    default_cutoffs: ClassVar[dict[str, float]] = {"wratio": 86.0, "token_set": 92.0}

    def __init__(
        self,
        entries: Iterable[KBEntry],
        *,
        scorer: BaselineScorer = "wratio",
        cutoff: float | None = None,
    ) -> None:
        self.name = f"rapidfuzz-{scorer}"
        self._scorer = fuzz.WRatio if scorer == "wratio" else fuzz.token_set_ratio
        self.cutoff = cutoff if cutoff is not None else self.default_cutoffs[scorer]
        self._entries = [e for e in entries if e.status != "draft"]

    def _choices(self, city: str | None, audience: str) -> tuple[list[str], list[str]]:
        audiences = {"external", "internal"} if audience == "internal" else {"external"}
        texts: list[str] = []
        owners: list[str] = []
        for entry in self._entries:
            if entry.audience in audiences and entry.city in (None, city):
                for text in (entry.title, *entry.questions):
                    texts.append(text)
                    owners.append(entry.id)
        return texts, owners

    def match(
        self, question: str, *, city: str | None = None, audience: str = "external"
    ) -> MatchResult:
        texts, owners = self._choices(city, audience)
        hits = process.extract(
            question, texts, scorer=self._scorer, processor=utils.default_process, limit=40
        )
        ranked: list[tuple[str, float]] = []
        for _, score, index in hits:
            if owners[index] not in (i for i, _ in ranked):
                ranked.append((owners[index], float(score)))
        if not ranked:
            return MatchResult("handover", None, 0.0, [])
        best_id, best = ranked[0]
        decision: Literal["answer", "handover"] = "answer" if best >= self.cutoff else "handover"
        return MatchResult(decision, best_id, best, ranked[1:4])


@dataclass
class Miss:
    """One question the matcher got wrong, for the report."""

    q: str
    city: str | None
    expect: str | None
    got: str | None
    decision: str
    score: float
    line: int


@dataclass
class EvalReport:
    """Figures of one matcher on one labelled set; rates are fractions (0–1)."""

    name: str
    questions: int
    answerable: int
    unanswerable: int
    top1: float
    top3: float
    confident_correct: float
    wrong_answer: float
    wrong_answers: int
    unanswerable_handled: float
    unanswerable_handover: float
    answerable_suggest: float
    answerable_handover: float
    ms_per_question: float
    worst_misses: list[Miss] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        def pct(value: float) -> str:
            return f"{100 * value:5.1f} %"

        lines = [
            f"{self.name}: {self.questions} questions "
            f"({self.answerable} answerable, {self.unanswerable} unanswerable)",
            f"  top-1 accuracy (answerable)          {pct(self.top1)}",
            f"  top-3 accuracy (answerable)          {pct(self.top3)}",
            f"  confident and correct (answerable)   {pct(self.confident_correct)}",
            f"  wrong confident answers (all)        {pct(self.wrong_answer)}"
            f"  ({self.wrong_answers})",
            f"  unanswerable not answered            {pct(self.unanswerable_handled)}",
            f"  unanswerable handed over (strict)    {pct(self.unanswerable_handover)}",
            f"  answerable: suggest / handover       {pct(self.answerable_suggest)}"
            f" / {pct(self.answerable_handover)}",
            f"  time per question                    {self.ms_per_question:6.2f} ms",
        ]
        if self.worst_misses:
            lines.append("  worst misses:")
            for miss in self.worst_misses:
                where = f"line {miss.line}: " if miss.line else ""
                lines.append(
                    f"    {where}{miss.q!r} [{miss.city or '-'}] expect={miss.expect}"
                    f" got={miss.got} ({miss.decision}, {miss.score:.1f})"
                )
        return "\n".join(lines)


def evaluate(
    matcher: Answerer,
    labelled: Sequence[LabelledQuestion],
    *,
    name: str | None = None,
    worst: int = 10,
) -> EvalReport:
    """Run every labelled question through `matcher.match` and compute the figures.

    An unanswerable question counts as handled when the decision is not `answer`
    (a suggestion lets the citizen still pick "none of these" and reach a person).
    """
    answerable = [q for q in labelled if q.expect is not None]
    unanswerable = [q for q in labelled if q.expect is None]
    top1 = top3 = confident = wrong = handled = strict = suggested = handed = 0
    misses: list[tuple[tuple[int, float], Miss]] = []
    started = time.perf_counter()
    for item in labelled:
        result = matcher.match(item.q, city=item.city, audience=item.audience)
        ranked = [result.entry, *(i for i, _ in result.alternatives)][:3]
        miss = Miss(
            item.q, item.city, item.expect, result.entry, result.decision, result.score, item.line
        )
        if item.expect is None:
            if result.decision == "answer":
                wrong += 1
                misses.append(((0, -result.score), miss))
            else:
                handled += 1
                strict += result.decision == "handover"
            continue
        top1 += result.entry == item.expect
        top3 += item.expect in ranked
        if result.decision == "answer":
            if result.entry == item.expect:
                confident += 1
            else:
                wrong += 1
                misses.append(((0, -result.score), miss))
        else:
            suggested += result.decision == "suggest"
            handed += result.decision == "handover"
            if result.entry != item.expect:
                misses.append(((1, -result.score), miss))
    elapsed = time.perf_counter() - started
    misses.sort(key=lambda pair: pair[0])
    n_ans = max(1, len(answerable))
    n_un = max(1, len(unanswerable))
    return EvalReport(
        name=name or str(getattr(matcher, "name", type(matcher).__name__)),
        questions=len(labelled),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        top1=top1 / n_ans,
        top3=top3 / n_ans,
        confident_correct=confident / n_ans,
        wrong_answer=wrong / max(1, len(labelled)),
        wrong_answers=wrong,
        unanswerable_handled=handled / n_un,
        unanswerable_handover=strict / n_un,
        answerable_suggest=suggested / n_ans,
        answerable_handover=handed / n_ans,
        ms_per_question=1000 * elapsed / max(1, len(labelled)),
        worst_misses=[m for _, m in misses[:worst]],
    )
