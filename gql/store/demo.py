"""What the demo shop (gql/demo.py) asks of the database: who buys, and who runs the shop."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

DEMO_LOCK = 7318462021  # held by the one process of a server that runs the demo shop
TRY_LOCK = "select pg_try_advisory_lock($1)"
UNLOCK = "select pg_advisory_unlock($1)"
CUSTOMERS = "select customer_id from customers order by registered_at, customer_id limit 500"


@contextlib.asynccontextmanager
async def try_hold(pool: asyncpg.Pool, key: int) -> AsyncIterator[bool]:
    """Whether this process got the lock `key`; it keeps a connection (and so the lock) until
    the block ends."""
    async with pool.acquire() as conn:
        held = await conn.fetchval(TRY_LOCK, key)
        try:
            yield held
        finally:
            if held:
                await conn.fetchval(UNLOCK, key)


async def demo_customers(pool: asyncpg.Pool) -> list[uuid.UUID]:
    return [row[0] for row in await pool.fetch(CUSTOMERS)]
