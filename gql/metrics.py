"""Prometheus metrics for /metrics."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Histogram(
    "ordergraph_http_request_seconds", "HTTP requests by route and status",
    ["method", "route", "status"],
)
APPENDS = Counter(
    "ordergraph_appends_total",
    "Appends by event type and outcome: appended, deduplicated, or the error code",
    ["type", "outcome"],
)
COMPILED = Counter(
    "ordergraph_compiled_operations_total",
    "Operations run as compiled statements: reads answered, or failed and answered by the "
    "resolvers; append mutations run",
    ["operation", "outcome"],
)
SUBSCRIPTIONS = Gauge("ordergraph_subscriptions", "Active GraphQL subscriptions")
DELIVERED = Counter("ordergraph_events_delivered_total", "Events delivered to subscriptions")
RENDERED = Counter(
    "ordergraph_live_renders_total",
    "Statements that rendered compiled subscription payloads: one per read of the log and "
    "distinct selection (live), or per replay page",
    ["source"],
)
LISTENER_UP = Gauge("ordergraph_listener_connected", "1 while the LISTEN connection is up")


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every HTTP request; the route label is the path template, not the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started)
