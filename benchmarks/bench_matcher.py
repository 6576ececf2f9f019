"""Speed of the KB matcher on generated German-like KBs, next to a plain rapidfuzz scan.

Sizes, questions and runs come from the environment (or `python -m benchmarks.bench_matcher
1000 10000`): KB_BENCH_SIZES (default 1000,10000,100000), KB_BENCH_QUESTIONS (300) and
KB_BENCH_RUNS (3). The plain scan is slow, so each run times it on at most
KB_BENCH_SCAN_QUESTIONS (50), right after the matcher on the same machine state.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from kb import KBEntry, Matcher


def _words(text: str) -> list[str]:
    return text.split()


NOUNS = _words(
    "Ausweis Pass Antrag Termin Konto Passwort Karte Gebühr Zahlung Formular Bescheinigung "
    "Meldung Wohnung Steuer Hund Auto Führerschein Kennzeichen Urkunde Geburt Ehe Gewerbe "
    "Parkplatz Müll Wasser Strom Schule Kita Rente Wohngeld Kindergeld Elterngeld Bauantrag "
    "Baum Fahrrad Garten Lärm Straße Brücke Bibliothek Museum Friedhof Sperrmüll Postfach "
    "Nachricht Dokument Datei Unterschrift Nachweis Quittung Rechnung Erstattung Frist "
    "Widerspruch Bescheid Vollmacht Zertifikat Schlüssel Code Brief Adresse Name Foto "
    "Sprache Zugang Profil Daten Sitzung Entwurf Anhang Upload Fehler Status Termine"
)
VERBS = _words(
    "beantragen verlängern ändern löschen abmelden anmelden bezahlen herunterladen hochladen "
    "finden prüfen sperren entsperren zurücksetzen speichern senden drucken abholen umtauschen "
    "ersetzen erneuern kündigen stornieren verschieben bestätigen aktivieren einrichten "
    "übertragen melden vergleichen"
)
TEMPLATES = (
    "Wie kann ich {obj} {verb}?",
    "Ich möchte {obj} {verb}, was muss ich tun?",
    "{Obj} {verb} – wie geht das?",
    "Was brauche ich, um {obj} zu {verb}?",
    "Kann ich {obj} online {verb}?",
    "Wo kann man {obj} {verb}?",
    "{Obj} {verb} in {place}",
)
ANSWER_SENTENCES = (
    "Sie können {obj} im Online-Portal {place} {verb}.",
    "Dafür brauchen Sie {noun} und {noun2}; halten Sie beides bereit.",
    "Nach dem Absenden erhalten Sie eine Bestätigung per E-Mail an Ihr {noun}.",
    "Die Gebühr für {noun} beträgt je nach Fall zwischen 10 und 50 Euro.",
    "Wenn Sie {noun2} {verb2} möchten, wenden Sie sich an das Bürgerbüro {place2}.",
    "Die Bearbeitung dauert in der Regel zwei bis drei Wochen.",
    "Bei Fragen zu {noun} hilft Ihnen die Hotline montags bis freitags weiter.",
    "Ohne {noun2} können wir den Antrag nicht bearbeiten.",
)
SYLLABLES = [c + v for c in "bklmnrst" for v in "aeiou"]
CITIES = ("muenchen", "augsburg", "nuernberg")


def _pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def generate_kb(size: int, seed: int = 7) -> list[KBEntry]:
    """`size` entries with five question variants each; topics are noun compounds + a verb."""
    rng = random.Random(seed)
    places = [_pseudo_word(rng).capitalize() for _ in range(20_000)]
    seen: set[tuple[str, str, str]] = set()
    entries: list[KBEntry] = []
    while len(entries) < size:
        first, second = rng.choice(NOUNS), rng.choice(NOUNS)
        # A rare qualifier (a made-up place or product name) makes each topic unique, as
        # real entries differ in their specific words, not only in common ones.
        noun = first if rng.random() < 0.05 else first + second.lower()
        obj = f"{noun} {rng.choice(places)}"
        verb = rng.choice(VERBS)
        place = rng.choice(places)
        if (obj, verb, place) in seen:
            continue
        seen.add((obj, verb, place))
        texts = rng.sample(TEMPLATES, 5)
        questions = [t.format(obj=f"den {obj}", Obj=obj, verb=verb, place=place) for t in texts]
        city = rng.choice(CITIES) if rng.random() < 0.3 else None
        entries.append(
            KBEntry(
                id=f"e{len(entries)}",
                title=f"{obj} {verb} ({place})",
                service="generated",
                city=city,
                questions=questions,
                answer=_answer(obj, verb, places, rng),
            )
        )
    return entries


def _answer(obj: str, verb: str, places: Sequence[str], rng: random.Random) -> str:
    """About 80 words like a real answer (the matcher indexes answer words too)."""
    return " ".join(
        template.format(
            obj=obj,
            verb=verb,
            noun=rng.choice(NOUNS),
            noun2=rng.choice(NOUNS),
            verb2=rng.choice(VERBS),
            place=rng.choice(places),
            place2=rng.choice(places),
        )
        for template in rng.sample(ANSWER_SENTENCES, 6)
    )


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 6:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1 :]


def generate_questions(
    entries: Sequence[KBEntry], count: int, seed: int = 11
) -> list[tuple[str, KBEntry]]:
    """Reworded questions about random entries: another wording, sometimes a typo."""
    rng = random.Random(seed)
    out = []
    for entry in rng.sample(list(entries), min(count, len(entries))):
        words = rng.choice(entry.questions).rstrip("?.").split()
        if rng.random() < 0.5:
            j = rng.randrange(len(words))
            words[j] = _typo(words[j], rng)
        if rng.random() < 0.3:
            words = ["Hallo,", *words, "bitte"]
        out.append((" ".join(words) + "?", entry))
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_size(size: int, questions: int, runs: int, scan_questions: int) -> None:
    entries = generate_kb(size)
    asked = generate_questions(entries, questions)
    gc.collect()
    before = _rss_mb()
    started = time.perf_counter()
    matcher = Matcher(entries)
    build = time.perf_counter() - started
    # The variant classifier (up to Matcher.classifier_max_entries) trains at the first
    # question after a change; timed here on its own.
    started = time.perf_counter()
    classifier = matcher.prepare()
    training = time.perf_counter() - started
    gc.collect()
    memory = _rss_mb() - before
    # Incremental update cost: replace one entry (remove + add) on the full index.
    started = time.perf_counter()
    for entry in entries[:50]:
        matcher.upsert(entry)
    upsert_ms = 1000 * (time.perf_counter() - started) / 50
    # Retraining after a change (a new question variant; unchanged content comes from cache).
    changed = dataclasses.replace(entries[0], questions=[*entries[0].questions, "Neue Frage?"])
    matcher.upsert(changed)
    started = time.perf_counter()
    matcher.prepare()
    retraining = time.perf_counter() - started

    # The plain scan runs in the same loop, right after each matcher run, so both see the same
    # machine (this one is shared and noisy); the ratio is taken per run.
    choices = [q for e in entries for q in e.questions]
    owners = [e.id for e in entries for _ in e.questions]
    processed = [utils.default_process(c) for c in choices]
    medians, p99s, scan_medians, hits, scan_hits = [], [], [], 0, 0
    for run in range(runs):
        times = []
        for question, entry in asked:
            t0 = time.perf_counter()
            result = matcher.match(question, city=entry.city)
            times.append(1000 * (time.perf_counter() - t0))
            if run == 0:
                hits += result.entry == entry.id
        medians.append(statistics.median(times))
        p99s.append(_pct(times, 0.99))
        scan_times = []
        for question, entry in asked[:scan_questions]:
            t0 = time.perf_counter()
            hit = process.extractOne(
                utils.default_process(question),
                processed,
                scorer=fuzz.token_set_ratio,
                processor=None,
            )
            scan_times.append(1000 * (time.perf_counter() - t0))
            if run == 0:
                scan_hits += hit is not None and owners[hit[2]] == entry.id
        scan_medians.append(statistics.median(scan_times))
    ratios = [scan / ours for scan, ours in zip(scan_medians, medians, strict=True)]
    scan_median = statistics.median(scan_medians)
    ours = statistics.median(medians)
    scanned = min(scan_questions, len(asked))
    print(
        f"{size:>7} entries ({len(choices)} variants): build {build:6.1f} s, "
        f"memory +{memory:6.0f} MiB, upsert {upsert_ms:5.2f} ms"
    )
    print(
        f"         variant classifier: {'trained in' if classifier else 'off (KB size out of range)'}"
        + (f" {training:5.1f} s, after a change again in {retraining:5.1f} s" if classifier else "")
    )
    print(
        f"         matcher: median {ours:6.2f} ms (runs {', '.join(f'{m:.2f}' for m in medians)}),"
        f" p99 {statistics.median(p99s):6.2f} ms (runs {', '.join(f'{p:.2f}' for p in p99s)}),"
        f" top-1 {100 * hits / len(asked):5.1f} % of {len(asked)}"
    )
    print(
        f"         extractOne token_set over all variants: median {scan_median:8.2f} ms"
        f" (runs {', '.join(f'{m:.2f}' for m in scan_medians)}),"
        f" top-1 {100 * scan_hits / max(1, scanned):5.1f} % of {scanned}"
    )
    print(
        f"         matcher is {statistics.median(ratios):6.1f}x faster"
        f" (median of the runs' ratios {', '.join(f'{r:.1f}' for r in ratios)})",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(argv) if argv is not None else []
    if {"-h", "--help"} & set(args):
        print(
            "python -m benchmarks.bench_matcher [SIZES], or KB_BENCH_SIZES=SIZES python -m"
            " benchmarks matcher: SIZES as 1000,10000 (default 1000,10000,100000);"
            " KB_BENCH_QUESTIONS, KB_BENCH_RUNS, KB_BENCH_SCAN_QUESTIONS"
        )
        return
    sizes_text = ",".join(args) or os.environ.get("KB_BENCH_SIZES", "1000,10000,100000")
    try:
        sizes = [int(s) for s in sizes_text.split(",") if s.strip()]
        questions = int(os.environ.get("KB_BENCH_QUESTIONS", "300"))
        runs = int(os.environ.get("KB_BENCH_RUNS", "3"))
        scan = int(os.environ.get("KB_BENCH_SCAN_QUESTIONS", "50"))
    except ValueError as exc:
        print(f"matcher benchmark: sizes and KB_BENCH_* must be whole numbers ({exc})", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"KB matcher benchmark: {questions} questions x {runs} runs, one process (one core)")
    for size in sizes:
        bench_size(size, questions, runs, scan)


if __name__ == "__main__":
    main(sys.argv[1:])
