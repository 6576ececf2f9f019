"""German text analysis for matching: folding, stop words, stemming, compounds, synonyms."""

from __future__ import annotations

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


def fold(text: str) -> str:
    """Lower-case, spell umlauts and ß out (ä -> ae, ß -> ss) and drop other accents."""
    text = unicodedata.normalize("NFC", text).lower().translate(_FOLD_TABLE)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _data_text(name: str) -> str:
    return resources.files("kb").joinpath("data", name).read_text(encoding="utf-8")


def _word_list(text: str) -> frozenset[str]:
    words = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(fold(w) for w in words if w)


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
    ) -> None:
        self._stemmer = snowballstemmer.stemmer("german")
        self._stem_cache: dict[str, str] = {}
        self.stopwords = (
            frozenset(fold(w) for w in stopwords)
            if stopwords is not None
            else _word_list(_data_text("stopwords.txt"))
        )
        self.compound_parts = (
            frozenset(fold(w) for w in compound_parts)
            if compound_parts is not None
            else _word_list(_data_text("compound_parts.txt"))
        )
        if synonyms is None:
            synonyms = load_synonyms()
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
        return tuple(self.stem(w) for w in _WORD_RE.findall(fold(text)))

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
            for w in _WORD_RE.findall(fold(text))
            if len(w) >= _MIN_HEAD and w not in self.stopwords and not w.isdigit()
        ]

    def tokens(self, text: str, vocabulary: Collection[str] = ()) -> list[Token]:
        """Content words of `text` in order; `vocabulary` adds known words for splitting."""
        words = _WORD_RE.findall(fold(text))
        if vocabulary:
            words = _join_split_words(words, vocabulary)
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
                out.append(Token(stems[i - 1], parts))
        return out

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
