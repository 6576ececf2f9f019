"""A linear classifier trained on the KB's own variants: a second opinion for the ranking.

The matcher's scores are similarities: how much of the question an entry's variants contain.
Sibling entries ("Passwort vergessen" vs. "Benutzername vergessen", "Reisepass abholen" vs.
"… abholen lassen") share most of their words, and a similarity counts the shared words as
much as the ones that tell them apart. A linear support vector machine, one class per entry,
trained on the entries' variants (the same stems the rerank compares) learns the opposite:
which character n-grams and words separate an entry from all the others (twenty-first
round; see docs/matching.md). Its margins, turned into probabilities
(`SLOPE`) for the entries the asker may see, are added to the matcher's score (`Weights.classifier`) and are features of
the confidence model.

Training is a few seconds at a few thousand variants and grows with entries × variants; the
matcher uses the classifier from `Matcher.classifier_min_entries` to
`Matcher.classifier_max_entries` entries and caches trained classifiers by content, so a KB
that did not change is trained once per process. It trains when the first question after a
change comes (or `Matcher.prepare`), and that question waits.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

# Each entry's margin (its one-vs-rest SVM: above 0 "this entry", below 0 "another one")
# becomes a probability by a logistic curve of this slope: margin 0 → 0.5, ±0.5 → 0.88 / 0.12.
# Per entry, not a softmax over all of them: a softmax depends on how many entries compete
# (over the 17 intents of Familienlotse it gave nearly 1.0 to the best of unrelated ones).
SLOPE = 4.0
# Weights below this (absolute) are dropped after training: the kept matrix is sparse.
PRUNE = 1e-3


class VariantClassifier:
    """One-vs-rest linear SVM over char n-grams (3–5) and word uni- and bigrams of variants."""

    def __init__(self, labels: Sequence[str], texts: Sequence[str], *, c: float = 1.0) -> None:
        if len(labels) != len(texts):
            raise ValueError("labels and texts differ in length")
        self._chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, dtype=np.float32
        )
        self._words = TfidfVectorizer(
            analyzer="word",
            ngram_range=(1, 2),
            sublinear_tf=True,
            token_pattern=r"\S+",
            dtype=np.float32,
        )
        x = sparse.hstack(
            [self._chars.fit_transform(texts), self._words.fit_transform(texts)], format="csr"
        )
        self.classes: list[str] = sorted(set(labels))
        self._index = {label: i for i, label in enumerate(self.classes)}
        if len(self.classes) < 2:
            # One entry: nothing to tell apart; every question gets probability 1 for it.
            self._weights = sparse.csr_matrix((x.shape[1], len(self.classes)), dtype=np.float32)
            self._bias = np.zeros(len(self.classes), dtype=np.float32)
            return
        svm = LinearSVC(C=c, random_state=0)
        svm.fit(x, [self._index[label] for label in labels])
        coef = svm.coef_.astype(np.float32)
        bias = svm.intercept_.astype(np.float32)
        if len(self.classes) == 2:
            # Binary: sklearn keeps one row for the second class; the first is its negative.
            coef = np.vstack([-coef, coef])
            bias = np.concatenate([-bias, bias])
        coef[np.abs(coef) < PRUNE] = 0.0
        self._weights = sparse.csr_matrix(coef.T)
        self._bias = bias

    def mask(self, labels: Sequence[str]) -> np.ndarray:
        """Over `classes`: True for those of `labels` the classifier knows."""
        permitted = np.zeros(len(self.classes), dtype=bool)
        index = self._index
        permitted[[index[label] for label in labels if label in index]] = True
        return permitted

    def probabilities(
        self, text: str, permitted: np.ndarray, labels: Iterable[str]
    ) -> dict[str, float]:
        """How likely `text` belongs to each of `labels` that `permitted` (a `mask`) lets
        through (0–1 each, by `SLOPE`; they need not sum to 1)."""
        if not permitted.any():
            return {}
        x = sparse.hstack(
            [self._chars.transform([text]), self._words.transform([text])], format="csr"
        )
        margins = ((x @ self._weights).toarray()[0] + self._bias) * SLOPE
        index = self._index
        found: dict[str, float] = {}
        for label in labels:
            i = index.get(label)
            if i is not None and permitted[i]:
                found[label] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, float(margins[i])))))
        return found


_cache: OrderedDict[tuple[tuple[str, tuple[str, ...]], ...], VariantClassifier] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 4


def trained(variants: dict[str, tuple[str, ...]]) -> VariantClassifier:
    """A classifier for these entries' variants (id → stems), from the cache when it has one."""
    key = tuple(sorted(variants.items()))
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    labels = [entry_id for entry_id, texts in key for _ in texts]
    texts = [text for _, entry_texts in key for text in entry_texts]
    classifier = VariantClassifier(labels, texts)
    with _cache_lock:
        _cache[key] = classifier
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return classifier
