"""KB entries: the Markdown-with-front-matter file format, loading, validation and dumping."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

AUDIENCES = ("external", "internal")
STATUSES = ("draft", "published")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_KNOWN_KEYS = ("id", "title", "service", "city", "audience", "status", "questions")
_REQUIRED_KEYS = ("id", "title", "service", "questions")


@dataclass
class KBEntry:
    """One knowledge-base article: question variants and the answer (Markdown)."""

    id: str
    title: str
    service: str
    city: str | None = None
    audience: str = "external"
    questions: list[str] = field(default_factory=list)
    answer: str = ""
    status: str = "published"


class KBFormatError(ValueError):
    """A KB file that cannot be accepted; names the file, the line (1-based) and why."""

    def __init__(self, path: str | Path | None, line: int | None, reason: str) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.reason = reason
        # All problems found in a directory load; the first one is this error itself.
        self.errors: list[KBFormatError] = [self]
        where = str(self.path) if self.path is not None else "<text>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {reason}")


class _LineLoader(yaml.SafeLoader):
    """Safe loader that remembers the line of every mapping key (for error messages)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[str(key)] = key_node.start_mark.line
        if isinstance(value_node, yaml.SequenceNode):
            lines[f"{key}[]"] = value_node.start_mark.line
            for i, item in enumerate(value_node.value):
                lines[f"{key}[{i}]"] = item.start_mark.line
    mapping["__lines__"] = lines
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def parse_entry(text: str, path: str | Path | None = None) -> KBEntry:
    """Parse the text of one KB file; raise `KBFormatError` naming the line on any problem."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise KBFormatError(path, 1, "the file must start with a '---' line (YAML front matter)")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise KBFormatError(path, 1, "the front matter is not closed by a second '---' line")
    front = "\n".join(lines[1:end])
    try:
        data = yaml.load(front, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark is not None else 2
        raise KBFormatError(path, line, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise KBFormatError(path, 2, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise KBFormatError(path, 2, "the front matter must be a mapping of fields")
    key_lines: dict[str, int] = data.pop("__lines__")

    def line_of(key: str) -> int:
        # +2: line 1 is the opening '---', marks are 0-based.
        return key_lines.get(key, -1) + 2 if key in key_lines else 2

    def fail(key: str, reason: str) -> KBFormatError:
        return KBFormatError(path, line_of(key), reason)

    for key in data:
        if key not in _KNOWN_KEYS:
            known = ", ".join(_KNOWN_KEYS)
            raise fail(str(key), f"unknown field {key!r} (known fields: {known})")
    for key in _REQUIRED_KEYS:
        if key not in data:
            raise KBFormatError(path, 2, f"missing required field {key!r}")

    def text_field(key: str, *, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(key, f"field {key!r} must be a non-empty text")
        return value.strip()

    entry_id = text_field("id")
    assert entry_id is not None
    if not _ID_RE.match(entry_id):
        raise fail("id", f"id {entry_id!r} may only use a-z, 0-9, '-' and '_'")
    title = text_field("title")
    service = text_field("service")
    assert title is not None and service is not None
    if not _KEY_RE.match(service):
        raise fail("service", f"service {service!r} must be a key such as 'bayernid'")
    city = text_field("city", required=False)
    if city is not None and not _KEY_RE.match(city):
        raise fail("city", f"city {city!r} must be a city key such as 'muenchen'")
    audience = data.get("audience", "external")
    if audience not in AUDIENCES:
        raise fail("audience", f"audience must be one of {', '.join(AUDIENCES)}, not {audience!r}")
    status = data.get("status", "published")
    if status not in STATUSES:
        raise fail("status", f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    questions = data["questions"]
    if not isinstance(questions, list) or not questions:
        raise fail("questions", "field 'questions' must be a non-empty list of questions")
    cleaned: list[str] = []
    for i, question in enumerate(questions):
        if not isinstance(question, str) or not question.strip():
            raise fail(f"questions[{i}]", f"question {i + 1} must be a non-empty text")
        if question.strip() in cleaned:
            raise fail(f"questions[{i}]", f"question {question.strip()!r} is listed twice")
        cleaned.append(question.strip())
    answer = "\n".join(lines[end + 1 :]).strip()
    if not answer:
        raise KBFormatError(path, end + 2, "the answer (the text after the front matter) is empty")
    return KBEntry(
        id=entry_id,
        title=title,
        service=service,
        city=city,
        audience=audience,
        questions=cleaned,
        answer=answer,
        status=status,
    )


def load_entry(path: str | Path) -> KBEntry:
    """Read and validate one KB file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KBFormatError(path, None, f"not UTF-8 text: {exc.reason}") from exc
    except OSError as exc:
        raise KBFormatError(path, None, f"cannot read the file: {exc.strerror or exc}") from exc
    return parse_entry(text, path)


def load_dir(path: str | Path) -> list[KBEntry]:
    """Load every `*.md` below a directory; all files are validated before any is returned.

    README.md files and names starting with "." or "_" are not entries and are skipped.

    Raises the first `KBFormatError` (in file-name order); its `.errors` lists all of them.
    """
    root = Path(path)
    if not root.is_dir():
        raise KBFormatError(root, None, "not a directory of KB files")
    entries: list[KBEntry] = []
    errors: list[KBFormatError] = []
    seen: dict[str, Path] = {}
    for file in sorted(root.rglob("*.md")):
        if _is_not_an_entry(file.relative_to(root)):
            continue
        try:
            entry = load_entry(file)
        except KBFormatError as exc:
            errors.append(exc)
            continue
        if entry.id in seen:
            errors.append(
                KBFormatError(
                    file, _id_line(file), f"duplicate id {entry.id!r} (also in {seen[entry.id]})"
                )
            )
            continue
        seen[entry.id] = file
        entries.append(entry)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.args = (f"{first.args[0]} (and {len(errors) - 1} more bad file(s))",)
        first.errors = errors
        raise first
    return entries


def _is_not_an_entry(relative: Path) -> bool:
    # A KB directory may carry its own notes (README.md) and hidden or "_"-prefixed drafts.
    if relative.name.lower() == "readme.md":
        return True
    return any(part.startswith((".", "_")) for part in relative.parts)


def _id_line(path: Path) -> int | None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("id:"):
            return number
    return None


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key ("  - …"), as the KB files are written by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_entry(entry: KBEntry) -> str:
    """The file text of an entry; `parse_entry(dump_entry(e)) == e` for every valid entry."""
    front: dict[str, Any] = {"id": entry.id, "title": entry.title, "service": entry.service}
    if entry.city is not None:
        front["city"] = entry.city
    front["audience"] = entry.audience
    if entry.status != "published":
        front["status"] = entry.status
    front["questions"] = list(entry.questions)
    body = yaml.dump(
        front,
        Dumper=_IndentedDumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=10_000,
    )
    return f"---\n{body}---\n{entry.answer.strip()}\n"


def write_dir(entries: Iterable[KBEntry], path: str | Path) -> list[Path]:
    """Write one `<id>.md` per entry into a directory (created if needed); returns the files."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for entry in entries:
        target = root / f"{entry.id}.md"
        target.write_text(dump_entry(entry), encoding="utf-8")
        written.append(target)
    return written
