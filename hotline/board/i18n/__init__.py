"""Board texts: German is written in the templates and code, English comes from catalogues.

Each page module keeps its own catalogue here (`hotline/board/i18n/<page>.py` with a dict
`EN` mapping the German text to English); `translator(lang)` merges them. A test checks that
every `_("…")` text of the board has an English entry.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any


@functools.cache
def catalogue() -> dict[str, str]:
    merged: dict[str, str] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        merged.update(getattr(module, "EN", {}))
    return merged


def translator(lang: str) -> Callable[..., str]:
    """`_("Text {n}", n=3)`: the text in `lang` (German when no English entry), formatted."""
    table = catalogue() if lang == "en" else {}

    def _(text: str, **values: Any) -> str:
        out = table.get(text, text)
        return out.format(**values) if values else out

    return _
