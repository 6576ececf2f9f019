"""German text analysis for matching: folding, stop words, stemming, compounds, synonyms."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import snowballstemmer
import yaml

_WORD_RE = re.compile(r"[a-z0-9]+")
_FOLD_TABLE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ẞ": "ss"})
_MAX_PHRASE = 4
# Shorter heads ("amt", "ort") split too many words wrongly.
_MIN_HEAD = 4
_MIN_MODIFIER = 3
_MIN_COMPOUND = 7
_LINKING = ("s", "es", "n", "en", "e", "er")

# Separable verb particles ("melde … an" = anmelden), written folded, longest first so
# "herunter" is tried before shorter ones.
_PARTICLES = tuple(
    sorted(
        (
            "an",
            "ab",
            "auf",
            "aus",
            "ein",
            "mit",
            "nach",
            "vor",
            "zu",
            "um",
            "zurueck",
            "weiter",
            "hoch",
            "herunter",
            "runter",
        ),
        key=len,
        reverse=True,
    )
)
_PARTICLE_SET = frozenset(_PARTICLES)
# Words that end a clause for the particle rule (besides punctuation).
_CLAUSE_WORDS = frozenset({"und", "oder", "aber", "sondern", "denn"})
_CLAUSE_RE = re.compile(r"[.,;:!?()\[\]\n\"]+")
_SURFACE_RE = re.compile(r"[^\W_]+")
# A particle that ends a clause (folded text): only then is there anything to rejoin.
_CLAUSE_END_PARTICLE_RE = re.compile(
    r"\b(?:" + "|".join(_PARTICLES) + r")\b[^\w.,;:!?()\[\]\n\"]*"
    r"(?:[.,;:!?()\[\]\n\"]|$|(?:und|oder|aber|sondern|denn)\b)"
)
# Words that may be a separable verb's zu-infinitive or participle ("anzumelden").
_VERB_FORM_RE = re.compile(r"^(?:" + "|".join(_PARTICLES) + r")(?:zu|ge)")
# Question words that look like verbs by their ending ("wann") but never are one.
_NOT_VERBS = frozenset(
    {
        "wann",
        "wie",
        "wieso",
        "weshalb",
        "warum",
        "wozu",
        "wofuer",
        "woran",
        "worauf",
        "wovon",
        "online",
        "gerne",
        "heute",
        "morgen",
        "gestern",
    }
)
# Present stems with a vowel change ("gibt … ab" = abgeben): the common strong verbs.
_STRONG_PRESENT = {
    "gib": "geb",
    "nimm": "nehm",
    "sieh": "seh",
    "lies": "les",
    "brich": "brech",
    "sprich": "sprech",
    "tritt": "tret",
    "wirf": "werf",
    "hilf": "helf",
    "gilt": "gelt",
    "haelt": "halt",
    "laesst": "lass",
    "laess": "lass",
    "faellt": "fall",
    "faell": "fall",
    "stirb": "sterb",
    "vergiss": "vergess",
}
# Endings of a participle used as an adjective ("angemeldete", "hochgeladenen").
_WEAK_PARTICIPLE = re.compile(r"^([a-z]{3,}?)(?:e?t)(?:e|en|em|er|es)?$")
_STRONG_PARTICIPLE = re.compile(r"^([a-z]{3,}?)en(?:e|en|em|er|es)?$")
# A participle-looking word that is really a noun or adjective ("Angelegenheiten",
# "Angehörigen", "Umgebung") keeps its form.
_NOT_PARTICIPLE = re.compile(r"(?:heit|keit|ung|schaft|nis|lich|isch|ig)(?:e|en|em|er|es|n)?$")


def fold(text: str) -> str:
    """Lower-case, spell umlauts and ß out (ä -> ae, ß -> ss) and drop other accents."""
    text = unicodedata.normalize("NFC", text).lower().translate(_FOLD_TABLE)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# "Den Benutzernamen weiß ich noch": a clause that says the asker still knows or has
# something names what is *not* the problem (thirteenth round). Knowing verbs with "noch"
# anywhere in the clause; "haben" only in the fronted order "X habe ich noch" ("Ich habe noch
# einen alten Pass" is what the question is about). Not when the clause negates ("noch nicht",
# "nicht mehr", "vergessen"), says "immer noch" (a lasting problem) or asks.
# "aber"/"doch" right before "noch" is a particle inside the clause ("den Namen weiß ich aber noch").
_ASIDE_SPLIT_RE = re.compile(
    r"([.,;:!?\n]+|\s[-–—]\s|\b(?:aber|sondern|doch|jedoch)\b(?!\s+no(?:ch)?\b))", re.IGNORECASE
)
_ASIDE_KNOW = frozenset(
    # Not "wass" (Franconian waß): it is also "was" mistyped.
    {"weiss", "weis", "woass", "woas", "waas", "kenne", "kenn", "kennt"}
)
_ASIDE_STILL_RE = re.compile(r"\bno(?:ch)?\b", re.IGNORECASE)
_ASIDE_HAVE_RE = re.compile(r"^\W*\w+.*\b(?:habe|hab|hob|hobb|hab's|habs)\s+(?:ich|i)\b")
_ASIDE_NEGATIONS = frozenset(
    {
        "nicht", "net", "ned", "nimmer", "nimma", "nie", "nix", "nichts", "vergessen",
        "vergesse", "vagessn", "vagessen", "verloren", "verlegt", "immer", "mehr",
    }
)


_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
# A point that ends no sentence: an ordinal or date ("am 3. März", "3.5."), a single letter
# ("z. B.", "d.h.") or a common abbreviation.
_NO_SENTENCE_END_RE = re.compile(
    r"(?:\b\d+|\b\w|bzw|ca|usw|ggf|evtl|vgl|nr|str|tel|inkl|max|min|mind)\.$", re.IGNORECASE
)


def _sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for piece in _SENTENCE_RE.split(text.strip()):
        if not piece.strip():
            continue
        if sentences and _NO_SENTENCE_END_RE.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def split_focus(text: str) -> tuple[str, str]:
    """The question sentences of a message of several sentences, and the other sentences.

    "Ich bin 74. Meine Tochter sagt, ich brauche eine BayernID. Wie komme ich da dran?" ->
    ("Wie komme ich da dran?", "Ich bin 74. Meine Tochter sagt, ich brauche eine BayernID.")
    The others are mostly the story told before the question. Without a question mark the
    last sentence is the question; one sentence or only questions: no story.
    """
    sentences = _sentences(text)
    if len(sentences) < 2:
        return text, ""
    asks = [i for i, s in enumerate(sentences) if "?" in s]
    if not asks:
        asks = [len(sentences) - 1]
    focus = " ".join(sentences[i] for i in asks)
    story = " ".join(s for i, s in enumerate(sentences) if i not in asks)
    return (focus, story) if story else (text, "")


def split_asides(text: str) -> tuple[str, str]:
    """`text` without the clauses that name what is not the problem, and those clauses.

    "Mein Passwort weiß ich noch, aber nicht mehr meinen Benutzernamen" ->
    ("…, aber nicht mehr meinen Benutzernamen", "Mein Passwort weiß ich noch").
    """
    if _ASIDE_STILL_RE.search(text) is None:
        return text, ""
    pieces = _ASIDE_SPLIT_RE.split(text)
    main: list[str] = []
    aside: list[str] = []
    for i in range(0, len(pieces), 2):
        clause = pieces[i]
        separator = pieces[i + 1] if i + 1 < len(pieces) else ""
        folded = fold(clause)
        words = set(_WORD_RE.findall(folded))
        if (
            _ASIDE_STILL_RE.search(clause)
            and (words & _ASIDE_KNOW or _ASIDE_HAVE_RE.match(folded))
            and not words & _ASIDE_NEGATIONS
            and not any(w.startswith("kein") for w in words)
            and "?" not in separator
        ):
            aside.append(clause)
            main.append(separator if separator.strip() else " ")
        else:
            main.append(clause + separator)
    if not aside:
        return text, ""
    return "".join(main), ". ".join(aside)


def _data_text(name: str) -> str:
    return resources.files("kb").joinpath("data", name).read_text(encoding="utf-8")


# A folded umlaut (ae, oe, ue); without its e it is the word as typed without the dots.
_UMLAUT_E = re.compile(r"([aou])e")


def _listed(text: str) -> list[str]:
    """The entries of a word-list file as written: one per line, # starts a comment."""
    words = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [w for w in words if w]


