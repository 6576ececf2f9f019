"""The KB matcher: an incremental inverted index (stems + character 3-grams) with a fuzzy rerank."""

from __future__ import annotations

import bisect
import math
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from kb._classifier import VariantClassifier, trained
from kb._confidence import ConfidenceModel, shipped_model, shipped_plain_model
from kb._confidence import features as confidence_features
from kb._entry import AUDIENCES, KBEntry
from kb._text import Analyzer, Token, _data_text, _listed, _word_list, split_asides, split_focus

Decision = Literal["answer", "suggest", "handover"]
_Partition = tuple[str | None, str]


@dataclass(frozen=True)
class Thresholds:
    """Where the decisions fall; the defaults come from the labelled sets (docs/matching.md)."""

    # Confident answer: score high enough and the best entry clearly ahead of the rest —
    # either by `margin` points, or because it *dominates* every entry within `margin`
    # points: it covers question words worth at least `dominance` (share of the question's
    # weighted words) that the other lacks, and the other covers no question word it lacks.
    # 70 since the twenty-first round (was 60): the variant classifier adds up to
    # `Weights.classifier` × 100 points, mostly to the best entry. Over the labelled sets
    # (all but the blind kb_eval15) the rule then answered 3,117 right / 117 wrong at 60 and
    # 2,715 / 61 at 70 (before the classifier, at 60: 2,509 / 63).
    answer: float = 70.0
    margin: float = 12.0
    # Above 1.0 the dominance path is off (answer needs the plain margin).
    dominance: float = 0.2
    # No confident answer when words the KB does not know at all make up at least this share
    # of the question's weighted words ("Termin beim Arzt absagen"): the question is about
    # something the KB has no entry for, however well the rest matches. Above 1.0: off.
    unknown_share: float = 0.3
    # Long questions (ninth round): a message that tells its story first ("Ich bin letzte Woche
    # nach Augsburg gezogen, …, kann ich mich online ummelden?") shares only part of its words
    # with any variant, so every similarity is diluted and the score sits lower than for a
    # short question on the same topic, while the lead over the runner-up stays as telling.
    # From `long_words` content words on, the answer bar drops by `long_relief` points when the
    # best entry leads by at least `long_margin`, and the unknown-word guard allows up to
    # `long_unknown_share` (the story's own words: places, employers, "Oktoberfest").
    long_words: int = 10
    long_relief: float = 19.0
    long_margin: float = 10.0
    long_unknown_share: float = 0.4
    # A question of a single content word is answered only when that word names the best
    # entry's title (eleventh round): "Hundesteuer" is the entry "Hundesteuer in München",
    # while "wie spät ist es" shares nothing with "Formular zwischenspeichern" but the "spät"
    # of one of its variants ("... und später weiter ausfüllen"). Otherwise: suggestions.
    single_word_title: bool = True
    # Offer "Meinten Sie …?" choices from here; below it the question goes to a person.
    suggest: float = 42.0
    # Below this nothing is even reported as the best guess.
    floor: float = 15.0


@dataclass(frozen=True)
class Weights:
    """How the final score (0–100) mixes the index scores and the fuzzy rerank."""

    words: float = 0.015
    chars: float = 0.157
    fuzzy: float = 0.219
    dice: float = 0.195
    # The question's words weighted by how many of the entry's variants (title included) use
    # them (sixteenth round): the share of variants to the power `profile_power`, summed with
    # the words' weights and divided by their total. Coverage asks only whether *some* variant
    # has a word; an entry that says "Passwort" in 15 of 20 variants is more about passwords
    # than its sibling that says it once ("Benutzername vergessen, Passwort weiß ich noch").
    profile: float = 0.414
    profile_power: float = 0.3
    # fuzzy = (1 − s) · token_sort_ratio + s · token_set_ratio of a variant, s = `fuzzy_set`;
    # against a variant with fewer than 1 / `long_ratio` of the question's words, s =
    # `long_fuzzy_set`: token_sort_ratio then mostly measures the length difference, while
    # token_set_ratio asks whether the variant's words are in the question (ninth round).
    fuzzy_set: float = 0.5
    long_fuzzy_set: float = 0.9
    long_ratio: float = 1.5
    # Bonus for an entry of the asker's own city over a shared one (in score units / 100).
    city: float = 0.02
    # Bonus for an internal entry when staff ask (audience internal; eighteenth round): a
    # colleague who asks how a refund or a form's payment works means the office's own
    # procedure far more often than the citizens' side of it (518 of 549 answerable staff
    # questions in the labelled sets), while the two entries share most of their words.
    internal: float = 0.08
    # The idf-weighted share of the question's words that the entry's answer text contains
    # (tenth round): citizens word a question with what the answer explains ("Handyhülle",
    # "Vollmacht", "Kartenleser") more often than any listed variant foresees. The five
    # weights words, chars, fuzzy, dice and profile sum to 1 (city and body come on top).
    body: float = 0.035
    # On top of `body` for a long question (`Thresholds.long_words` content words or more;
    # thirteenth round): its story is told in the answer's words more than in any variant's.
    long_body: float = 0.047
    # Query words the KB does not know count this much (of a rare word) against coverage.
    unknown: float = 0.5
    # Words of a clause that names what is not the problem ("den Benutzernamen weiß ich
    # noch", `kb._text.split_asides`; thirteenth round) count this much; they are left out of
    # the character and fuzzy scores. 1.0 or more: off (such clauses count like any other).
    aside: float = 0.2
    # The parts of a compound the KB also knows whole ("Ausweis" in "Personalausweis").
    part: float = 0.5
    # A word only found after typo correction.
    corrected: float = 0.8
    # An unknown word that starts or ends KB words ("Version" / "Versionierung"), split
    # evenly over them.
    prefix: float = 0.5
    # fuzzy = (1 − v) · closest variant + v · second-closest variant of the entry, v =
    # `support` (fourteenth round): an entry whose variants say the question more than once
    # is a safer answer than one with a single variant that happens to share the question's
    # words. 0.0: the closest variant alone (before the fourteenth round).
    support: float = 0.35
    # The probability that a linear classifier trained on the KB's variants gives the entry
    # (`kb._classifier`; twenty-first round), in score units / 100. It learns what tells
    # sibling entries apart, where the similarity scores above count their shared words.
    # 0.0: off.
    classifier: float = 0.15
    # A message's words found only in its sentences without a question mark — mostly the
    # story told before the question ("Ich bin 74 und nicht fit am Computer. … Kostet das
    # was?"; `kb._text.split_focus`) — count this much in word coverage, dice, profile and
    # answer text (nineteenth round); the char and fuzzy scores see the whole message.
    # 1.0: off (before the nineteenth round).
    context: float = 0.45


