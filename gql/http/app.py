"""The ASGI application: the layers every request passes, in order, and the routes behind them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp

from gql import traces
from gql.config import Settings, settings_from_env
from gql.demo import run_demo
from gql.http import health, pages
from gql.http.access import IDENTITY, NOBODY, Access, Authenticate
from gql.http.disconnect import CancelOnDisconnect
from gql.http.gate import Gate
from gql.http.graphql import CompiledFront, graphql_endpoint
from gql.http.guard import SiteGuard
from gql.http.requestlog import RequestLog
from gql.http.sse import EventStreams
from gql.http.tracing import Traced
from gql.http.websocket import WebSocketEndpoint
from gql.live import LiveHub, quiet_gc
from gql.logs import configure_logging
from gql.outbound.beside import Relays, configured
from gql.schema import build_schema
from gql.schema.context import Context
from gql.schema.fastpath import FastPath
from gql.store import Pool
from gql.store.connection import create_pool, warn_if_superuser
from gql.store.lane import ReadLane
from gql.store.outage import DatabaseHealth
from gql.store.replicas import Replicas
from gql.store.tallies import compact_tallies
from gql.tokens import Verifier

log = logging.getLogger("ordergraph")


async def _keep_tallies(pool: Pool, interval: float) -> None:
    """Folds the changes appends leave in the tallies behind counts, now and then (one
    process of a fleet at a time); a failure is logged and tried again next time."""
    while True:
        await asyncio.sleep(interval)
        try:
            await compact_tallies(pool)
        except Exception as exc:  # the database away: counts stay right, only slower to read
            log.warning("could not fold the tallies: %s", exc)


def create_app(settings: Settings, pool: Pool | None = None) -> ASGIApp:
    """The app; it opens (and closes) its own pool unless one is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = pool is None
        app.state.pool = pool or await create_pool(
            settings.database_url, min_size=settings.pool_min_size,
            max_size=settings.pool_max_size, statement_timeout=settings.request_timeout,
            generic_plans=True)
        await warn_if_superuser(app.state.pool)
        await access.load()
        app.state.reads = ReadLane(app.state.pool, settings.pool_max_size)
        app.state.replicas = Replicas(app.state.pool, app.state.reads, settings)
        await app.state.replicas.start()
        app.state.health = DatabaseHealth(app.state.pool)
        app.state.live = LiveHub(app.state.pool, settings, app.state.health)
        await app.state.live.start()
        tasks = [asyncio.create_task(_keep_tallies(app.state.pool, settings.tally_interval))]
        if settings.demo_rate > 0:
            tasks.append(asyncio.create_task(run_demo(app.state.pool, settings.demo_rate)))
        relays.start(app.state.live)  # consumers the settings name, woken by the hub
        quiet_gc()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await relays.stop()
            await app.state.live.stop()
            await app.state.health.stop()
            await app.state.replicas.stop()
            if owned:
                await app.state.pool.close()
            traces.shutdown()  # the spans still buffered, exported before the process ends

    def context(request: Request, reads: Pool) -> Context:
        """An operation's context: it reads from `reads` (a replica's pool, or the primary's)
        and writes to the primary."""
        return Context(reads, settings, access.grants, request.scope.get(IDENTITY, NOBODY),
                       getattr(request.app.state, "live", None), request,
                       primary=request.app.state.pool)

    relays = Relays(configured(settings))  # a bad relay setting fails here, before serving
    app = Starlette(lifespan=lifespan, middleware=[Middleware(health.MetricsMiddleware)])
    access = Access(settings, verifier(settings), app.state)
    app.state.access = access
    if pool is not None:  # usable without running the lifespan (ASGI test clients)
        app.state.pool, app.state.reads = pool, ReadLane(pool, settings.pool_max_size)
        app.state.replicas = Replicas(pool, app.state.reads, settings)  # not started: the primary
        app.state.health = DatabaseHealth(pool)
    schema = build_schema(settings)
    fast = FastPath(schema, settings) if settings.compiled_reads else None
    # trusted documents (checked here: a bad one stops the start) and rate limits
    app.state.gate = Gate.of(settings, schema)
    if fast is not None:  # known to the compiled path: no first run through the resolvers
        for document in app.state.gate.documents.by_id.values():
            for operation in document.costs:
                fast.remember(document.text, operation)
    ide = pages.graphiql_response if settings.ide else None
    routes: list[BaseRoute] = [
        Route("/graphql", graphql_endpoint(schema, settings, context, ide, fast),
              methods=["GET", "POST"]),
        WebSocketRoute("/graphql", WebSocketEndpoint(settings, app.state)),
        *health.routes(),
        *pages.routes(),
    ]
    app.router.routes.extend(routes)

    # What a request passes, outermost first; each layer may answer it and stop there.
    served: ASGIApp = app  # starlette: request timer, then the routes above
    if fast is not None:  # compiled POSTs are answered before starlette sees them
        served = CompiledFront(served, fast=fast, settings=settings, state=app.state)
    # requests that accept text/event-stream: GraphQL over SSE, through the live hub
    served = EventStreams(served, schema=schema, settings=settings, state=app.state)
    served = CancelOnDisconnect(served)  # a client that leaves cancels the work
    served = Authenticate(served, access)  # the caller's identity, or 401
    served = SiteGuard(served, settings)  # allowed Host and browser Origin, or 421 / 403
    if settings.log_requests:  # one line per request, whoever answered it
        served = RequestLog(served)
    if traces.start():  # a span per request, outermost: whoever answers it (OTEL_* settings)
        served = Traced(served)
    return served


def verifier(settings: Settings) -> Verifier:
    """The token verifier; the dev key is read from the data directory only when trusted."""
    if not settings.trust_dev_key:
        return Verifier(settings)
    from gql.database import default_data_dir

    return Verifier(settings, default_data_dir())


def app_from_env() -> ASGIApp:
    """Factory for worker processes started by `ordergraph serve --workers N`."""
    settings = settings_from_env(os.environ["ORDERGRAPH_WORKER_DATABASE_URL"])
    configure_logging(settings)
    return create_app(settings)