def _word_list(text: str) -> frozenset[str]:
    return frozenset(fold(w) for w in _listed(text))


@dataclass(frozen=True)
class Token:
    """One content word of a text: its stem (after synonyms) and the stems of its parts."""

    stem: str
    parts: tuple[str, ...] = ()
    # True when a synonym replaced the word: its parts are not split further.
    canonical: bool = False


class Analyzer:
    """Turns German text into stems; built once per matcher, holds caches only."""

    def __init__(
        self,
        synonyms: Mapping[str, Iterable[str]] | None = None,
        *,
        stopwords: Collection[str] | None = None,
        compound_parts: Collection[str] | None = None,
        extra_stopwords: Iterable[str] = (),
    ) -> None:
        self._stemmer = snowballstemmer.stemmer("german")
        self._stem_cache: dict[str, str] = {}
        base = (
            frozenset(fold(w) for w in stopwords)
            if stopwords is not None
            else _word_list(_data_text("stopwords.txt"))
        )
        # Extra stop words are names (e.g. the cooperation's cities, "Frankfurt am Main"):
        # every word of them is one.
        extra = {word for name in extra_stopwords for word in _WORD_RE.findall(fold(name))}
        # … and its "-er" form ("Regensburger Innenstadt", "Kölner Bürgeramt").
        extra |= {word + "er" for word in extra if len(word) >= 4 and not word.endswith("er")}
        # Also as typed without the umlaut's e ("Nurnberg", "fur", "konnen", "uber"): typo
        # correction only maps to KB words, so a stop word written that way stayed an unknown
        # word and counted against the question (twelfth round).
        words = base | extra
        self.stopwords = words | {_UMLAUT_E.sub(r"\1", w) for w in words}
        self.compound_parts = (
            frozenset(fold(w) for w in compound_parts)
            if compound_parts is not None
            else _word_list(_data_text("compound_parts.txt"))
        )
        if synonyms is None:
            synonyms = load_synonyms()
        self._dialect = load_dialect_rules()
        self._dialect_cache: dict[str, tuple[str, ...]] = {}
        self._phrases: dict[tuple[str, ...], tuple[str, ...]] = {}
        # Parts of the canonical words, so "Perso" (-> Personalausweis) also finds "Ausweis".
        self._canonical_parts: dict[str, tuple[str, ...]] = {}
        self._set_synonyms(synonyms)

    def stem(self, word: str) -> str:
        cached = self._stem_cache.get(word)
        if cached is None:
            cached = self._stemmer.stemWord(word)
            if len(self._stem_cache) < 500_000:
                self._stem_cache[word] = cached
        return cached

    def _stems(self, text: str) -> tuple[str, ...]:
        return tuple(self.stem(_verb_form(w)) for w in _WORD_RE.findall(fold(text)))

    def words(self, text: str, stems: Collection[str] = ()) -> list[str]:
        """Folded words of `text` with separable verbs rejoined.

        "Wie melde ich den Hund an?" -> [..., "anmelden", ..., "hund"]: a particle at the end
        of a clause goes back to its verb; "anzumelden" and "angemeldet" become "anmelden"
        too. Which word is the verb: with `stems` (the KB's vocabulary, question side) the
        first word of the clause that makes a known stem with the particle; without it (KB
        side, so an entry's terms never depend on other entries) the first word that looks
        like a finite verb.
        """
        return [w for w, _ in self._words(text, stems)]

    def _words(self, text: str, stems: Collection[str]) -> list[tuple[str, tuple[str, ...]]]:
        # Each word with the pieces of a rejoined verb (the verb, a content particle).
        text = unicodedata.normalize("NFC", text)
        folded = fold(text)
        out: list[tuple[str, tuple[str, ...]]] = []
        if _CLAUSE_END_PARTICLE_RE.search(folded) is None:
            # Fast path (most texts): no particle ends a clause, nothing to rejoin.
            for w in _WORD_RE.findall(folded):
                form = _verb_form(w)
                out.append((form, self._verb_pieces(form) if form != w else ()))
            return out
        mixed_case = text != text.lower()
        pieces_of_form: dict[str, tuple[str, ...]] = {}
        for clause in _CLAUSE_RE.split(text):
            words: list[str] = []
            upper: list[bool] = []
            for raw in _SURFACE_RE.findall(clause):
                for w in _WORD_RE.findall(fold(raw)):
                    if w in _CLAUSE_WORDS:
                        out.extend(self._rejoin(words, upper, mixed_case, stems))
                        words, upper = [], []
                        out.append((w, ()))
                        continue
                    form = _verb_form(w)
                    if form != w:
                        pieces_of_form[form] = self._verb_pieces(form)
                    words.append(form)
                    upper.append(raw[:1].isupper())
            out.extend(self._rejoin(words, upper, mixed_case, stems))
        if pieces_of_form:
            out = [(w, p or pieces_of_form.get(w, ())) for w, p in out]
        return out

    def _verb_pieces(self, form: str, particle: str | None = None) -> tuple[str, ...]:
        # The parts of a rejoined verb: the verb itself ("melden" in "anmelden") and a
        # particle that is a word of its own ("zurück" in "zurücksetzen").
        if particle is None:
            particle = next(p for p in _PARTICLES if form.startswith(p))
        pieces: tuple[str, ...] = (form[len(particle) :],)
        if particle not in self.stopwords and len(particle) >= 4:
            pieces = (*pieces, particle)
        return pieces

    def _rejoin(
        self, words: list[str], upper: list[bool], mixed_case: bool, stems: Collection[str]
    ) -> list[tuple[str, tuple[str, ...]]]:
        plain: list[tuple[str, tuple[str, ...]]] = [(w, ()) for w in words]
        if len(words) < 2 or words[-1] not in _PARTICLE_SET:
            return plain
        particle = words[-1]
        for i in range(len(words) - 1):
            word = words[i]
            if (
                word in self.stopwords
                or word in _NOT_VERBS
                or word in _PARTICLE_SET
                or len(word) < 3
                or not word.isalpha()
            ):
                continue
            joined = particle + _present_stem(word) + "en"
            if stems:
                stem = self.stem(joined)
                target = self._phrases.get((stem,))
                if stem not in stems and not (target and all(t in stems for t in target)):
                    continue
            elif (mixed_case and upper[i] and i > 0) or word[-1] not in "etn":
                continue
            plain[i] = (joined, self._verb_pieces(joined, particle))
            del plain[-1]
            return plain
        return plain

    def _set_synonyms(self, synonyms: Mapping[str, Iterable[str]]) -> None:
        owner: dict[tuple[str, ...], str] = {}
        for canonical, variants in synonyms.items():
            target = self._stems(canonical)
            if not target:
                raise ValueError(f"synonym group {canonical!r} has no words")
            for word, stem in zip(_WORD_RE.findall(fold(canonical)), target, strict=True):
                pieces = self._split_word(word, (), depth=0)
                if len(pieces) > 1:
                    self._canonical_parts[stem] = tuple(self.stem(p) for p in pieces)
            for variant in variants:
                key = self._stems(variant)
                if not key or key == target:
                    continue
                if len(key) > _MAX_PHRASE:
                    raise ValueError(f"synonym {variant!r} is longer than {_MAX_PHRASE} words")
                if key in owner and owner[key] != canonical:
                    raise ValueError(
                        f"synonym {variant!r} is listed under both {owner[key]!r} and {canonical!r}"
                    )
                owner[key] = canonical
                self._phrases[key] = target
        self._expand_phrases()

    def _expand_phrases(self) -> None:
        # A phrase also matches with a one-word synonym in place of one of its words:
        # "auto anmelden" -> Zulassung also catches "Kfz anmelden" and "Wagen anmelden".
        alternatives: dict[str, list[str]] = {}
        for key, target in self._phrases.items():
            if len(key) == 1 and len(target) == 1:
                alternatives.setdefault(target[0], []).append(key[0])
        for key, target in list(self._phrases.items()):
            if len(key) < 2:
                continue
            for i, stem in enumerate(key):
                for alt in alternatives.get(stem, ()):
                    variant = (*key[:i], alt, *key[i + 1 :])
                    self._phrases.setdefault(variant, target)

    def content_words(self, text: str) -> list[str]:
        """Folded words of `text` long enough to be a part of a compound, stop words left out."""
        return [
            w
            for w in self.words(text)
            if len(w) >= _MIN_HEAD and w not in self.stopwords and not w.isdigit()
        ]

    def tokens(
        self, text: str, vocabulary: Collection[str] = (), stems: Collection[str] = ()
    ) -> list[Token]:
        """Content words of `text` in order.

        `vocabulary` adds known words for splitting; `stems` (the KB's stems) tells which
        word of a clause a separated verb particle belongs to (see `words`).
        """
        pairs = self._words(text, stems)
        pieces_of = {w: p for w, p in pairs if p}
        words = [w for w, _ in pairs]
        if vocabulary:
            words = _join_split_words(words, vocabulary)
        if stems and self._dialect:
            words = [self._standard_form(w, vocabulary, stems) for w in words]
        stems = [self.stem(w) for w in words]
        out: list[Token] = []
        i = 0
        n = len(words)
        while i < n:
            # Longest synonym phrase first, so "auto anmelden" beats "anmelden".
            for size in range(min(_MAX_PHRASE, n - i), 0, -1):
                target = self._phrases.get(tuple(stems[i : i + size]))
                if target is not None:
                    out.extend(Token(t, self._canonical_parts.get(t, ()), True) for t in target)
                    i += size
                    break
            else:
                word = words[i]
                i += 1
                if word in self.stopwords or (len(word) < 2 and not word.isdigit()):
                    continue
                parts = self._split(word, vocabulary)
                pieces = pieces_of.get(word)
                if pieces:
                    extra = tuple(self.stem(p) for p in pieces)
                    parts = (*parts, *(e for e in extra if e not in parts and e != stems[i - 1]))
                out.append(Token(stems[i - 1], parts))
        return out

    def _standard_form(self, word: str, vocabulary: Collection[str], stems: Collection[str]) -> str:
        """A dialect spelling the KB does not know as the standard word (kb/data/dialect.txt).

        Only for a word that is no stop word, not in the KB's words and makes no KB stem; the
        rules are tried alone, then in pairs and triples, and the first form that is a stop
        word or whose stem (or synonym target) the KB knows wins. Otherwise the word stays.
        """
        if len(word) < 2 or word in self.stopwords or word in vocabulary or not word.isalpha():
            return word
        stem = self.stem(word)
        if stem in stems or (stem,) in self._phrases:
            return word
        for candidate in self._dialect_forms(word):
            stem = self.stem(candidate)
            target = self._phrases.get((stem,))
            if (
                candidate in self.stopwords
                or stem in stems
                or (target is not None and all(t in stems for t in target))
            ):
                return candidate
        return word

    def _dialect_forms(self, word: str) -> tuple[str, ...]:
        # The word's forms under one, two or three rules, in that order (cached: the forms
        # do not depend on the KB, whether one is known is checked at every question).
        cached = self._dialect_cache.get(word)
        if cached is not None:
            return cached
        forms: list[str] = []
        seen = {word}
        frontier = [word]
        for _ in range(3):
            following: list[str] = []
            for form in frontier:
                for pattern, replacement in self._dialect:
                    candidate = pattern.sub(replacement, form, count=1)
                    if candidate not in seen:
                        seen.add(candidate)
                        following.append(candidate)
            forms.extend(following)
            frontier = following
        result = tuple(forms)
        if len(self._dialect_cache) < 100_000:
            self._dialect_cache[word] = result
        return result

    def _split(self, word: str, vocabulary: Collection[str]) -> tuple[str, ...]:
        if len(word) < _MIN_COMPOUND or word.isdigit():
            return ()
        pieces = self._split_word(word, vocabulary, depth=0)
        if len(pieces) < 2:
            return ()
        parts: list[str] = []
        for piece in pieces:
            stem = self.stem(piece)
            target = self._phrases.get((stem,))
            for part in target or (stem,):
                if part not in parts:
                    parts.append(part)
        return tuple(parts)

    def _known(self, word: str, vocabulary: Collection[str]) -> bool:
        return word in self.compound_parts or word in vocabulary

    def _split_word(self, word: str, vocabulary: Collection[str], depth: int) -> list[str]:
        best: tuple[tuple[bool, int], str, str] | None = None
        for cut in range(_MIN_MODIFIER, len(word) - _MIN_HEAD + 1):
            head = word[cut:]
            if not self._known(head, vocabulary):
                continue
            modifier = word[:cut]
            candidates = [modifier] + [
                modifier[: -len(link)]
                for link in _LINKING
                if modifier.endswith(link) and len(modifier) - len(link) >= _MIN_MODIFIER
            ]
            known = next((c for c in candidates if self._known(c, vocabulary)), None)
            rank = (known is not None, len(head))
            if best is None or rank > best[0]:
                best = (rank, known or modifier, head)
        if best is None:
            return [word]
        _, modifier, head = best
        left = (
            self._split_word(modifier, vocabulary, depth + 1)
            if depth < 2 and len(modifier) >= _MIN_COMPOUND
            else [modifier]
        )
        return [*left, head]


