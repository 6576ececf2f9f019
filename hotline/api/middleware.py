"""ASGI middleware: a hard limit on request body size (413 before the app sees the body), no NUL
characters in addresses and form posts, and security headers on every response."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """Refuses bodies over `max_bytes`, whether announced by Content-Length or streamed."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, upload_bytes: int = 0, upload_suffix: str = ""
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # File uploads (a path ending in `upload_suffix`) may be larger, up to `upload_bytes`
        # plus room for the multipart framing; the endpoint checks the file's own size.
        self.upload_bytes = upload_bytes + 64_000 if upload_suffix else max_bytes
        self.upload_suffix = upload_suffix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            await _send_json(
                send, 400, "invalid_characters", "The address contains a NUL character."
            )
            return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if self.upload_suffix and scope.get("path", "").endswith(self.upload_suffix):
            limit = max(limit, self.upload_bytes)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(send, limit)
                return
        # Buffer the body (bounded) so a streamed oversize body is refused cleanly, too.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").lower()
        if content_type.startswith(b"application/x-www-form-urlencoded") and (
            b"%00" in body or b"\x00" in body
        ):
            # No form of ours takes a NUL (PostgreSQL cannot store one, and it hides text).
            await _send_json(send, 400, "invalid_characters", "The form contains a NUL character.")
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        detail = f"The request body is larger than the limit of {limit} bytes."
        await _send_json(send, 413, "payload_too_large", detail)


async def _send_json(send: Send, status: int, code: str, detail: str) -> None:
    payload = json.dumps({"code": code, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# Pages and assets come only from this server; no inline script, no framing. The API docs
# (/docs, /redoc) load FastAPI's Swagger/ReDoc assets from a CDN, so they get no CSP.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_NO_CSP_PREFIXES = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds CSP, nosniff, a referrer policy and no-framing to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with_csp = not scope.get("path", "").startswith(_NO_CSP_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if with_csp:
                    extra.append((b"content-security-policy", CSP.encode()))
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
