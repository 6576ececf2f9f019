"""German text analysis: folding, stop words, stems, compounds, synonyms."""

from __future__ import annotations

import pytest

from kb import Analyzer, fold, load_dialect_rules, load_synonyms
from kb._text import split_asides, split_focus


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def stems(analyzer: Analyzer, text: str) -> list[str]:
    return [t.stem for t in analyzer.tokens(text)]


def test_fold_spells_out_umlauts_and_sharp_s() -> None:
    assert fold("Gebühr für Änderungen, Straße") == "gebuehr fuer aenderungen, strasse"
    assert fold("Café") == "cafe"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Gebühren", "Gebuehren"),
        ("Führerschein", "Fuehrerschein"),
        ("ÄNDERUNG", "aenderung"),
        ("Straße", "Strasse"),
        ("Anmeldung!", "anmeldung"),
    ],
)
def test_umlauts_both_ways_and_case_give_the_same_stems(analyzer: Analyzer, a: str, b: str) -> None:
    assert stems(analyzer, a) == stems(analyzer, b)


def test_stop_words_and_punctuation_are_dropped(analyzer: Analyzer) -> None:
    assert stems(analyzer, "Wie kann ich das denn, bitte?!") == []
    assert stems(analyzer, "Wie beantrage ich den Antrag?") == stems(analyzer, "Antrag beantragen")


def test_inflections_share_a_stem(analyzer: Analyzer) -> None:
    assert stems(analyzer, "Ausweises") == stems(analyzer, "Ausweis")
    assert stems(analyzer, "Kennwörter") == stems(analyzer, "Kennwort")


def test_compound_parts_are_added(analyzer: Analyzer) -> None:
    (token,) = analyzer.tokens("Personalausweis")
    assert stems(analyzer, "Ausweis")[0] in token.parts
    (token,) = analyzer.tokens("Hundesteuer")
    assert set(stems(analyzer, "Hund Steuer")) <= set(token.parts)


def test_compound_split_uses_a_known_vocabulary(analyzer: Analyzer) -> None:
    assert analyzer.tokens("Bürgerkontoübersicht")[0].parts == ()
    (token,) = analyzer.tokens("Bürgerkontoübersicht", {"uebersicht", "buergerkonto"})
    assert "uebersicht" in token.parts or stems(analyzer, "Übersicht")[0] in token.parts


@pytest.mark.parametrize(
    ("citizen", "kb_word"),
    [
        ("Perso", "Personalausweis"),
        ("Kfz", "Auto"),
        ("Kennwort", "Passwort"),
        ("Login", "Anmeldung"),
        ("einloggen", "Anmeldung"),
        ("ummelden", "Ummeldung"),
        ("E-Mail-Adresse", "E-Mail"),
        ("umbuchen", "verschieben"),
        ("auf später legen", "verschieben"),
        ("stornieren", "absagen"),
        ("Nutzername", "Benutzername"),
        ("geklaut", "gestohlen"),
        ("Bezahlart", "Zahlungsart"),
        # Twenty-third round.
        ("Zulassungsschein", "Fahrzeugschein"),
        ("Anwohnerparkschein", "Parkausweis"),
        ("Fundamt", "Fundbüro"),
        ("verbaselt", "verloren"),
        ("Transportpin", "Transport-PIN"),
        ("Sperrhotline", "Sperrnotruf"),
    ],
)
def test_synonyms_of_citizen_language(analyzer: Analyzer, citizen: str, kb_word: str) -> None:
    assert stems(analyzer, citizen) == stems(analyzer, kb_word)


def test_synonym_phrases_beat_single_words(analyzer: Analyzer) -> None:
    assert stems(analyzer, "Auto anmelden") == stems(analyzer, "Zulassung")


def test_synonym_phrases_match_with_a_one_word_synonym_inside(analyzer: Analyzer) -> None:
    # "auto anmelden" is listed; "Kfz" and "Wagen" are one-word synonyms of "Auto".
    assert stems(analyzer, "Kfz anmelden") == stems(analyzer, "Zulassung")
    assert stems(analyzer, "Wagen anmelden") == stems(analyzer, "Zulassung")


def test_own_synonyms_replace_the_packaged_list() -> None:
    analyzer = Analyzer({"bayernid": ["bayern id", "buergerkonto"]})
    assert stems(analyzer, "Bürgerkonto") == ["bayernid"]
    assert stems(analyzer, "Bayern ID") == ["bayernid"]
    assert stems(analyzer, "Perso") != stems(analyzer, "Personalausweis")


def test_a_variant_in_two_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        Analyzer({"auto": ["kfz"], "fahrzeug": ["kfz"]})


def test_packaged_synonyms_load() -> None:
    groups = load_synonyms()
    assert "perso" in groups["personalausweis"]


def test_words_split_apart_are_joined_when_the_kb_writes_them_as_one(analyzer: Analyzer) -> None:
    # ("Bund ID" itself is a synonym of "BundID" since the twenty-third round.)
    assert stems(analyzer, "Post Fach") != stems(analyzer, "Postfach")
    joined = [t.stem for t in analyzer.tokens("Post Fach Nachricht", {"postfach"})]
    assert joined == stems(analyzer, "Postfach Nachricht")