def _present_stem(word: str) -> str:
    """The verb stem of a finite form: "melde"/"meldet"/"melden" -> "meld", "gibt" -> "geb"."""
    for ending in ("est", "et", "st", "en", "e", "t", "n"):
        if word.endswith(ending) and len(word) - len(ending) >= 2:
            stem = word[: -len(ending)]
            break
    else:
        stem = word
    return _STRONG_PRESENT.get(stem, _STRONG_PRESENT.get(word, stem))


@functools.lru_cache(maxsize=200_000)
def _verb_form(word: str) -> str:
    """A separable verb's zu-infinitive or participle as its infinitive.

    "anzumelden" -> "anmelden", "angemeldet"/"angemeldete" -> "anmelden",
    "hochgeladen" -> "hochladen"; other words unchanged.
    """
    if len(word) < 7 or _VERB_FORM_RE.match(word) is None:
        return word
    for particle in _PARTICLES:
        if not word.startswith(particle):
            continue
        rest = word[len(particle) :]
        if rest.startswith("zu") and 5 <= len(rest) - 2 <= 12 and rest.endswith("n"):
            return particle + rest[2:]
        if rest.startswith("ge") and not _NOT_PARTICIPLE.search(rest):
            base = rest[2:]
            found = _WEAK_PARTICIPLE.match(base) or _STRONG_PARTICIPLE.match(base)
            if found is not None and found.group(1) != "bot":
                return particle + found.group(1) + "en"
        return word
    return word


