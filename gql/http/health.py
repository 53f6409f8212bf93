"""How the server reports on itself: /healthz (alive), /readyz (database and listener up;
each replica's lag), /metrics (Prometheus text), and the timer that records every HTTP
request for /metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql.metrics import REQUESTS
from gql.outbound.beside import consumer_lag
from gql.store import DATABASE_ERRORS


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the database answers and the live hub's listener is connected."""
    checks: dict[str, Any] = {}
    try:
        async with request.app.state.pool.acquire(timeout=2) as conn:
            await conn.fetchval("select 1")
        checks["database"] = "ok"
    except DATABASE_ERRORS as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    live = getattr(request.app.state, "live", None)
    if live is not None:
        checks["listener"] = "connected" if live.connected else "reconnecting"
    ready = all(v in ("ok", "connected") for v in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", **checks}
    if checks["database"] == "ok":  # the consumers' lag tells, it does not decide readiness
        body["consumers"] = await _consumers(request)
    replicas = getattr(request.app.state, "replicas", None)
    if replicas is not None and replicas.replicas:  # neither does a replica's: reads fall back
        body["replicas"] = replicas.status()
    return JSONResponse(body, 200 if ready else 503)


async def _consumers(request: Request) -> dict[str, Any]:
    """Each durable consumer's lag (events, seconds), also set on the /metrics gauges."""
    try:
        return await consumer_lag(request.app.state.pool)
    except DATABASE_ERRORS:
        return {}


async def metrics(request: Request) -> Response:
    await _consumers(request)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[BaseRoute]:
    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


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
