"""The deployment files under test and the environment names the settings accept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from hotline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PROMETHEUS_CONF = ROOT / "deploy" / "prometheus.yml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

# A variable the settings could read: HOTLINE_* or one of the TELEGRAM_* aliases.
SETTING_NAME = re.compile(r"\b(?:HOTLINE|TELEGRAM)_[A-Z0-9_]+\b")


def setting_env_names() -> dict[str, list[str]]:
    """Each Settings field and the environment names it is read from (the first is the main)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, list[str]] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = [c.upper() for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            names[field_name] = [alias.upper()]
        else:
            names[field_name] = [f"{prefix}{field_name}".upper()]
    return names


def all_setting_env_names() -> set[str]:
    return {name for names in setting_env_names().values() for name in names}


def load_compose() -> dict[str, Any]:
    """compose.yml as written (no variable interpolation; YAML merge keys resolved)."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_example_names(*, commented: bool) -> set[str]:
    """Variables .env.example assigns; with `commented`, also the `# NAME=` examples."""
    pattern = r"^\s*(#\s*)?([A-Z][A-Z0-9_]*)=" if commented else r"^\s*([A-Z][A-Z0-9_]*)="
    found = re.findall(pattern, ENV_EXAMPLE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {m[-1] if isinstance(m, tuple) else m for m in found}