@dataclass
class MatchResult:
    """The outcome of one question: a decision, the best entry and the runners-up."""

    decision: Decision
    entry: str | None
    score: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    suggest_threshold: float = 0.0
    # Why the best entry is no confident answer (None when it is, or when there is none):
    # "low_score", "close_second", "unknown_words" or "single_word" (see `Thresholds`);
    # "other_body" when the question names another body that the entry does not
    # (kb/data/other_bodies.txt; the rule holds an answer back for it since the nineteenth
    # round); with the confidence model "low_confidence" when only the model holds it back.
    reason: str | None = None
    # The confidence model's probability that `entry` is right (None without a model).
    confidence: float | None = None
    # The question's words that name another body (bank, tax office …; kb/data/other_bodies.txt)
    # which `entry` never names, as the list writes them: what to tell the asker to turn to.
    other_bodies: list[str] = field(default_factory=list)

    @property
    def suggestions(self) -> list[str]:
        """Ids to offer for "Meinten Sie …?" (up to three, best first); empty unless suggest."""
        if self.decision != "suggest" or self.entry is None:
            return []
        ranked = [(self.entry, self.score), *self.alternatives]
        return [i for i, s in ranked if s >= self.suggest_threshold][:3]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "entry": self.entry,
            "score": round(self.score, 1),
            "alternatives": [[i, round(s, 1)] for i, s in self.alternatives],
            "suggestions": self.suggestions,
        }


@dataclass(slots=True)
class Candidate:
    """An entry found for a question with its feature scores (0–1 each), for ranking and tuning."""

    entry_id: str
    words: float
    chars: float
    fuzzy: float = 0.0
    dice: float = 0.0
    # 1.0 when the entry is specific to the asker's city (0.0 for shared entries).
    city: float = 0.0
    # 1.0 for an internal entry when staff ask (see `Weights.internal`).
    internal: float = 0.0
    # Share of the question's weighted words found in the entry's answer text.
    body: float = 0.0
    # The question's weighted words by the share of the entry's variants that use them.
    profile: float = 0.0
    # The variant classifier's probability for the entry (`kb._classifier`; 0.0 without one).
    classifier: float = 0.0


@dataclass
class _Ranked:
    """The ranked entries of one question and what the decision needs beyond the scores."""

    scored: list[tuple[str, float]]
    # For each entry in `scored`: its slot (to look up the question words it covers).
    slots: list[int]
    # The question's words with their weights (idf × how sure the word is), as in coverage.
    term_weights: dict[str, float]
    # How many content words the question has (after stop words, before weighting).
    words: int = 0
    # For each entry in `scored`: its feature scores.
    candidates: list[Candidate] = field(default_factory=list)
    # The question's words that name another body (`Matcher.other_bodies`): bank, tax office …
    other_bodies: frozenset[str] = frozenset()


@dataclass
class _Doc:
    entry: KBEntry
    slot: int
    partition: _Partition
    # Title and questions as space-joined stems: the fuzzy rerank compares against these.
    variants: tuple[str, ...]
    # For each of `variants`: its number of words (the rerank's `Weights.long_ratio` test)
    # and its words in sorted order (token_sort_ratio is the plain ratio of sorted words, so
    # the rerank sorts each variant once here instead of once per question).
    variant_words: array[int]
    sorted_variants: tuple[str, ...]
    terms: tuple[str, ...]
    # For each of `terms`: in how many of `variants` it occurs.
    term_counts: array[int]
    # Grams are not kept (memory): removal recomputes them from `variants`.
    surface: tuple[str, ...]
    # The answer's stems and compound parts (interned, sorted): a weak signal for question
    # words that no variant has but the answer explains (see `Weights.body`).
    body: tuple[str, ...] = ()

    def grams(self) -> set[str]:
        return _grams({word for variant in self.variants for word in variant.split()})


class _Postings:
    """Posting lists of one partition (city × audience); slots ascend, so lists stay sorted."""

    def __init__(self) -> None:
        self.words: dict[str, array[int]] = {}
        self.grams: dict[str, array[int]] = {}


