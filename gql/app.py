"""The ASGI application: GraphQL over HTTP and WebSocket, health, metrics and the web app."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp

from gql.access import IDENTITY, NOBODY, Access, Authenticate
from gql.config import Settings, settings_from_env
from gql.disconnect import CancelOnDisconnect
from gql.front import CompiledFront
from gql.guard import SiteGuard
from gql.http import graphql_endpoint
from gql.live import LiveHub, quiet_gc
from gql.metrics import MetricsMiddleware, metrics
from gql.schema import build_schema
from gql.schema.context import Context
from gql.schema.fastpath import FastPath
from gql.store import DATABASE_ERRORS, Pool
from gql.store.connection import create_pool, warn_if_superuser
from gql.store.lane import ReadLane
from gql.tokens import Verifier
from gql.websocket import Subscriptions

log = logging.getLogger("ordergraph")


def create_app(settings: Settings, pool: Pool | None = None) -> ASGIApp:
    """The app; it opens (and closes) its own pool unless one is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = pool is None
        app.state.pool = pool or await create_pool(
            settings.database_url, min_size=settings.pool_min_size,
            max_size=settings.pool_max_size, statement_timeout=settings.request_timeout)
        await warn_if_superuser(app.state.pool)
        await access.load()
        app.state.reads = ReadLane(app.state.pool, settings.pool_max_size)
        app.state.live = LiveHub(app.state.pool, settings)
        await app.state.live.start()
        quiet_gc()
        try:
            yield
        finally:
            await app.state.live.stop()
            if owned:
                await app.state.pool.close()

    def context(request: Request) -> Context:
        return Context(request.app.state.pool, settings, access.grants,
                       request.scope.get(IDENTITY, NOBODY), getattr(request.app.state, "live", None),
                       request)

    try:
        from gql import web
    except ImportError:  # the web front-end is optional when running from a bare checkout
        web = None  # type: ignore[assignment]
    ide = web.graphiql_response if (web is not None and settings.ide) else None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
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
        return JSONResponse({"status": "ready" if ready else "not ready", **checks},
                            200 if ready else 503)

    app = Starlette(lifespan=lifespan, middleware=[Middleware(MetricsMiddleware)])
    access = Access(settings, verifier(settings), app.state)
    app.state.access = access
    if pool is not None:  # usable without running the lifespan (ASGI test clients)
        app.state.pool, app.state.reads = pool, ReadLane(pool, settings.pool_max_size)
    schema = build_schema(settings)
    fast = FastPath(schema, settings) if settings.compiled_reads else None
    endpoint = graphql_endpoint(schema, settings, context, ide, fast)
    routes: list[BaseRoute] = [
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", Subscriptions(settings, app.state)),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if web is not None:
        routes.extend(web.routes())
    app.router.routes.extend(routes)
    served: ASGIApp = app
    if fast is not None:  # compiled requests are answered before starlette sees them
        served = CompiledFront(app, fast=fast, settings=settings, state=app.state)
    return SiteGuard(Authenticate(CancelOnDisconnect(served), access), settings)


def verifier(settings: Settings) -> Verifier:
    """The token verifier; the dev key is read from the data directory only when trusted."""
    if not settings.trust_dev_key:
        return Verifier(settings)
    from gql.database import default_data_dir

    return Verifier(settings, default_data_dir())


def app_from_env() -> ASGIApp:
    """Factory for worker processes started by `ordergraph serve --workers N`."""
    return create_app(settings_from_env(os.environ["ORDERGRAPH_WORKER_DATABASE_URL"]))
