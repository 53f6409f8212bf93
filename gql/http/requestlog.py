"""One log line per HTTP request (ORDERGRAPH_LOG_REQUESTS): who asked for which operation,
how it ended (status, error code) and how long it took, under the request's id.

The id is the client's `X-Request-ID` when it sends a plain one, else a new one; it is sent
back in `X-Request-ID` and bound to every line logged while the request runs (a masked
internal error's included). The caller is its role and subject, never its token; a subject
that is an e-mail address is logged as a digest. The GraphQL layer adds what only it knows
(the operation's name, the first error code) with `note`.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql.http.access import IDENTITY
from gql.identity import Identity
from gql.schema.fastpath import requested_operation

NOTES = "ordergraph.log"  # on the scope of a logged request: what the GraphQL layer noted
_PLAIN_ID = re.compile(r"^[\w.:-]{1,64}$")
log = structlog.get_logger("ordergraph.requests")


def note(scope: Scope, **fields: Any) -> None:
    """Adds fields to the request's line (first value wins); nothing when requests are not
    logged."""
    notes = scope.get(NOTES)
    if notes is not None:
        for key, value in fields.items():
            notes.setdefault(key, value)


def operation_name(query: str, operation: str | None = None) -> str | None:
    """The name of the operation a request runs: the one it names, or the document's only one."""
    if operation:
        return operation
    chosen = requested_operation(query, None)
    return chosen.name.value if chosen and chosen.name else None


def note_operation(scope: Scope, query: str, operation: str | None) -> None:
    if NOTES in scope:
        note(scope, operation=operation_name(query, operation))


def note_errors(scope: Scope, body: bytes) -> None:
    """The first error code of a GraphQL response's body, when it has errors."""
    if NOTES not in scope or b'"errors"' not in body:
        return
    try:
        errors = orjson.loads(body).get("errors") or [{}]
        note(scope, code=(errors[0].get("extensions") or {}).get("code"))
    except (orjson.JSONDecodeError, AttributeError):
        return


def subject_of(identity: Identity | None) -> str | None:
    """The subject as logged: an e-mail address becomes a digest that still tells callers apart."""
    if identity is None:
        return None
    if "@" in identity.subject:
        return "sha256:" + hashlib.sha256(identity.subject.encode()).hexdigest()[:16]
    return identity.subject


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if _PLAIN_ID.match(given):
                return given
    return uuid.uuid4().hex


class RequestLog:
    """Logs each HTTP request once it is answered (WebSockets pass through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        notes: dict[str, Any] = {}
        scope[NOTES] = notes
        status = 500  # unless the app answers: an exception on the way
        header = (b"x-request-id", request_id.encode())

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), header]}
            elif status >= 400 and "code" not in notes:  # refused by a layer before GraphQL
                note_errors(scope, message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, sending)
            finally:
                identity = scope.get(IDENTITY)
                log.info("request", method=scope["method"], path=scope["path"], status=status,
                         duration_ms=round((time.perf_counter() - started) * 1000, 2),
                         operation=notes.get("operation"), code=notes.get("code"),
                         role=identity.role if identity else None, subject=subject_of(identity))
