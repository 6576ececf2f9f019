"""docs/operations.md lists every setting of hotline/settings.py with its real default."""

from __future__ import annotations

import enum
import re

from pydantic import SecretStr

from hotline.settings import Settings
from tests.deploy.files import OPERATIONS_DOC, load_compose, setting_env_names

ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)


def documented() -> dict[str, str]:
    """Variable → default cell of the settings table."""
    return dict(ROW.findall(OPERATIONS_DOC.read_text(encoding="utf-8")))


def doc_default(value: object) -> set[str]:
    """How a default may be written in the table."""
    if value is None:
        return {"unset", "auto"}
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return {f"`{value}`"}


def test_every_setting_has_a_row_with_its_default() -> None:
    rows = documented()
    missing, wrong = [], []
    for field_name, names in setting_env_names().items():
        main = names[0]
        if main not in rows:
            missing.append(main)
            continue
        default = Settings.model_fields[field_name].default
        if rows[main] not in doc_default(default):
            wrong.append(f"{main}: doc says {rows[main]}, code has {default!r}")
    assert missing == [], f"settings missing from docs/operations.md: {missing}"
    assert wrong == [], wrong


def test_no_row_for_a_setting_that_does_not_exist() -> None:
    known = {name for names in setting_env_names().values() for name in names}
    rows = documented()
    assert len(rows) >= len(setting_env_names())
    assert sorted(set(rows) - known) == []


def test_every_compose_service_is_described() -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    for service in load_compose()["services"]:
        assert f"| `{service}` |" in text, service
