"""Value sets shared by the database models and the pure routing code (stored as strings)."""

from __future__ import annotations

from enum import StrEnum


class Audience(StrEnum):
    external = "external"
    internal = "internal"


class Channel(StrEnum):
    web = "web"
    telegram = "telegram"
    api = "api"
    email = "email"
    phone = "phone"
    board = "board"


class RuleStatus(StrEnum):
    active = "active"
    proposed = "proposed"
    rejected = "rejected"


CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)
