"""The HTTP connection itself: read deadlines and a cap on open connections.

uvicorn bounds idle keep-alive connections (5 s) and message sizes, but not the time a client
takes to send a request: a client that trickles its headers, or its body a byte a second,
holds a connection (and a file descriptor) for as long as it likes, and nothing bounds how
many connections are open. ASGI code only sees a request once its headers are complete, so
this lives one layer down, in uvicorn's httptools protocol:

- **headers** must be complete within `header_timeout` seconds of the connection opening (or
  of a keep-alive request's first byte), in at most `max_header_bytes`; else 408 / 431;
- **a body** must arrive within `body_timeout` seconds of its headers; else 408 (the request
  time budget, `request_timeout`, starts once the body is read);
- **connections** beyond `max_connections` (HTTP and WebSocket together, per process) are
  answered 503 SERVICE_UNAVAILABLE with Retry-After as soon as they open, and closed.

Each refusal is counted in `ordergraph_http_refused_total` by reason, never logged (a
flood must not fill the log). WebSockets are bounded by their `connection_init` timeout
(gql/http/websocket.py) once upgraded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gql.config import Settings, settings_from_env
from gql.metrics import HTTP_REFUSED

LINGER = 1.0  # seconds a refused connection may take to read its answer before it is closed


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    body_timeout: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.header_timeout, settings.body_timeout, settings.max_header_bytes,
                   settings.max_connections)


def _answer(status: bytes, code: str, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n"
            + extra + b"\r\n" + body)


TOO_MANY = _answer(b"503 Service Unavailable", "SERVICE_UNAVAILABLE",
                   "the server has too many open connections; try again shortly",
                   b"retry-after: 1\r\n")
SLOW_HEADERS = _answer(b"408 Request Timeout", "BAD_REQUEST",
                       "the request's headers took too long to arrive")
SLOW_BODY = _answer(b"408 Request Timeout", "BAD_REQUEST", "the request body took too long to arrive")
BIG_HEADERS = _answer(b"431 Request Header Fields Too Large", "BAD_REQUEST",
                      "the request's headers are too large")


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines and a connection cap. `limits` None:
    read from the ORDERGRAPH_* environment once per process (`serve --workers N`)."""

    limits: ClassVar[Limits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls.limits is None:
            cls.limits = Limits.of(settings_from_env(""))
        self._limits: Limits = cls.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "headers", "body", or None (idle, answering, upgraded)
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        if len(self.server_state.connections) >= self._limits.max_connections:
            self._refused = True
            self.transport = transport  # type: ignore[assignment]
            HTTP_REFUSED.labels("connections").inc()
            transport.write(TOO_MANY)  # type: ignore[attr-defined]
            if transport.can_write_eof():  # type: ignore[attr-defined]
                transport.write_eof()  # type: ignore[attr-defined]
            self.loop.call_later(LINGER, transport.close)
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # whatever it sends, the answer is the 503 already written
        if self._phase is None:
            self._await_headers()  # a keep-alive connection's next request
        if self._phase == "headers":
            self._header_bytes += len(data)
        super().data_received(data)
        if self._phase == "headers" and self._header_bytes > self._limits.max_header_bytes:
            self._refuse(BIG_HEADERS, "header_size")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._disarm()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self._limits.body_timeout, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket's own connection_init timeout takes over
        super().handle_websocket_upgrade()

    def _await_headers(self) -> None:
        self._header_bytes = 0
        self._arm(self._limits.header_timeout, "headers")

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        self._phase = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._phase == "headers":
            self._refuse(SLOW_HEADERS, "header_timeout")
        elif self._phase == "body":
            started = self.cycle is not None and self.cycle.response_started
            self._refuse(None if started else SLOW_BODY, "body_timeout")

    def _refuse(self, answer: bytes | None, reason: str) -> None:
        self._disarm()
        HTTP_REFUSED.labels(reason).inc()
        if not self.transport.is_closing():
            if answer is not None:
                self.transport.write(answer)
            self.transport.close()  # the app, if it waits for the body, sees a disconnect


def protocol_for(settings: Settings) -> type[LimitedHttpProtocol]:
    """The protocol class for a server running with `settings` (in this process)."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": Limits.of(settings)})
