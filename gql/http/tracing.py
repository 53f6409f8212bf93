"""A span for every HTTP request and WebSocket connection, outermost in the ASGI stack, so a
request the compiled front answers has its span too (added only when tracing is on).

The caller's W3C `traceparent` (on a request, or on a WebSocket's upgrade request) is
continued. The GraphQL layer adds what only it knows with `annotate`: the operation's name
and type, and whether the compiled path or the resolvers answered.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql import traces
from gql.schema.fastpath import requested_operation

SPAN = "ordergraph.span"  # on the scope of a traced request: its span


def annotate(scope: Scope, **attributes: Any) -> None:
    """Sets attributes on the request's span; nothing when the request is not traced."""
    span = scope.get(SPAN)
    if span is not None:
        span.set_attributes({k.replace("__", "."): v for k, v in attributes.items() if v is not None})


def annotate_operation(scope: Scope, query: str, operation: str | None) -> None:
    """The operation's name and type (query, mutation, subscription) on the request's span."""
    if SPAN not in scope:
        return
    chosen = requested_operation(query, operation)
    if chosen is not None:
        annotate(scope, graphql__operation__name=chosen.name.value if chosen.name else None,
                 graphql__operation__type=chosen.operation.value)


class Traced:
    """Starts the request's span (a child of the caller's traceparent, when it sends one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = traces.TRACER
        if tracer is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "WS"
        path = scope["path"]
        parent = traces.context_of_headers(scope["headers"])
        with tracer.start_as_current_span(
                f"{method} {path}", context=parent, kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path, "http.route": path}) as span:
            scope[SPAN] = span

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, sending if scope["type"] == "http" else send)
