"""`ordergraph serve`: database, schema (current, or refused), demo data, then uvicorn until a signal."""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

import uvicorn
from rich.console import Console

from gql import traces
from gql.config import Settings, settings_from_env
from gql.database import database_url as resolve_database
from gql.database import default_data_dir, ensure_data_dir
from gql.errors import ConfigurationError
from gql.http.access import is_loopback
from gql.http.guard import LOOPBACK_HOSTS
from gql.http.server import LimitedHttpProtocol, protocol_for
from gql.logs import configure_logging
from gql.store.connection import APP_ROLE, as_role, create_pool, target
from gql.store.migrations import prepare
from gql.tokens import dev_private_key

DEMO_ORDERS = 600
console = Console(highlight=False)


async def _prepare(url: str, demo: bool, upgrade: bool) -> None:
    pool = await create_pool(url, min_size=1, max_size=8)
    try:
        async with pool.acquire() as conn:
            await prepare(conn, upgrade=upgrade)
            empty = not await conn.fetchval("select exists (select from orders_current)")
        if demo and empty:
            from gql.seed import seed

            with console.status(f"seeding {DEMO_ORDERS} demo orders…"):
                result = await seed(pool, orders=DEMO_ORDERS)
            console.print(f"seeded {result.orders} demo orders ({result.events} events)")
    finally:
        await pool.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn runs the app (also in tests and benchmarks): requests have read deadlines
    and open connections a cap (gql/http/server.py); WebSocket messages are capped like HTTP
    bodies; compressing ~150-byte WebSocket messages buys nothing and costs a zlib state each."""
    return {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 10,
            "ws_per_message_deflate": False, "ws_max_size": settings.max_body_bytes,
            "http": protocol_for(settings)}


def ensure_descriptors(settings: Settings) -> None:
    """Raise the process's open-file limit to what the connection cap needs (its soft limit
    is often 1024), or refuse a cap the hard limit cannot give."""
    needed = settings.max_connections + settings.pool_max_size + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigurationError(
            f"ORDERGRAPH_MAX_CONNECTIONS={settings.max_connections} needs {needed} open files "
            f"per process but the limit is {hard} (ulimit -Hn): lower it or raise the limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


_SPARE_DESCRIPTORS = 64  # the listener, the listening socket, log files, the embedded server


def access_mode(settings: Settings, host: str) -> str:
    """The banner's access line; refuses open mode on an address beyond loopback."""
    if settings.jwks or settings.jwt_secret or settings.trust_dev_key:
        trusted = [name for name, on in (("JWKS " + settings.jwks, settings.jwks),
                                         ("HS256 secret", settings.jwt_secret),
                                         ("dev key", settings.trust_dev_key)) if on]
        return "bearer tokens required (" + ", ".join(trusted) + ")"
    if not (host and is_loopback(host)) and not settings.insecure_open:  # "" is every address
        raise ConfigurationError(
            f"no keys configured: refusing to serve {host} open to everyone as admin; set "
            "ORDERGRAPH_JWKS (or ORDERGRAPH_JWT_SECRET), or pass --insecure-open")
    if settings.insecure_open:
        return "OPEN: no keys configured, every caller is admin (--insecure-open)"
    return "open: no keys configured, every caller is admin (loopback clients only)"


def controls(settings: Settings) -> list[str]:
    """The banner's lines for trusted documents and rate limits, checked now (one
    ConfigurationError line for a bad document or budget)."""
    if not (settings.documents or settings.trusted_documents_only or settings.rate_limit_requests
            or settings.rate_limit_cost):
        return []
    from gql.http.gate import Gate
    from gql.schema import build_schema

    gate, lines = Gate.of(settings, build_schema(settings)), []
    documents = gate.documents.by_id.values()
    if documents:
        costliest = max(cost for document in documents for cost in document.costs.values())
        refused = "; every other document refused" if gate.documents.only else ""
        lines.append(f"  trusted documents   {len(documents)} from {settings.documents} "
                     f"(estimated cost up to {costliest}){refused}")
    if gate.limits is not None:
        budgets = ", ".join(f"{what} {budget}" for what, budget in (
            ("requests", gate.limits.requests), ("cost", gate.limits.cost)) if budget)
        where = "Redis" if settings.rate_limit_redis else "this process's memory"
        lines.append(f"  rate limits         {budgets} per caller, counted in {where}")
    return lines


def serve(*, host: str, port: int, database_url: str | None, demo: bool, workers: int) -> None:
    if host not in (*LOOPBACK_HOSTS, "0.0.0.0", "::", ""):  # the name it serves is its own
        os.environ.setdefault("ORDERGRAPH_ALLOWED_HOSTS", ",".join((*LOOPBACK_HOSTS, host)))
    if database_url:
        target(database_url)  # one clear line for a URL that names no database
    settings = settings_from_env("")  # a bad ORDERGRAPH_* value fails before anything starts
    traces.wanted(os.environ)  # a bad OTEL_* value too
    mode = access_mode(settings, host)
    control = controls(settings)  # a bad document or budget: one line, now
    ensure_descriptors(settings)
    if settings.trust_dev_key:  # a key the server must not trust fails here, in one line
        dev_private_key(ensure_data_dir(default_data_dir()))
    configure_logging(settings)  # JSON lines, or readable ones on a terminal (gql/logs.py)
    with resolve_database(database_url, default_data_dir()) as url:
        # as the given (or the embedded superuser) role; the embedded database is ordergraph's
        # own: it upgrades itself
        asyncio.run(_prepare(url, demo, upgrade=database_url is None))
        if database_url is None:  # the embedded server: serve as the role that owns nothing
            url = as_role(url, APP_ROLE)
        base = f"http://{host}:{port}"
        console.print(f"ordergraph serving on {base}\n"
                      f"  GraphQL + GraphiQL  {base}/graphql\n"
                      f"  subscriptions       ws://{host}:{port}/graphql\n"
                      f"  live order board    {base}/\n"
                      f"  health, metrics     {base}/healthz {base}/readyz {base}/metrics\n"
                      f"  access              {mode}")
        if settings.replica_list:
            console.print("  read replicas       " + ", ".join(settings.replica_list))
        if settings.demo_rate > 0:
            console.print(f"  demo shop           {settings.demo_rate:g} new orders a second")
        for line in control:
            console.print(line)
        # log_config None: uvicorn's own lines go through the same formatter as everyone's
        options: dict[str, Any] = {"host": host, "port": port, **uvicorn_options(settings),
                                   "log_config": None}
        if workers > 1:  # each worker reads its settings (and its limits) from the environment
            os.environ["ORDERGRAPH_WORKER_DATABASE_URL"] = url
            options["http"] = f"{LimitedHttpProtocol.__module__}:{LimitedHttpProtocol.__name__}"
            uvicorn.run("gql.http.app:app_from_env", factory=True, workers=workers, **options)
        else:
            from gql.http.app import create_app

            uvicorn.run(create_app(settings_from_env(url)), **options)
