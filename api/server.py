"""`turnjudge serve`: uvicorn with the request limits enforced while a request arrives.

uvicorn's h11 protocol buffers at most `h11_max_incomplete_event_size` bytes of request line
and headers; past that it would answer a plain-text 400. `LimitedH11Protocol` answers 431 in
the error model instead, so a 50 MB header is refused after its first kilobytes. Headers
within that buffer but over API_MAX_HEADER_BYTES get the same 431 from the app's middleware.
"""

from __future__ import annotations

import json

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.settings import Settings, get_settings

#: Room for the request line (method, path and query) on top of the header limit.
REQUEST_LINE_ALLOWANCE = 8 * 1024


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering an oversized request head with JSON 431."""

    def send_400_response(self, msg: str) -> None:
        """431 in the error model when h11 gave up on an oversized head, else uvicorn's 400."""
        limit = self.config.h11_max_incomplete_event_size
        if limit is None or len(self.conn.trailing_data[0]) <= limit:
            super().send_400_response(msg)
            return
        body = json.dumps(
            {
                "error": "HeadersTooLarge",
                "detail": f"request line and headers exceed {limit} bytes",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode()),
        ]
        self.transport.write(
            self.conn.send(
                h11.Response(
                    status_code=431, headers=headers, reason=b"Request Header Fields Too Large"
                )
            )
            or b""
        )
        self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


def uvicorn_config(settings: Settings, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration `turnjudge serve` runs (also used by tests)."""
    from api.app import create_app

    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        http=LimitedH11Protocol,
        h11_max_incomplete_event_size=settings.api_max_header_bytes + REQUEST_LINE_ALLOWANCE,
        log_level="info",
    )


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    """Run the API until interrupted."""
    uvicorn.Server(uvicorn_config(settings or get_settings(), host, port)).run()
