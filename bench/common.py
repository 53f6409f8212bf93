"""Shared bench plumbing: a fresh database on the embedded (or given) PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gql.database import embedded_postgres
from gql.events import EventType, NewEvent
from gql.identity import SYSTEM
from gql.store.append import append_event, register_customer
from gql.store.connection import connect
from gql.store.migrations import migrate


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """DATABASE_URL's server, else an embedded PostgreSQL in a temporary directory."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="ordergraph-bench-") as tmp, \
            embedded_postgres(Path(tmp) / "pg") as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    name = f"og_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'create database "{name}"')
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    conn = await connect(url)
    await migrate(conn)
    await conn.close()
    try:
        yield url
    finally:
        await admin.execute(f'drop database "{name}" with (force)')
        await admin.close()


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("show server_version")
    finally:
        await conn.close()


async def place_orders(pool: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    """`count` empty orders of one new customer, through the append path."""
    customer = uuid.uuid4()
    await register_customer(pool, customer, "Bench", f"{customer.hex[:10]}@example.com",
                            SYSTEM.claims())
    orders = [uuid.uuid4() for _ in range(count)]
    for order_id in orders:
        await append_event(pool, NewEvent(order_id, EventType.ORDER_PLACED, {
            "customerId": str(customer), "currency": "EUR", "items": []}), SYSTEM.claims())
    return orders


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