def _accumulate(
    lists: list[array[int]], shares: list[float], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The posting lists' slots end to end, and per slot (0 to `size`) the sum of the shares of
    the lists it is on, added in list order (as a loop over the lists would)."""
    if not lists:
        return np.zeros(0, dtype=np.int32), np.zeros(size)
    slots = np.concatenate([np.frombuffer(postings, dtype=np.int32) for postings in lists])
    weights = np.repeat(np.asarray(shares), [len(postings) for postings in lists])
    return slots, np.bincount(slots, weights=weights, minlength=size)


def _sorted_words(text: str) -> str:
    """`text`'s words in sorted order, as token_sort_ratio compares them (`text` when sorted)."""
    ordered = " ".join(sorted(text.split()))
    return text if ordered == text else ordered


def _grams(stems: Iterable[str]) -> set[str]:
    grams: set[str] = set()
    for stem in stems:
        padded = f"#{stem}#"
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def _stems_and_parts(tokens: Iterable[Token]) -> set[str]:
    """The stems of the tokens and of their compound parts: what an entry "covers"."""
    terms: set[str] = set()
    for token in tokens:
        terms.add(token.stem)
        terms.update(token.parts)
    return terms


def _position(sorted_terms: tuple[str, ...], term: str) -> int:
    """Where `term` is in `sorted_terms`, or -1."""
    i = bisect.bisect_left(sorted_terms, term)
    return i if i < len(sorted_terms) and sorted_terms[i] == term else -1


def _contains(sorted_terms: tuple[str, ...], term: str) -> bool:
    return _position(sorted_terms, term) >= 0


def load_other_bodies(text: str | None = None, *, as_written: bool = False) -> list[str]:
    """The words of kb/data/other_bodies.txt (or of `text`): one per line, # comments.

    Folded (ä -> ae, lower case) unless `as_written`, which keeps them for showing.
    """
    source = _data_text("other_bodies.txt") if text is None else text
    return sorted(set(_listed(source)) if as_written else _word_list(source))


def other_body_names(analyzer: Analyzer, words: Iterable[str]) -> dict[str, str]:
    """Each word's stem (as a question's words get it) -> the word; each must be one word."""
    names: dict[str, str] = {}
    for word in words:
        tokens = analyzer.tokens(word)
        if len(tokens) != 1:
            raise ValueError(
                f"other bodies: {word!r} must be one content word (not a stop word), "
                f"got {len(tokens)}"
            )
        names.setdefault(tokens[0].stem, word)
    return names


def _idf(df: int, n: int) -> float:
    # BM25's idf, kept positive: a word in every entry still counts a little.
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


class Matcher:
    """Matches questions to KB entries, city- and audience-aware; updates are incremental."""

    # The best entries by index score that the rerank scores (twenty-third round: 100, was
    # 200). Over kb_eval to kb_eval16 (5,840 questions) the best entry, decision and top-3
    # were the same with 100 as with 200 on the demo KB, and within 1 to 5 questions (the
    # same totals right and wrong) on the demo KB with 880 or 9,880 generated entries added;
    # the rerank's time grows with this number (docs/matching.md, Speed).
    candidates = 100
    dice_candidates = 20
    # Words and grams in more entries than these shares do not count (see _candidates) —
    # but a word only from `min_common_words` entries on, a gram from `min_common_grams`.
    common_word_share = 0.10
    common_gram_share = 0.02
    # Eighteenth round: 100 instead of 50. In a KB of a few hundred entries a word found in
    # half of them ("beantragen", "online") still tells siblings apart ("Reisepass online
    # beantragen" vs. "… von jemand anderem abholen lassen"); from 1,000 entries on the
    # share decides, so large KBs' posting lists stay as short as before.
    min_common_words = 100
    min_common_grams = 50
    # An unknown question word this long may stand for a KB word it starts or ends
    # ("Version" -> "Versionierung", "Formularversion"); more matches than this: too vague.
    min_prefix = 5
    max_extensions = 4
    # The variant classifier (`Weights.classifier`) is trained up to this many entries; a
    # larger KB is ranked without it and decided by the confidence model's twin trained
    # without it (so is a smaller one, `classifier_min_entries`). Training time and memory
    # grow with entries × variants (about 1–2 s for the demo KB's 119 entries and 3,000
    # variants, some 25 s at 1,000 entries × 5 variants), and each question pays about 2 ms
    # for it (docs/matching.md, Speed).
    classifier_max_entries = 500
    # … and from this many on: the confidence model learned how far to trust the classifier
    # on the demo KB (119 entries). On smaller KBs the classifier is surer of the nearest
    # entry than that lesson allows: on parts of the demo KB (2 to 13 of its 16 services, blind
    # sets kb_eval13-15, the removed services' questions unanswerable) it added 9-17 right
    # answers for 9-23 wrong ones at 16 to 65 entries, but 37-38 right for 3-7 wrong at 95
    # and 98 (docs/matching.md, twenty-second round).
    classifier_min_entries = 80

    def __init__(
        self,
        entries: Iterable[KBEntry] = (),
        *,
        synonyms: Mapping[str, Iterable[str]] | None = None,
        thresholds: Thresholds | None = None,
        weights: Weights | None = None,
        extra_stopwords: Iterable[str] = (),
        confidence: ConfidenceModel | Literal["shipped"] | None = "shipped",
        other_bodies: Iterable[str] | None = None,
    ) -> None:
        # `extra_stopwords`: e.g. the names of the cities in the database, which the city
        # argument already carries (kb/data/stopwords.txt names the founding cities only).
        self.analyzer = Analyzer(synonyms, extra_stopwords=extra_stopwords)
        self.thresholds = thresholds or Thresholds()
        self.weights = weights or Weights()
        # The learned answer decision (`kb._confidence`); None: the hand rule of `thresholds`.
        self.confidence = shipped_model() if confidence == "shipped" else confidence
        # The shipped model has learned from the variant classifier's opinion; a KB ranked
        # without one (too large or too small: `classifier_max_entries`, `classifier_min_entries`)
        # is decided by its twin trained without it. A model passed in is used either way.
        self._plain = shipped_plain_model() if confidence == "shipped" else None
        # Stems of words that name other bodies than the cities' services (None: the shipped
        # list, kb/data/other_bodies.txt); see `other_body_words`.
        self._body_names = other_body_names(
            self.analyzer,
            load_other_bodies(as_written=True) if other_bodies is None else other_bodies,
        )
        self.other_bodies = frozenset(self._body_names)
        self._entries: dict[str, KBEntry] = {}
        self._docs: dict[int, _Doc] = {}
        self._slot_of: dict[str, int] = {}
        self._next_slot = 0
        self._parts: dict[_Partition, _Postings] = {}
        self._df_words: Counter[str] = Counter()
        self._df_grams: Counter[str] = Counter()
        self._surface: Counter[str] = Counter()
        self._vocab_by_len: dict[int, list[str]] | None = None
        self._vocab_sorted: tuple[list[str], list[str]] | None = None
        # The variant classifier, trained when first needed after a change (see `_classifier`).
        self._trained: VariantClassifier | None = None
        self._trained_fresh = False
        self._allowed: dict[tuple[str | None, str], np.ndarray] = {}
        for entry in entries:
            self.add(entry)

    # --- the KB -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def get(self, entry_id: str) -> KBEntry | None:
        return self._entries.get(entry_id)

    def entries(self) -> list[KBEntry]:
        return list(self._entries.values())

    def add(self, entry: KBEntry) -> None:
        """Add a new entry (draft entries are kept but never matched); the id must be new."""
        if entry.id in self._entries:
            raise ValueError(f"entry {entry.id!r} is already in the matcher; use upsert()")
        if entry.audience not in AUDIENCES:
            raise ValueError(f"entry {entry.id!r}: audience must be one of {', '.join(AUDIENCES)}")
        self._entries[entry.id] = entry
        if entry.status == "draft":
            return
        self._index(entry)

    def upsert(self, entry: KBEntry) -> None:
        """Add or replace an entry; new question variants take effect at once."""
        if entry.id in self._entries:
            self.remove(entry.id)
        self.add(entry)

    def remove(self, entry_id: str) -> KBEntry:
        """Remove an entry by id and return it; `KeyError` when there is none."""
        entry = self._entries.pop(entry_id)
        slot = self._slot_of.pop(entry_id, None)
        if slot is not None:
            self._unindex(self._docs.pop(slot))
        return entry

    def _index(self, entry: KBEntry) -> None:
        slot = self._next_slot
        self._next_slot += 1
        texts = [entry.title, *entry.questions]
        variants: list[str] = []
        counts: Counter[str] = Counter()
        for text in texts:
            tokens = self.analyzer.tokens(text)
            variants.append(" ".join(t.stem for t in tokens))
            counts.update(_stems_and_parts(tokens))
        terms = sorted(counts)
        # Whole words of the KB help split compounds in questions ("Kontoübersicht").
        surface = tuple({w for text in texts for w in self.analyzer.content_words(text)})
        body = _stems_and_parts(self.analyzer.tokens(entry.answer))
        doc = _Doc(
            entry=entry,
            slot=slot,
            partition=(entry.city, entry.audience),
            variants=tuple(variants),
            variant_words=array("H", (min(65535, v.count(" ") + 1) for v in variants)),
            sorted_variants=tuple(_sorted_words(v) for v in variants),
            terms=tuple(terms),
            term_counts=array("H", (min(65535, counts[term]) for term in terms)),
            surface=surface,
            body=tuple(sorted(sys.intern(term) for term in body)),
        )
        part = self._parts.setdefault(doc.partition, _Postings())
        for term in doc.terms:
            part.words.setdefault(term, array("i")).append(slot)
            if self._df_words[term] == 0:
                self._vocab_by_len = None
                self._vocab_sorted = None
            self._df_words[term] += 1
        for gram in doc.grams():
            part.grams.setdefault(gram, array("i")).append(slot)
            self._df_grams[gram] += 1
        self._surface.update(surface)
        self._docs[slot] = doc
        self._trained_fresh = False
        self._slot_of[entry.id] = slot

    def _unindex(self, doc: _Doc) -> None:
        self._trained_fresh = False
        part = self._parts[doc.partition]
        for table, counts, keys in (
            (part.words, self._df_words, doc.terms),
            (part.grams, self._df_grams, doc.grams()),
        ):
            for key in keys:
                postings = table[key]
                postings.remove(doc.slot)
                if not postings:
                    del table[key]
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]
                    if counts is self._df_words:
                        self._vocab_by_len = None
                        self._vocab_sorted = None
        self._surface.subtract(doc.surface)
        for word in doc.surface:
            if self._surface[word] <= 0:
                del self._surface[word]

    # --- matching ---------------------------------------------------------------------

    def match(
        self, question: str, *, city: str | None = None, audience: str = "external"
    ) -> MatchResult:
        """Match one question; the decision follows `self.thresholds`."""
        ranked = self._ranked(question, city=city, audience=audience)
        t = self.thresholds
        scored = ranked.scored
        if not scored or scored[0][1] < t.floor:
            return MatchResult("handover", None, scored[0][1] if scored else 0.0, [], t.suggest)
        best_id, best = scored[0]
        second = scored[1][1] if len(scored) > 1 else 0.0
        alternatives = [(i, s) for i, s in scored[1:4] if s >= t.floor]
        decision: Decision
        probability = None
        named = self.other_body_words(ranked)
        model = self.decision_model
        if model is None:
            reason = self._rule_reason(ranked, best, second, named)
        else:
            # The model decides; the rule's reason still says why an answer is held back.
            probability = model.probability(confidence_features(self, ranked))
            if self._single_word(ranked):
                reason = "single_word"
            elif probability >= model.threshold:
                reason = None
            elif named:
                reason = "other_body"
            else:
                reason = self._held_back(ranked, best, second) or "low_confidence"
        if reason is None:
            decision = "answer"
        elif best >= t.suggest:
            decision = "suggest"
        else:
            decision = "handover"
        return MatchResult(
            decision,
            best_id,
            best,
            alternatives,
            t.suggest,
            reason,
            probability,
            [self._body_names[stem] for stem in named],
        )

    @property
    def decision_model(self) -> ConfidenceModel | None:
        """The confidence model that decides now (None: the hand rule of `thresholds`)."""
        if self._plain is not None and self._classifier() is None:
            return self._plain
        return self.confidence

    def _rule_reason(
        self, ranked: _Ranked, best: float, second: float, named: list[str]
    ) -> str | None:
        """The hand rule: None for an answer, else why not (`named`: `other_body_words`)."""
        reason = self._held_back(ranked, best, second)
        return "other_body" if reason is None and named else reason

    def _held_back(self, ranked: _Ranked, best: float, second: float) -> str | None:
        """None when the best entry is a confident answer, else why not (see `Thresholds`)."""
        t = self.thresholds
        unknown = self._unknown_share(ranked)
        lead = best - second
        long = ranked.words >= t.long_words
        if (
            best >= t.answer
            and unknown < t.unknown_share
            and (lead >= t.margin or self._dominates(ranked))
        ) or (
            long
            and best >= t.answer - t.long_relief
            and lead >= t.long_margin
            and unknown < t.long_unknown_share
        ):
            # Checked last: it tokenises the best entry's title.
            return "single_word" if self._single_word(ranked) else None
        if best < (t.answer - t.long_relief if long else t.answer):
            return "low_score"
        if unknown >= (t.long_unknown_share if long else t.unknown_share):
            return "unknown_words"
        return "close_second"

    def _single_word(self, ranked: _Ranked) -> bool:
        """A one-word question whose word is not in the best entry's title: no answer."""
        t = self.thresholds
        return t.single_word_title and ranked.words == 1 and not self._names_title(ranked)

    def _names_title(self, ranked: _Ranked) -> bool:
        """Whether a question word is a word (or compound part) of the best entry's title."""
        title = self._docs[ranked.slots[0]].entry.title
        terms = _stems_and_parts(self.analyzer.tokens(title, self._surface, self._df_words))
        return any(term in terms for term in ranked.term_weights)

    def other_body_words(self, ranked: _Ranked) -> list[str]:
        """The question's words naming another body that the best entry never uses.

        "Die PIN meiner Bankkarte ist gesperrt" names a bank; the online ID's PUK entry does
        not, so the question is most likely about the bank card. A word the best entry's title
        or variants have ("Bank" in the card-payment entry's) does not count.
        """
        if not ranked.other_bodies or not ranked.slots:
            return []
        terms = self._docs[ranked.slots[0]].terms
        return sorted(t for t in ranked.other_bodies if not _contains(terms, t))

    def _unknown_share(self, ranked: _Ranked) -> float:
        """The share of the question's weighted words that no KB entry knows."""
        weights = ranked.term_weights
        total = sum(weights.values())
        if total <= 0.0:
            return 0.0
        known = self._df_words
        return sum(value for term, value in weights.items() if term not in known) / total

    def _dominates(self, ranked: _Ranked) -> bool:
        """Whether the best entry beats every close runner-up on the question's words.

        A runner-up within `margin` points is no real alternative when it covers no question
        word the best entry lacks, while the best entry covers words worth at least
        `dominance` of the question that the runner-up lacks: the question then names
        something only the best entry is about. Typical case: sibling entries of one service
        (Postfach: "Dokumente speichern" vs "Nachrichten finden") whose fuzzy scores sit close.
        """
        t = self.thresholds
        if t.dominance > 1.0 or len(ranked.scored) < 2:
            return False
        weights = ranked.term_weights
        total = sum(weights.values())
        if total <= 0.0:
            return False
        docs = self._docs
        best_terms = set(docs[ranked.slots[0]].terms)
        covered = {term: value for term, value in weights.items() if term in best_terms}
        best_score = ranked.scored[0][1]
        for (_, score), slot in zip(ranked.scored[1:], ranked.slots[1:], strict=True):
            if best_score - score >= t.margin:
                break
            other = set(docs[slot].terms)
            if any(term in other and term not in best_terms for term in weights):
                return False
            extra = sum(value for term, value in covered.items() if term not in other)
            if extra < t.dominance * total:
                return False
        return True

    def search(
        self,
        question: str,
        *,
        city: str | None = None,
        audience: str = "external",
        limit: int = 10,
    ) -> list[tuple[str, float]]:
        """The entries a question may ask for, best first, as (id, score 0–100)."""
        return self._rank(question, city=city, audience=audience, limit=limit)

    @staticmethod
    def _visible(city: str | None, audience: str) -> list[tuple[str | None, str]]:
        """The partitions (city, audience) an asker may see."""
        if audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}, not {audience!r}")
        # Staff see what citizens see plus internal entries; a city sees shared + its own.
        audiences = ["external", "internal"] if audience == "internal" else ["external"]
        cities: list[str | None] = [None] if city is None else [None, city]
        return [(c, a) for c in cities for a in audiences]

    def _partitions(self, city: str | None, audience: str) -> list[_Postings]:
        return [self._parts[key] for key in self._visible(city, audience) if key in self._parts]

    def prepare(self) -> bool:
        """Train the variant classifier now if a change made it due (else the next question
        does); True when the matcher ranks with one."""
        return self._classifier() is not None

    def _classifier(self) -> VariantClassifier | None:
        """The variant classifier for the current entries; None when off or the KB too large
        or too small."""
        size = len(self._docs)
        if self.weights.classifier <= 0.0 or not (
            max(2, self.classifier_min_entries) <= size <= self.classifier_max_entries
        ):
            return None
        if not self._trained_fresh:
            variants = {doc.entry.id: doc.variants for doc in self._docs.values()}
            try:
                self._trained = trained(variants)
            except ValueError:
                # No variant has a word the vectorisers keep (only stop words): no classifier.
                self._trained = None
            self._allowed = {}
            self._trained_fresh = True
        return self._trained

    def _class_probabilities(
        self, query_text: str, city: str | None, audience: str, labels: Iterable[str]
    ) -> dict[str, float]:
        """The classifier's probabilities of those `labels` (entry ids) this asker may
        see ({} without a classifier)."""
        classifier = self._classifier()
        if classifier is None:
            return {}
        key = (city, audience)
        allowed = self._allowed.get(key)
        if allowed is None:
            visible = set(self._visible(city, audience))
            allowed = self._allowed[key] = classifier.mask(
                [doc.entry.id for doc in self._docs.values() if doc.partition in visible]
            )
        return classifier.probabilities(query_text, allowed, labels)

    def _vocabulary(self) -> dict[int, list[str]]:
        if self._vocab_by_len is None:
            by_len: dict[int, list[str]] = {}
            for term in self._df_words:
                by_len.setdefault(len(term), []).append(term)
            self._vocab_by_len = by_len
        return self._vocab_by_len

    def _correct(self, stem: str) -> str | None:
        """The nearest known stem within a small edit distance, for typos."""
        if len(stem) < 5 or stem.isdigit():
            return None
        limit = 1 if len(stem) < 9 else 2
        vocab = self._vocabulary()
        best: tuple[int, int, str] | None = None
        for length in range(len(stem) - limit, len(stem) + limit + 1):
            words = vocab.get(length)
            if not words:
                continue
            hit = process.extractOne(stem, words, scorer=Levenshtein.distance, score_cutoff=limit)
            if hit is not None:
                # Prefer the closest, then the most common word (likelier meant).
                rank = (int(hit[1]), -self._df_words[hit[0]], hit[0])
                if best is None or rank < best:
                    best = rank
        return best[2] if best is not None else None

    def _extensions(self, stem: str) -> list[str]:
        """Known stems an unknown word is the start or the end of.

        "version" -> ["versionier", "formularversion"]: a word the KB only has inside a longer
        word or a compound. Empty when the word is short or there are too many of them.
        """
        if len(stem) < self.min_prefix or stem.isdigit():
            return []
        if self._vocab_sorted is None:
            terms = [t for t in self._df_words if not t.isdigit()]
            self._vocab_sorted = (sorted(terms), sorted(t[::-1] for t in terms))
        forward, backward = self._vocab_sorted
        found: list[str] = []
        for vocab, key, flip in ((forward, stem, False), (backward, stem[::-1], True)):
            for i in range(bisect.bisect_left(vocab, key), len(vocab)):
                term = vocab[i]
                if not term.startswith(key):
                    break
                if len(term) - len(key) >= (3 if flip else 2):
                    found.append(term[::-1] if flip else term)
                    if len(found) > self.max_extensions:
                        return []
        return found

    def _query_terms(self, tokens: list[Token]) -> dict[str, float]:
        w = self.weights
        known = self._df_words
        weights: dict[str, float] = {}

        def put(term: str, weight: float) -> None:
            if weight > weights.get(term, 0.0):
                weights[term] = weight

        for token in tokens:
            # A number the KB does not know ("25 MB", "am 23.", "3 mal") is a detail of the
            # asker's case, not a topic: it counts neither as covered nor as unknown.
            if token.stem.isdigit() and token.stem not in known:
                continue
            if token.stem in known:
                put(token.stem, 1.0)
                for part in token.parts:
                    if part in known:
                        put(part, w.part)
                continue
            known_parts = [p for p in token.parts if p in known]
            if known_parts:
                for part in token.parts:
                    put(part, 1.0 if part in known else w.unknown)
                continue
            corrected = self._correct(token.stem)
            if corrected is not None:
                put(corrected, w.corrected)
                continue
            extended = self._extensions(token.stem)
            for term in extended:
                put(term, w.prefix / len(extended))
            if not extended:
                put(token.stem, w.unknown)
        return weights

    def _add_weaker(
        self, term_weights: dict[str, float], tokens: list[Token], factor: float
    ) -> None:
        """Adds the words of `tokens` not yet in `term_weights`, at `factor` of their weight."""
        for term, value in self._query_terms(tokens).items():
            if term not in term_weights:
                term_weights[term] = value * factor

    def _profile(self, doc: _Doc, term_idf: Mapping[str, float]) -> float:
        """The question's weighted words, each by the share of `doc`'s variants that use it."""
        terms, counts = doc.terms, doc.term_counts
        size = len(doc.variants)
        power = self.weights.profile_power
        value = 0.0
        for term, weight in term_idf.items():
            i = _position(terms, term)
            if i >= 0:
                value += weight * (counts[i] / size) ** power
        return value

    def _rank(
        self, question: str, *, city: str | None, audience: str, limit: int
    ) -> list[tuple[str, float]]:
        return self._ranked(question, city=city, audience=audience).scored[:limit]

    def _ranked(self, question: str, *, city: str | None, audience: str) -> _Ranked:
        w = self.weights
        term_weights: dict[str, float] = {}
        counts: list[int] = []
        others: set[str] = set()
        found = self._candidates(
            question,
            city=city,
            audience=audience,
            terms_out=term_weights,
            words_out=counts,
            others_out=others,
        )
        # A long message tells its case in words the answer explains more than any variant
        # names ("Knie-OP", "mein Sohn könnte vorbeigehen"): the answer text counts more.
        body = w.body
        if counts and counts[0] >= self.thresholds.long_words:
            body += w.long_body
        scored = [
            (
                slot,
                c.entry_id,
                min(
                    100.0,
                    100.0
                    * (
                        w.words * c.words
                        + w.chars * c.chars
                        + w.fuzzy * c.fuzzy
                        + w.dice * c.dice
                        + w.city * c.city
                        + w.internal * c.internal
                        + body * c.body
                        + w.profile * c.profile
                        + w.classifier * c.classifier
                    ),
                ),
                c,
            )
            for slot, c in found
        ]
        scored.sort(key=lambda item: (-item[2], item[1]))
        return _Ranked(
            scored=[(entry_id, score) for _, entry_id, score, _ in scored],
            slots=[slot for slot, _, _, _ in scored],
            term_weights=term_weights,
            words=counts[0] if counts else 0,
            candidates=[c for _, _, _, c in scored],
            other_bodies=frozenset(others),
        )

    def _fuzzy(
        self,
        query_text: str,
        words: int,
        choices: tuple[list[str], list[str]],
        lengths: list[int],
        sizes: array[int],
        slots: list[int],
        found: dict[int, Candidate],
    ) -> None:
        """Set `fuzzy` of the candidates in `slots`, whose variants (as they are and with sorted
        words) are `choices` in runs of `lengths` (word counts `sizes`): the best variant's
        score, backed by the second best."""
        w = self.weights
        variants, sorted_variants = choices
        set_scores = process.cdist(
            [query_text], variants, scorer=fuzz.token_set_ratio, dtype=np.float64
        )[0]
        # = token_sort_ratio(query_text, variant), without sorting every variant again.
        sort_scores = process.cdist(
            [_sorted_words(query_text)], sorted_variants, scorer=fuzz.ratio, dtype=np.float64
        )[0]
        # token_set alone gives 100 whenever one side's words are a subset of the other's;
        # against a much shorter variant that is what is asked (see `Weights.long_ratio`).
        short = np.frombuffer(sizes, dtype=np.uint16) < words / w.long_ratio
        mix = np.where(short, w.long_fuzzy_set, w.fuzzy_set)
        values = ((1.0 - mix) * sort_scores + mix * set_scores) / 100.0
        runs = np.asarray(lengths)
        starts = np.zeros(len(runs), dtype=np.intp)
        np.cumsum(runs[:-1], out=starts[1:])
        first = np.maximum.reduceat(values, starts)
        is_first = values == np.repeat(first, runs)
        # The runner-up variant: the best again when it occurs twice, -1 when there is none.
        second = np.maximum.reduceat(np.where(is_first, -1.0, values), starts)
        second = np.where(np.add.reduceat(is_first, starts) > 1, first, second)
        # An entry built without questions has its title alone: no second variant to count.
        support = w.support
        fuzzy = np.where(second < 0.0, first, (1.0 - support) * first + support * second)
        for slot, value in zip(slots, fuzzy.tolist(), strict=True):
            found[slot].fuzzy = value

    def _candidates(
        self,
        question: str,
        *,
        city: str | None,
        audience: str,
        terms_out: dict[str, float] | None = None,
        words_out: list[int] | None = None,
        others_out: set[str] | None = None,
    ) -> list[tuple[int, Candidate]]:
        """The best entries (slot, features 0–1 each) for a question.

        `terms_out`, when given, receives the question's weighted words (idf × certainty);
        `words_out` the number of its content words; `others_out` its stems and compound
        parts that name another body (`other_bodies`).
        """
        partitions = self._partitions(city, audience)
        if not partitions or not self._docs:
            return []
        w = self.weights
        main, aside = split_asides(question) if w.aside < 1.0 else (question, "")
        focus, story = split_focus(main) if w.context < 1.0 else (main, "")
        story_tokens: list[Token] = []
        if story:
            story_tokens = self.analyzer.tokens(story, self._surface, self._df_words)
            tokens = self.analyzer.tokens(focus, self._surface, self._df_words)
            if not tokens or not story_tokens:
                tokens, story_tokens = self.analyzer.tokens(main, self._surface, self._df_words), []
        else:
            tokens = self.analyzer.tokens(main, self._surface, self._df_words)
        aside_tokens = self.analyzer.tokens(aside, self._surface, self._df_words) if aside else []
        if not tokens:
            # Nothing but asides ("das Passwort weiß ich noch"): they are all there is.
            tokens, aside_tokens = aside_tokens, []
        if not tokens:
            return []
        if words_out is not None:
            words_out.append(len(tokens) + len(story_tokens) + len(aside_tokens))
        if others_out is not None and self.other_bodies:
            bodies = self.other_bodies
            for token in (*tokens, *story_tokens, *aside_tokens):
                others_out.update(t for t in (token.stem, *token.parts) if t in bodies)
        n = len(self._docs)
        term_weights = self._query_terms(tokens)
        if story_tokens:
            self._add_weaker(term_weights, story_tokens, w.context)
            tokens = story_tokens + tokens
        if aside_tokens and w.aside > 0.0:
            self._add_weaker(term_weights, aside_tokens, w.aside)
        # Words in a large share of the KB ("online", "beantragen" in a big KB) say little about
        # which entry is meant and their posting lists are long: they are left out.
        frequent = max(self.min_common_words, int(n * self.common_word_share))
        df_words = self._df_words
        term_idf = {
            t: wt * _idf(df_words.get(t, 0), n)
            for t, wt in term_weights.items()
            if df_words.get(t, 0) <= frequent
        }
        word_total = sum(term_idf.values()) or 1.0
        if terms_out is not None:
            terms_out.update(term_idf)
        grams = _grams(t.stem for t in tokens)
        gram_idf = {g: _idf(self._df_grams.get(g, 0), n) for g in grams}
        gram_total = sum(gram_idf.values()) or 1.0
        # Grams in a large share of the KB are left out of the char score altogether: their
        # weight is small and their posting lists would dominate the time per question.
        common = max(self.min_common_grams, int(n * self.common_gram_share))
        gram_idf = {g: v for g, v in gram_idf.items() if self._df_grams.get(g, 0) <= common}
        gram_total = sum(gram_idf.values()) or 1.0

        # Candidate search over the posting lists; words and grams as shares of the query.
        word_lists: list[array[int]] = []
        word_shares: list[float] = []
        gram_lists: list[array[int]] = []
        gram_shares: list[float] = []
        for part in partitions:
            for term, value in term_idf.items():
                postings = part.words.get(term)
                if postings is not None:
                    word_lists.append(postings)
                    word_shares.append(value / word_total)
            for gram, value in gram_idf.items():
                postings = part.grams.get(gram)
                if postings is not None:
                    gram_lists.append(postings)
                    gram_shares.append(value / gram_total)
        word_slots, acc_words = _accumulate(word_lists, word_shares, self._next_slot)
        gram_slots, acc_grams = _accumulate(gram_lists, gram_shares, self._next_slot)
        if not len(word_slots) and not len(gram_slots):
            return []
        # The pool: every entry with a word or gram of the question, in the order first met
        # (grams first); the prefilter ranks it by the index score alone (words + grams,
        # equal weights), ties in that order.
        met, first = np.unique(np.concatenate((gram_slots, word_slots)), return_index=True)
        pool = met[np.argsort(first, kind="stable")]
        if len(pool) > self.candidates:
            order = np.argsort(-(acc_grams[pool] + acc_words[pool]), kind="stable")
            pool = pool[order[: self.candidates]]
        chosen: list[int] = pool.tolist()
        word_scores: list[float] = acc_words[pool].tolist()
        gram_scores: list[float] = acc_grams[pool].tolist()

        # Rerank: the fuzzy similarity of the closest variant. The candidates' variants lie
        # side by side, one run per candidate, and are scored in one call per scorer.
        query_text = " ".join(t.stem for t in tokens)
        choices: list[str] = []
        sorted_choices: list[str] = []
        lengths: list[int] = []
        sizes = array("H")
        found: dict[int, Candidate] = {}
        for slot, word_score, gram_score in zip(chosen, word_scores, gram_scores, strict=True):
            doc = self._docs[slot]
            found[slot] = Candidate(doc.entry.id, word_score, gram_score)
            # Never empty: the title is a variant.
            choices.extend(doc.variants)
            sorted_choices.extend(doc.sorted_variants)
            lengths.append(len(doc.variants))
            sizes.extend(doc.variant_words)
        self._fuzzy(
            query_text, len(tokens), (choices, sorted_choices), lengths, sizes, chosen, found
        )
        probabilities = self._class_probabilities(
            query_text, city, audience, [c.entry_id for c in found.values()]
        )
        if probabilities:
            for candidate in found.values():
                candidate.classifier = probabilities.get(candidate.entry_id, 0.0)

        # The closest few also get the weighted word overlap with their best variant, which
        # (unlike coverage of the question) drops when the question names only part of it.
        ranked = sorted(
            found.items(),
            key=lambda kv: -(
                w.words * kv[1].words
                + w.chars * kv[1].chars
                + w.fuzzy * kv[1].fuzzy
                + w.classifier * kv[1].classifier
            ),
        )
        df = self._df_words
        idf_of: dict[str, float] = {}
        for slot, candidate in ranked[: self.dice_candidates]:
            best = 0.0
            for variant in self._docs[slot].variants:
                terms = set(variant.split())
                if not terms:
                    continue
                mass = 0.0
                overlap = 0.0
                for term in terms:
                    cached = idf_of.get(term)
                    if cached is None:
                        cached = idf_of[term] = _idf(df.get(term, 0), n)
                    mass += cached
                    overlap += term_idf.get(term, 0.0)
                best = max(best, 2.0 * overlap / (word_total + mass))
            candidate.dice = min(1.0, best)
            doc = self._docs[slot]
            if w.body:
                answer_terms = doc.body
                candidate.body = (
                    sum(v for t, v in term_idf.items() if _contains(answer_terms, t)) / word_total
                )
            if w.profile:
                candidate.profile = self._profile(doc, term_idf) / word_total

        # A city's own entry is more specific than a shared one on the same topic; for staff,
        # an internal entry is more specific than the citizens' one.
        staff = audience == "internal" and w.internal > 0.0
        if city is not None or staff:
            for slot, candidate in ranked[: self.dice_candidates]:
                entry = self._docs[slot].entry
                if city is not None and entry.city == city:
                    candidate.city = 1.0
                if staff and entry.audience == "internal":
                    candidate.internal = 1.0
        return ranked
