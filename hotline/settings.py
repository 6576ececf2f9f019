"""Configuration from the environment (prefix HOTLINE_), built on demand, never at import."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "dev-insecure-change-me"
DEFAULT_DATABASE_URL = "sqlite:///./var/hotline.db"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message says which and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        # `TELEGRAM_BOT_TOKEN=` (empty, as in an env file) means "not set", not an empty token.
        env_ignore_empty=True,
    )

    env: Environment = Environment.development
    secret_key: str = DEFAULT_SECRET
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    # The city that answers when nothing else decides (no origin city known).
    default_city: str = "muenchen"
    max_body_bytes: int = Field(default=1_000_000, ge=1_024)
    # SLA defaults in service hours; a city may override them.
    sla_first_response_hours: int = Field(default=24, ge=1)
    sla_resolution_hours: int = Field(default=120, ge=1)
    # SQLite: how long a writer waits for the lock before giving up (ms).
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    # Extra connections a process may open beyond the pool under load (PostgreSQL: count
    # (pool size + overflow) × processes against max_connections).
    db_max_overflow: int = Field(default=20, ge=0)
    # Optional Redis (bot conversation state, shared rate limits); empty = in memory.
    redis_url: str | None = None

    # --- Telegram and the bot -------------------------------------------------------------
    # The bot's token from @BotFather; without it neither the bot nor Telegram delivery runs.
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "HOTLINE_TELEGRAM_BOT_TOKEN"),
    )
    # Base URL of the Bot API; tests and local development point it at a stand-in server.
    telegram_api_base: str = Field(
        default="https://api.telegram.org",
        validation_alias=AliasChoices("TELEGRAM_API_BASE", "HOTLINE_TELEGRAM_API_BASE"),
    )
    # Webhook mode: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token.
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_WEBHOOK_SECRET", "HOTLINE_TELEGRAM_WEBHOOK_SECRET"),
    )
    # `hotline serve` runs the bot (long polling) itself when the token is set and no webhook
    # secret is; turn off when `hotline bot` runs separately or with several server workers.
    bot_in_process: bool = True
    # How the bot reaches the backend (it never opens the database itself).
    api_url: str = "http://127.0.0.1:8000"
    api_token: SecretStr | None = None
    # Citizen channel limits (bot and web chat).
    chat_max_message_chars: int = Field(default=2_000, ge=100)
    chat_max_document_bytes: int = Field(default=5_000_000, ge=1_024)
    chat_rate_limit_per_minute: int = Field(default=20, ge=1)
    # Outbound delivery worker (outbox): in-process in `hotline serve` unless disabled.
    worker_in_process: bool = True
    worker_poll_seconds: float = Field(default=1.0, gt=0)

    # --- staff board -------------------------------------------------------------------------
    board_session_hours: int = Field(default=12, ge=1)
    # Failed logins in a row before an account is locked, and for how long.
    login_max_failed: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    # Login attempts per client address and minute (all user names together).
    login_rate_per_minute: int = Field(default=10, ge=1)
    # API intake per client and minute: a client is the token plus the citizen it acts for
    # (chat id, web session, e-mail) when the request names one (hotline/api/ratelimit.py).
    ask_rate_per_minute: int = Field(default=120, ge=1)
    ticket_rate_per_minute: int = Field(default=60, ge=1)
    # Session cookie `Secure` flag: None = set it when the request came over HTTPS
    # (behind a proxy: run uvicorn with --proxy-headers so the scheme is known).
    cookie_secure: bool | None = None

    # --- data protection (retention) ---------------------------------------------------------
    # The worker runs the retention job this often (0 = never; then run `hotline retention run`
    # from cron instead). The periods themselves are set per city (City.retention_days).
    retention_interval_hours: float = Field(default=24.0, ge=0)
    # Questions without a city and idle web-chat sessions are deleted after this many days.
    log_retention_days: int = Field(default=30, ge=1)
    # Rows changed per transaction, so retention never holds the write lock for long (SQLite:
    # ~0.5 s for 100 tickets).
    retention_batch_size: int = Field(default=100, ge=1, le=10_000)

    # --- metrics and SLA escalation (hotline/metrics.py, hotline/services/escalation.py) ----
    # Prometheus text format at GET /metrics of every backend process.
    metrics_enabled: bool = True
    # When set, /metrics wants `Authorization: Bearer <token>`; unset it is open, so keep the
    # port on the internal network (or set this).
    metrics_token: SecretStr | None = None
    # The gauges read from the database (open tickets, SLA breaches, pending outbox) are
    # cached this long, so frequent scrapes of several replicas stay cheap.
    metrics_cache_seconds: float = Field(default=15.0, ge=0)
    # `hotline worker` serves its own counters (deliveries, escalations) on this port
    # (0 = off); the worker inside `hotline serve` reports through the app's /metrics.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # The worker's escalation pass runs this often (0 = off): open tickets past their
    # first-response due time are flagged once and their responsible city is notified.
    sla_check_seconds: float = Field(default=60.0, ge=0)
    # The board's address as staff reach it; links in notifications point here.
    public_url: str = "http://127.0.0.1:8000"
    # E-mail to cities (escalation_email): without a host no e-mail is queued.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "hotline@localhost"
    # STARTTLS on a plain connection (port 587); HOTLINE_SMTP_SSL=true is implicit TLS
    # (port 465) and wins over STARTTLS.
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Webhooks to cities (escalation_webhook_url) are signed with HMAC-SHA256 when set
    # (header X-Hotline-Signature, see services/escalation.py).
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != Environment.development and self.env != Environment.test:
            if not self.secret_key or self.secret_key == DEFAULT_SECRET:
                raise SettingsError(
                    "HOTLINE_SECRET_KEY is missing or still the development default; "
                    f"set a long random value before running with HOTLINE_ENV={self.env.value} "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
                )
            if len(self.secret_key) < 32:
                raise SettingsError(
                    "HOTLINE_SECRET_KEY is too short for production: use at least 32 characters."
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file for a file-based SQLite URL (its folder is created on demand)."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[-1]
        if not path or path == ":memory:":
            return None
        return Path(path)


def get_settings(**overrides: object) -> Settings:
    """Read the settings from the environment; keyword arguments win over it."""
    return Settings(**overrides)  # type: ignore[arg-type]
