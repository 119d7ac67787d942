"""Request size limits: headers (431) and body (413), answered with the error model.

Both are plain ASGI middleware, so they hold under any server. `turnjudge serve` also caps
what uvicorn buffers before the app sees a request (see `api.server`), so that a 50 MB
header is refused while it arrives instead of after.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class BodyTooLargeError(HTTPException):
    """The body grew past the limit while it was read (no or a false Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class HeaderLimitMiddleware:
    """431 when the request's headers (names and values) total more than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """431 for oversized headers, else the app."""
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                response = error_response(
                    431,
                    "HeadersTooLarge",
                    f"request headers total {size} bytes; the limit is {self.max_bytes}",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 when the body is larger than `max_bytes`.

    A declared Content-Length over the limit is refused before the app runs; a body without
    one (chunked) is counted as it is read and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """413 for a declared oversized body, else the app with a counting `receive`."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = error_response(
                413,
                "ContentTooLarge",
                f"request body of {declared} bytes exceeds the limit of {self.max_bytes}",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