@pytest.mark.parametrize(
    ("separated", "joined"),
    [
        ("Wie melde ich meinen Hund an?", "Hund anmelden"),
        ("Wie melde ich meinen Hund ab?", "Hund abmelden"),
        ("Mein Anwohnerparkausweis läuft ab.", "Anwohnerparkausweis ablaufen"),
        ("Wie setze ich das Passwort zurück?", "Passwort zurücksetzen"),
        ("Wie schalte ich die Online-Funktion ein, und was kostet das?", "eid einschalten kostet"),
    ],
)
def test_separable_verbs_are_rejoined(analyzer: Analyzer, separated: str, joined: str) -> None:
    assert sorted(stems(analyzer, separated)) == sorted(stems(analyzer, joined))


def test_zu_infinitives_and_participles_of_separable_verbs(analyzer: Analyzer) -> None:
    (anmelden,) = stems(analyzer, "anmelden")
    assert stems(analyzer, "anzumelden") == [anmelden]
    assert stems(analyzer, "angemeldet") == [anmelden]
    assert stems(analyzer, "angemeldeten") == [anmelden]
    assert stems(analyzer, "hochgeladen") == stems(analyzer, "hochladen")
    assert stems(analyzer, "ausgedruckt") == stems(analyzer, "ausdrucken")
    # Nouns that only look like participles keep their form.
    assert stems(analyzer, "Angelegenheiten") == stems(analyzer, "Angelegenheit")
    assert stems(analyzer, "Angebote") == stems(analyzer, "Angebot")


def test_a_rejoined_verb_keeps_the_verb_and_a_content_particle_as_parts(
    analyzer: Analyzer,
) -> None:
    (token,) = analyzer.tokens("Wie setze ich es zurück?")
    assert {analyzer.stem("setzen"), analyzer.stem("zurueck")} <= set(token.parts)


def test_question_side_rejoins_only_to_a_known_verb(analyzer: Analyzer) -> None:
    # With the KB's stems the particle goes to the word that makes a known stem with it.
    known = {analyzer.stem("abholen"), "reisepass"}
    assert analyzer.stem("abholen") in [
        t.stem for t in analyzer.tokens("wo hole ich den reisepass ab", (), known)
    ]
    # No known joined stem: the words stay as they are.
    assert [t.stem for t in analyzer.tokens("paypal leitet nicht zurück", (), known)] == [
        "paypal",
        analyzer.stem("leitet"),
        "nicht",
        analyzer.stem("zurück"),
    ]


def test_negations_are_content_words(analyzer: Analyzer) -> None:
    assert "kein" in stems(analyzer, "keine Bestätigung")
    assert "nicht" in stems(analyzer, "Mail kommt nicht an")


def test_dialect_spellings_become_the_standard_word_the_kb_knows(analyzer: Analyzer) -> None:
    known = {analyzer.stem(w) for w in ("verloren", "vergessen", "zulassen", "abholen", "pin")}
    question = "i hob mei pin vagessn, perso valorn, wia ko i s auto zualassn und den pass abhoin"
    got = [t.stem for t in analyzer.tokens(question, (), known)]
    for word in ("verloren", "vergessen", "zulassen", "abholen"):
        assert analyzer.stem(word) in got
    # Dialect function words become stop words ("wia" = wie, "ko" = kann).
    assert "wia" not in got and "ko" not in got
    # Without the KB's stems (the KB side) nothing is rewritten.
    assert analyzer.stem("vergessen") not in stems(analyzer, "pin vagessn")


def test_regular_sound_shifts_of_the_dialects(analyzer: Analyzer) -> None:
    # Twelfth round: final -a, soft consonants, oi = al, -ich = -ig, -le, aa- = an-.
    words = ("wieder", "falsch", "termin", "fertig", "ausweis", "anmelden", "zurueck", "machen")
    known = {analyzer.stem(w) for w in words}
    question = "wieda foisch, Dermin fertich, mei Ausweisle aamelden, zruck, wos soll i macha"
    got = [t.stem for t in analyzer.tokens(question, (), known)]
    assert got == [analyzer.stem(w) for w in words]


def test_dialect_function_words_are_stop_words(analyzer: Analyzer) -> None:
    # "mir ham etz an Hund, wo mou ma den anmeldn": only the topic words are left.
    known = {analyzer.stem(w) for w in ("hund", "anmelden")}
    question = "Mir ham etz aa an Hund, wo mou ma den in Minga oda Nämberch anmeldn?"
    got = [t.stem for t in analyzer.tokens(question, (), known)]
    assert got == [analyzer.stem("hund"), analyzer.stem("anmelden")]


