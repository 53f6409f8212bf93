"""GraphQL over Server-Sent Events on /graphql (the graphql-sse protocol, distinct connections).

A `GET` or `POST /graphql` whose `Accept` names `text/event-stream` is answered with an event
stream: each result is an SSE `next` event, a `complete` event ends it. Errors found before
execution (unparsable, invalid, too costly) come as a `next` with `errors`, as the protocol
asks. Subscriptions run through the process's live hub with the same identity (the bearer
token, read by the access layer), scoping, cost limit and queue as over WebSocket; the hub's
rendered payloads are sent as they are.

Each event of a subscription carries its `globalPosition` as its SSE `id:`. A client that
reconnects with `Last-Event-ID` (browsers' EventSource do so by themselves) resumes right
after that event: `orderEvents` and `orderStatusChanged` replay what it missed from the log,
then go live, with no gap and no duplicate. When the token expires the stream ends without
`complete`, so that clients reconnect with a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.datastructures import State
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry import Schema
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from gql.config import Settings
from gql.errors import BadRequest, BadUserInput
from gql.events import Position
from gql.http.access import IDENTITY, NOBODY
from gql.http.gate import REFUSALS, client_of, refusal
from gql.http.graphql import read_params
from gql.http.requestlog import note, note_operation
from gql.live import position_of
from gql.schema.context import Context
from gql.schema.errors import client_error
from gql.schema.subscriptions import Rendered
from gql.waiting import stopped

EVENT_STREAM = "text/event-stream"
log = logging.getLogger("ordergraph.sse")


def wants_event_stream(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            return EVENT_STREAM.encode() in value
    return False


def _event(data: bytes, position: Position | None = None) -> bytes:
    head = b"id: " + position.encode().encode() + b"\n" if position is not None else b""
    return head + b"event: next\ndata: " + data + b"\n\n"


COMPLETE = b"event: complete\ndata:\n\n"
PING = b":\n\n"  # a comment: keeps proxies from closing an idle stream; clients ignore it


async def _answer_json(send: Send, status: int, body: bytes,
                       headers: dict[str, str] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json; charset=utf-8"),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items())]})
    await send({"type": "http.response.body", "body": body})


class EventStreams:
    """Answers /graphql requests that accept `text/event-stream`; passes the rest on."""

    def __init__(self, app: ASGIApp, *, schema: Schema, settings: Settings, state: State,
                 path: str = "/graphql") -> None:
        self.app, self.schema, self.settings, self.state = app, schema, settings, state
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in ("GET", "POST")
                or scope["path"] != scope.get("root_path", "") + self.path
                or not wants_event_stream(scope)):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        gate = self.state.gate
        try:
            params = await read_params(request, self.settings, gate.documents)
            note_operation(scope, params[0], params[2])
            await gate.admit(*params, scope.get(IDENTITY, NOBODY), client_of(scope))
        except BadRequest as exc:
            body = orjson.dumps({"errors": [{"message": exc.message,
                                             "extensions": {"code": exc.code}}]})
            await _answer_json(send, exc.status, body)
            return
        except REFUSALS as exc:  # the refusal of an operation that would have run: 400
            note(scope, code=exc.code)
            await _answer_json(send, *refusal(exc, 400))
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
        async with _Stream(send, self.settings.keepalive_interval) as stream:
            await self._run(request, params, stream)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _run(self, request: Request, params: Any, stream: _Stream) -> None:
        query, variables, operation = params
        identity = request.scope.get(IDENTITY, NOBODY)
        context = Context(self.state.pool, self.settings, self.state.access.grants, identity,
                          getattr(self.state, "live", None), request, sends_rendered=True)
        resume = request.headers.get("last-event-id", "").strip()
        try:
            context.resume_after = Position.decode(resume, "Last-Event-ID") if resume else None
        except BadUserInput as exc:
            await stream.write(_event(orjson.dumps({"errors": [{"message": exc.message, "extensions": {
                "code": exc.code, **exc.extensions}}]})))
            await stream.write(COMPLETE)
            return
        allowed = ((OperationType.QUERY, OperationType.SUBSCRIPTION) if request.method == "GET"
                   else (OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION))
        expires = (identity.expires_at + self.settings.jwt_leeway
                   if identity.expires_at is not None else None)
        try:
            source = await self.schema.stream(query, variables, context, operation_name=operation,
                                              allowed_operation_types=allowed)
        except Exception as exc:  # e.g. a mutation over GET: reported as the protocol asks
            await stream.write(_event(orjson.dumps({"errors": [{
                "message": "mutations must be sent with POST" if request.method == "GET"
                else str(exc), "extensions": {"code": BadRequest.code}}]})))
            await stream.write(COMPLETE)
            return
        async with contextlib.aclosing(source):
            try:
                async with asyncio.timeout(None if expires is None else max(0.0, expires - time.time())):
                    async for result in source:
                        if not await self._send(result, context, stream):
                            break
            except TimeoutError:
                return  # the token expired: no `complete`, so the client reconnects with a new one
        await stream.write(COMPLETE)

    async def _send(self, result: Any, context: Context, stream: _Stream) -> bool:
        """Write one result; False when the stream must end (after errors before execution)."""
        if isinstance(result, PreExecutionError) or not isinstance(result, ExecutionResult):
            errors = getattr(result, "errors", None) or []
            body = {"errors": [client_error(e).formatted for e in errors]} if errors else {
                "errors": [{"message": "incremental delivery is not supported over SSE"}]}
            await stream.write(_event(orjson.dumps(body)))
            return False
        if isinstance(result.data, Rendered):
            await self._pump(result.data, stream)
            return True
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [client_error(e).formatted for e in result.errors]
        await stream.write(_event(orjson.dumps(body), context.last_position))
        return True

    async def _pump(self, data: Rendered, stream: _Stream) -> None:
        """Send the payloads the live hub rendered, each as it is, until one has none (the
        resolvers execute it), the stream ends, or sending fails."""
        delivery = data.pending
        try:
            while delivery is not None:
                if delivery.data is None:
                    data.stopped = delivery
                    return
                await stream.write(_event(b'{"data":' + delivery.data.encode() + b"}",
                                          position_of(delivery.row)))
                delivery = await anext(data.deliveries, None)
        except Exception as exc:  # the resolver reports it, as for any subscription
            data.error = exc


class _Stream:
    """The response body, written by one writer at a time, with a comment when idle."""

    def __init__(self, send: Send, keepalive: float) -> None:
        self._send = send
        self._keepalive = keepalive
        self._lock = asyncio.Lock()
        self._written = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Stream:
        self._pinger = asyncio.create_task(self._ping())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stopped(self._pinger, OSError)

    async def write(self, chunk: bytes) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._written = time.monotonic()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._written + self._keepalive - time.monotonic()))
            if time.monotonic() - self._written >= self._keepalive:
                await self.write(PING)
