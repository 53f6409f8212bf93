"""Who may talk to the server: known Host names only (DNS rebinding) and, from browsers,
known origins only (cross-site requests and WebSockets)."""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from gql.config import Settings
from gql.errors import Forbidden, MisdirectedRequest

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _names(configured: str) -> list[str]:
    return [n.strip().lower() for n in configured.split(",") if n.strip()]


def _hostname(netloc: str) -> str | None:
    try:
        return urlsplit("//" + netloc).hostname
    except ValueError:
        return None


class SiteGuard:
    """Refuses a request whose `Host` is not an allowed name (HTTP 421, a WebSocket is not
    accepted) and a browser request whose `Origin` is neither the server itself (the same
    `Host`) nor an allowed origin (HTTP 403). Requests without `Origin` (curl, servers) pass."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = frozenset(_names(settings.allowed_hosts) or LOOPBACK_HOSTS)
        self.origins = frozenset(o.rstrip("/") for o in _names(settings.allowed_origins))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").lower()
            elif name == b"origin":
                origin = value.decode("latin-1").lower().rstrip("/")
        if not self._host_allowed(host):
            await _refuse(scope, send, 421, MisdirectedRequest.code,
                          f"this server does not answer for host {host or '(none)'}")
        elif origin and not (origin in self.origins or _same_origin(origin, host)):
            await _refuse(scope, send, 403, Forbidden.code,
                          f"requests from {origin} are not allowed (ORDERGRAPH_ALLOWED_ORIGINS)")
        else:
            await self.app(scope, receive, send)

    def _host_allowed(self, host: str) -> bool:
        if "*" in self.hosts:
            return True
        name = _hostname(host)
        return name is not None and name in self.hosts


def _same_origin(origin: str, host: str) -> bool:
    scheme, _, netloc = origin.partition("://")
    return scheme in ("http", "https", "ws", "wss") and netloc == host


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":  # closing before accepting answers HTTP 403
        await send({"type": "websocket.close", "code": 4403, "reason": message[:120]})
        return
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
