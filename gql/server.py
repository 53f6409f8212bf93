"""`ordergraph serve`: database, schema (current, or refused), demo data, then uvicorn until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import uvicorn
from rich.console import Console

from gql.config import settings_from_env
from gql.database import database_url as resolve_database
from gql.database import default_data_dir
from gql.store.connection import create_pool
from gql.store.migrations import prepare

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


def serve(*, host: str, port: int, database_url: str | None, demo: bool, workers: int) -> None:
    settings_from_env("")  # a bad ORDERGRAPH_* value fails before anything starts
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with resolve_database(database_url, default_data_dir()) as url:
        # the embedded database is ordergraph's own: it upgrades itself
        asyncio.run(_prepare(url, demo, upgrade=database_url is None))
        base = f"http://{host}:{port}"
        console.print(f"ordergraph serving on {base}\n"
                      f"  GraphQL + GraphiQL  {base}/graphql\n"
                      f"  subscriptions       ws://{host}:{port}/graphql\n"
                      f"  live order board    {base}/\n"
                      f"  health, metrics     {base}/healthz {base}/readyz {base}/metrics")
        # compressing ~150-byte WebSocket messages buys nothing and costs a zlib state each
        options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False,
                   "timeout_graceful_shutdown": 10, "ws_per_message_deflate": False}
        if workers > 1:
            os.environ["ORDERGRAPH_WORKER_DATABASE_URL"] = url
            uvicorn.run("gql.app:app_from_env", factory=True, workers=workers, **options)
        else:
            from gql.app import create_app

            uvicorn.run(create_app(settings_from_env(url)), **options)