def test_stop_words_typed_without_umlaut_dots_are_stop_words(analyzer: Analyzer) -> None:
    # "Nurnberg", "fur", "konnen" are the stop words Nürnberg, für, können without the dots.
    got = stems(analyzer, "Konnen Sie mir fur mein Konto in Nurnberg oder Munchen helfen")
    assert got == [analyzer.stem("konto"), analyzer.stem("helfen")]
    # Extra stop words (the database's city names) likewise.
    extra = Analyzer(extra_stopwords=["Fürth"])
    assert stems(extra, "Konto in Furth") == [extra.stem("konto")]


def test_city_names_as_adjectives_and_in_dialect_are_stop_words(analyzer: Analyzer) -> None:
    # "Augsburger Innenstadt" pulled towards entries whose variants happen to say it.
    for city in ("Augsburger", "Münchner", "Nürnberger", "Augschburg", "Närnberch"):
        assert stems(analyzer, f"Konto im {city} Bürgerbüro") == stems(
            analyzer, "Konto im Bürgerbüro"
        ), city
    # The database's cities get their "-er" form too; without them it stays a word.
    extra = Analyzer(extra_stopwords=["Regensburg"])
    assert stems(extra, "Regensburger Konto") == [extra.stem("konto")]
    assert extra.stem("regensburg") in stems(analyzer, "Regensburger Konto")


def test_dialect_rules_leave_words_the_kb_knows_alone(analyzer: Analyzer) -> None:
    # "hoin" would become "holen"; a KB that has the word "hoin" keeps it.
    known = {analyzer.stem("holen"), "hoin"}
    assert [t.stem for t in analyzer.tokens("hoin", (), known)] == ["hoin"]
    assert [t.stem for t in analyzer.tokens("hoin", (), {analyzer.stem("holen")})] == [
        analyzer.stem("holen")
    ]
    # No rule gives a known word: the word stays as typed.
    assert [t.stem for t in analyzer.tokens("xyzzyn", (), known)] == [analyzer.stem("xyzzyn")]


def test_a_bad_dialect_rule_is_refused_with_its_line() -> None:
    assert len(load_dialect_rules("# comment\n^va  ver\n")) == 1
    with pytest.raises(ValueError, match="line 2"):
        load_dialect_rules("ua  u\n([a-z  x\n")
    with pytest.raises(ValueError, match="line 1"):
        load_dialect_rules("nur-ein-feld\n")


@pytest.mark.parametrize(
    ("text", "aside"),
    [
        ("Mein Passwort weiß ich noch, aber nicht mehr den Namen.", "Mein Passwort weiß ich noch"),
        ("ich weiss mein passwort noch aber nicht mehr den namen", "ich weiss mein passwort noch "),
        ("Den Benutzernamen habe ich noch. Das Passwort ist weg.", "Den Benutzernamen habe ich noch"),
        ("Die PIN kenn i no, aber de PUK ned", "Die PIN kenn i no"),
        ("Das Passwort fehlt, den Namen weiß ich aber noch.", " den Namen weiß ich aber noch"),
    ],
)
def test_a_clause_naming_what_the_asker_still_knows_is_split_off(text: str, aside: str) -> None:
    main, got = split_asides(text)
    assert got == aside
    assert aside.strip() not in main and main.strip()


@pytest.mark.parametrize(
    "text",
    [
        "Ich habe noch einen alten Reisepass, kann ich den verlängern?",  # not fronted: the topic
        "Den Benutzernamen weiß ich noch nicht.",  # negated
        "Die alte Adresse kenne ich immer noch auswendig",  # "immer noch": a lasting state
        "Das Passwort weiß ich noch?",  # asked
        "Ich habe noch keinen Termin.",
    ],
)
def test_other_clauses_with_noch_stay(text: str) -> None:
    assert split_asides(text) == (text, "")


@pytest.mark.parametrize(
    ("text", "focus", "story"),
    [
        (
            "Ich bin 74. Meine Tochter sagt, ich brauche eine BayernID. Wie komme ich da dran?",
            "Wie komme ich da dran?",
            "Ich bin 74. Meine Tochter sagt, ich brauche eine BayernID.",
        ),
        # Two questions are both the question; the story may also come after them.
        (
            "Geht das online? Was kostet es? Ich habe wenig Zeit.",
            "Geht das online? Was kostet es?",
            "Ich habe wenig Zeit.",
        ),
        # Without a question mark the last sentence asks.
        ("Mein Pass ist abgelaufen.\nbitte um Rückruf", "bitte um Rückruf", "Mein Pass ist abgelaufen."),
    ],
)
def test_a_message_splits_into_its_question_and_its_story(
    text: str, focus: str, story: str
) -> None:
    assert split_focus(text) == (focus, story)


@pytest.mark.parametrize(
    "text",
    [
        "Wie setze ich mein Passwort zurück?",
        "Geht das online? Was kostet es?",
        # Points in dates, ordinals and abbreviations end no sentence.
        "Am 3. März bzw. am 4. Mai, z. B. vormittags, d.h. vor 12 Uhr",
        "Mein Termin am 23.5. ist abgesagt",
    ],
)
def test_one_sentence_or_only_questions_have_no_story(text: str) -> None:
    assert split_focus(text) == (text, "")
