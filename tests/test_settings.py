"""Settings: read from HOTLINE_* variables, unsafe production secrets refused."""

from __future__ import annotations

import importlib
import sys

import pytest
from pydantic import ValidationError

from hotline.settings import DEFAULT_SECRET, Settings


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_PORT", "8123")
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "sqlite:///./var/other.db")
    settings = Settings()
    assert settings.port == 8123 and settings.database_url.endswith("other.db")


@pytest.mark.parametrize("secret", ["", DEFAULT_SECRET, "short-secret"])
def test_production_refuses_missing_default_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="HOTLINE_SECRET_KEY"):
        Settings(env="production", secret_key=secret)


def test_production_accepts_a_real_secret_and_development_the_default() -> None:
    assert Settings(env="production", secret_key="x" * 40).env == "production"
    assert Settings(env="development").secret_key == DEFAULT_SECRET


def test_importing_the_app_creates_no_engine_or_settings() -> None:
    for name in ("hotline.app", "hotline.db", "hotline.settings", "hotline.cli"):
        module = (
            importlib.reload(sys.modules[name])
            if name in sys.modules
            else importlib.import_module(name)
        )
        module_objects = vars(module).values()
        from fastapi import FastAPI
        from sqlalchemy import Engine

        assert not any(isinstance(o, (FastAPI, Engine, Settings)) for o in module_objects), name


def test_an_empty_variable_counts_as_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # An env file line `TELEGRAM_BOT_TOKEN=` must not start Telegram with an empty token.
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", "")
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "")
    settings = Settings()
    assert settings.telegram_bot_token is None and settings.metrics_token is None
    with pytest.raises(ValidationError, match="HOTLINE_SECRET_KEY"):
        Settings(env="production")
