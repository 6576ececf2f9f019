"""Every error leaves the API as JSON `{code, detail}` with the right status; never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hotline.errors import HotlineError

log = logging.getLogger("hotline.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def error_response(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif status == 429 and isinstance(extra.get("retry_after"), int):
        headers = {"Retry-After": str(extra["retry_after"])}
    return JSONResponse(
        {"code": code, "detail": detail, **extra}, status_code=status, headers=headers
    )


def _describe(errors: list[Any]) -> tuple[str, str, list[dict[str, Any]]]:
    # Only location, message and type: the raw input may hold personal data or huge values.
    clean: list[dict[str, Any]] = []
    parts: list[str] = []
    code = "validation_error"
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            code = "invalid_json"
        clean.append({"loc": loc, "msg": msg, "type": err.get("type")})
        parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
    return code, "; ".join(parts)[:2000] or "The request is not valid.", clean


_BOARD_TEXTS = {
    404: "Diese Seite gibt es nicht.",
    405: "Diese Aktion ist hier nicht möglich.",
    413: "Die Eingabe ist zu groß.",
    422: "Die Eingabe ist unvollständig oder ungültig. Bitte prüfen Sie das Formular.",
    500: "Ein unerwarteter Fehler ist aufgetreten; er wurde protokolliert.",
}


def install_error_handlers(app: FastAPI) -> None:
    # The staff board (/board) gets friendly HTML pages instead of JSON.
    from hotline.board._core import LoginRequired, error_page, is_board, login_redirect

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(HotlineError)
    async def _domain(request: Request, exc: HotlineError) -> Response:
        if is_board(request):
            return error_page(request, exc.status_code, exc.detail)
        return error_response(exc.status_code, exc.code, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if is_board(request):
            return error_page(request, 422, _BOARD_TEXTS[422])
        code, detail, errors = _describe(list(exc.errors()))
        return error_response(422, code, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_board(request):
            text = _BOARD_TEXTS.get(exc.status_code, "Die Anfrage ist fehlgeschlagen.")
            return error_page(request, exc.status_code, text)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return error_response(exc.status_code, code, detail)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> Response:
        # The database refused a value (a NUL character, a number out of range): bad input,
        # and the write transaction has been rolled back.
        if is_board(request):
            return error_page(request, 422, _BOARD_TEXTS[422])
        return error_response(
            422,
            "invalid_input",
            "The request contains a value the database cannot store (e.g. a NUL character).",
        )

    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: OverflowError) -> Response:
        # SQLite's driver refuses integers beyond 64 bits (PostgreSQL raises DataError, above).
        if is_board(request):
            return error_page(request, 422, _BOARD_TEXTS[422])
        return error_response(
            422, "invalid_input", "A number in the request is out of range (at most 64 bits)."
        )

    @app.exception_handler(UnicodeDecodeError)
    async def _not_utf8(request: Request, exc: UnicodeDecodeError) -> Response:
        # A body read by hand (JSON or YAML) that is not UTF-8: the client's mistake, not ours.
        if is_board(request):
            return error_page(request, 422, _BOARD_TEXTS[422])
        return error_response(422, "invalid_encoding", "The request body is not UTF-8 text.")

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        return error_response(400, "invalid_json", "The JSON body is nested too deeply.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The type and route only: messages and bodies can carry personal data.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        if is_board(request):
            return error_page(request, 500, _BOARD_TEXTS[500])
        return error_response(
            500, "internal_error", "An unexpected error occurred; it has been logged."
        )
