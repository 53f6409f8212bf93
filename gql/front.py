"""The ASGI front of the HTTP app: compiled requests answered before starlette sees them.

A query whose document the resolvers answered once runs as one SQL statement, a known
append mutation as one statement per field (gql/schema/fastpath.py). For such a request,
starlette's routing, middleware, Request and Response cost more CPU than everything else
together (bench/RESULTS.md, "Q1"), so this front answers it from the raw ASGI messages.
Everything else goes on to the app unchanged: other paths and methods, WebSockets, bodies
without a Content-Length, documents not compiled yet, and failed reads, which the resolvers
then answer and report with their error codes.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql.access import IDENTITY, NOBODY
from gql.config import Settings
from gql.http import COMPILED_TRIED, JSON_BODIES, answer_compiled, negotiate, refused_status
from gql.metrics import REQUESTS
from gql.schema.fastpath import FastPath, Refused


class CompiledFront:
    """Answers `POST <path>` requests whose document has a compiled plan (queries and
    append mutations)."""

    def __init__(self, app: ASGIApp, *, fast: FastPath, settings: Settings, state: State,
                 path: str = "/graphql") -> None:
        self.app, self.fast, self.state, self.path = app, fast, state, path
        self.max_body = settings.max_body_bytes
        self._timer = REQUESTS.labels("POST", path, "200")  # what MetricsMiddleware would record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] != scope.get("root_path", "") + self.path):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        length = accept = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"accept":
                accept = value
            elif name == b"content-type":
                content_type = value
        # the app answers (and refuses) anything unusual: no declared length, too big, not JSON
        if (length is None or not length.isdigit() or int(length) > self.max_body
                or content_type.split(b";")[0].strip().decode("latin-1").lower() not in JSON_BODIES):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away
            return
        answer = await self._answer(body, scope)
        if answer is None:
            scope[COMPILED_TRIED] = True
            await self.app(scope, _replay(body, receive), send)
            return
        media_type = negotiate(accept.decode("latin-1") if accept else "")
        status = 200
        if isinstance(answer, Refused):
            answer, status = answer.body, refused_status(media_type)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", f"{media_type}; charset=utf-8".encode()),
            (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
        self._timer.observe(time.perf_counter() - started)

    async def _answer(self, body: bytes, scope: Scope) -> bytes | Refused | None:
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(params, dict):
            return None
        query, variables, operation = (
            params.get("query"), params.get("variables"), params.get("operationName"))
        if (not isinstance(query, str) or not (variables is None or isinstance(variables, dict))
                or not (operation is None or isinstance(operation, str))):
            return None
        return await answer_compiled(self.fast, self.state, query, variables, operation,
                                     mutations=True, identity=scope.get(IDENTITY, NOBODY))


async def read_body(receive: Receive) -> bytes | None:
    """A request's whole body from its ASGI messages; None when the client went away."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app: the body already read, then the client's later messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
        return message

    return replay