def _join_split_words(words: list[str], vocabulary: Collection[str]) -> list[str]:
    # "Bund ID", "wieder gefunden": two words the KB writes as one become that one word.
    joined: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words) and words[i] + words[i + 1] in vocabulary:
            joined.append(words[i] + words[i + 1])
            i += 2
        else:
            joined.append(words[i])
            i += 1
    return joined


def load_dialect_rules(text: str | None = None) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The dialect spelling rules (`pattern  replacement` per line; the packaged file)."""
    if text is None:
        text = _data_text("dialect.txt")
    rules: list[tuple[re.Pattern[str], str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = re.split(r"\t+| {2,}", line)
        if len(fields) != 2:
            raise ValueError(f"dialect rule on line {number}: expected a pattern and a replacement")
        try:
            rules.append((re.compile(fields[0]), fields[1]))
        except re.error as exc:
            raise ValueError(f"dialect rule on line {number}: {exc}") from exc
    return tuple(rules)


def load_synonyms(path: str | Path | None = None) -> dict[str, list[str]]:
    """Read a synonym file (`canonical: [variant, ...]`); the packaged list when no path."""
    text = (
        Path(path).read_text(encoding="utf-8") if path is not None else _data_text("synonyms.yml")
    )
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError("a synonym file must map each canonical word to a list of variants")
    groups: dict[str, list[str]] = {}
    for canonical, variants in data.items():
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            raise ValueError(f"synonyms of {canonical!r} must be a list of words")
        groups[str(canonical)] = list(variants)
    return groups
