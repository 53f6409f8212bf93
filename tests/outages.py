"""Cutting one database off without stopping the shared server: no new connections, and the
open ones terminated (what a failover or a network partition looks like to ordergraph)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg

TERMINATE = """select count(pg_terminate_backend(pid)) from pg_stat_activity
where datname = $1 and pid <> pg_backend_pid()"""


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextlib.asynccontextmanager
async def cut_off(server_url: str, database_url: str) -> AsyncIterator[None]:
    """While the block runs, `database_url`'s database accepts no connection."""
    name = database_of(database_url)
    admin = await asyncpg.connect(server_url)  # another database of the same server
    try:
        await admin.execute(f'alter database "{name}" allow_connections false')
        await admin.fetchval(TERMINATE, name)
        try:
            yield
        finally:
            await admin.execute(f'alter database "{name}" allow_connections true')
    finally:
        await admin.close()
