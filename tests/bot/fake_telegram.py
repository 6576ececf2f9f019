"""A stand-in Telegram Bot API server on 127.0.0.1 for tests: real HTTP, recorded calls."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

BOT_ID = 777000111
TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64


@dataclass
class Call:
    method: str
    params: dict[str, Any]


def _decode(value: Any) -> Any:
    """aiogram sends nested objects (reply_markup…) as JSON strings inside form fields."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeTelegram:
    """Serves `/bot<token>/<method>` and `/file/bot<token>/<path>` like the Bot API does.

    Tests queue updates for getUpdates, read the recorded calls, register files for
    getFile and can take the server down (503, or connection refused) and up again.
    """

    def __init__(self, token: str = "123456:TEST-token") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.down: str | None = None  # None | "503"
        self.port = 0
        self._updates: list[dict[str, Any]] = []
        self._new_update = asyncio.Event()
        self._message_ids = itertools.count(1)
        self._update_ids = itertools.count(1000)
        self._files: dict[str, tuple[str, bytes]] = {}
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def refuse_connections(self) -> None:
        """Simulate an outage in which nothing listens on the port."""
        await self.stop()

    async def accept_connections(self) -> None:
        await self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- test helpers -------------------------------------------------------------------

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def queue_update(self, update: dict[str, Any]) -> None:
        self._updates.append(update)
        self._new_update.set()

    def add_file(self, file_id: str, content: bytes, path: str = "documents/file.pdf") -> None:
        self._files[file_id] = (path, content)

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.calls_of("sendMessage")
            if chat_id is None or str(p["chat_id"]) == str(chat_id)
        ]

    def texts(self, chat_id: int | str | None = None) -> list[str]:
        return [p["text"] for p in self.sent(chat_id)]

    # --- the API ------------------------------------------------------------------------

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:  # multipart/form-data (aiogram) or application/x-www-form-urlencoded
                form = await request.post()
                for key, value in form.items():
                    params[key] = value if isinstance(value, web.FileField) else _decode(value)
        return params

    def _error(self, status: int, description: str) -> web.Response:
        body = {"ok": False, "error_code": status, "description": description}
        return web.json_response(body, status=status)

    async def _api(self, request: web.Request) -> web.Response:
        if self.down == "503":
            return self._error(503, "Service Unavailable")
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        if method != "getUpdates":
            self.calls.append(Call(method, params))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response({"ok": True, "result": True})
        result = await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _m_getMe(self, params: dict[str, Any]) -> Any:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Hotline",
            "username": "hotline_test_bot",
        }

    async def _m_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._new_update.clear()
            # Long polling, kept short so tests stop quickly.
            timeout = min(float(params.get("timeout") or 0), 0.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout=timeout)
        return self._updates[:100]

    def _message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": message_id or next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Hotline"},
            "text": params.get("text", ""),
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _check_text(self, params: dict[str, Any]) -> web.Response | None:
        text = params.get("text")
        if not text:
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            return self._error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > CALLBACK_DATA_LIMIT:
                    return self._error(400, "Bad Request: BUTTON_DATA_INVALID")
        return None

    async def _m_sendMessage(self, params: dict[str, Any]) -> Any:
        error = self._check_text(params)
        if error is not None:
            return error
        message = self._message(params)
        params["message_id"] = message["message_id"]
        return message

    async def _m_editMessageText(self, params: dict[str, Any]) -> Any:
        error = self._check_text(params)
        return error or self._message(params, int(params["message_id"]))

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        return self._message(params, int(params["message_id"]))

    async def _m_getFile(self, params: dict[str, Any]) -> Any:
        file_id = params["file_id"]
        if file_id not in self._files:
            return self._error(400, "Bad Request: invalid file_id")
        path, content = self._files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(content),
            "file_path": path,
        }

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if self.down == "503":
            return self._error(503, "Service Unavailable")
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        path = request.match_info["path"]
        for file_path, content in self._files.values():
            if file_path == path:
                self.calls.append(Call("download", {"path": path}))
                return web.Response(body=content, content_type="application/octet-stream")
        return self._error(404, "Not Found")
