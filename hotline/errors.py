"""Domain errors with a stable code; the API turns them into JSON `{code, detail}`."""

from __future__ import annotations

from typing import Any


class HotlineError(Exception):
    """Base class: `code` is stable for clients, `detail` is for people."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class NotFound(HotlineError):
    status_code = 404
    code = "not_found"


class Unauthorized(HotlineError):
    status_code = 401
    code = "unauthorized"


class Forbidden(HotlineError):
    status_code = 403
    code = "forbidden"


class Conflict(HotlineError):
    status_code = 409
    code = "conflict"


class VersionConflict(Conflict):
    code = "version_conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class InvalidInput(HotlineError):
    """Well-formed but unacceptable input, e.g. an unknown city key."""

    status_code = 422
    code = "invalid_input"
