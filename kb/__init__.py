"""Knowledge base: the entry file format, German text analysis and the matcher."""

from kb._entry import (
    KBEntry,
    KBFormatError,
    dump_entry,
    load_dir,
    load_entry,
    parse_entry,
    write_dir,
)
from kb._evaluate import (
    EvalReport,
    FuzzBaseline,
    LabelledQuestion,
    LabelledSetError,
    evaluate,
    load_labelled,
)
from kb._familienlotse import familienlotse_sets
from kb._matcher import Candidate, Matcher, MatchResult, Thresholds, Weights
from kb._text import Analyzer, fold, load_dialect_rules, load_synonyms

__all__ = [
    "Analyzer",
    "Candidate",
    "EvalReport",
    "FuzzBaseline",
    "KBEntry",
    "KBFormatError",
    "LabelledQuestion",
    "LabelledSetError",
    "MatchResult",
    "Matcher",
    "Thresholds",
    "Weights",
    "dump_entry",
    "evaluate",
    "familienlotse_sets",
    "fold",
    "load_dialect_rules",
    "load_dir",
    "load_entry",
    "load_labelled",
    "load_synonyms",
    "parse_entry",
    "write_dir",
]
