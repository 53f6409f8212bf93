"""Connections: pools with the codecs ordergraph needs, and the text of schema.sql."""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg
import orjson

from gql.errors import ConfigurationError, DatabaseUnavailable
from gql.store import outage
from gql.store.tracing import trace_statements

SCHEMA_SQL = "schema.sql"
APP_ROLE = "ordergraph_app"  # the role schema.sql creates for the server (owns nothing)
log = logging.getLogger("ordergraph")
IS_SUPERUSER = "select rolsuper from pg_roles where rolname = current_user"


def schema_sql() -> str:
    """The schema, from the checkout when running from source, else from the package."""
    source = Path(__file__).resolve().parents[2] / SCHEMA_SQL
    if source.is_file():
        return source.read_text()
    return importlib.resources.files("gql").joinpath(SCHEMA_SQL).read_text()


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    trace_statements(conn)  # nothing unless tracing is on
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_dumps, decoder=orjson.loads, format="text"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (a round trip per statement): ordergraph never
    leaves session state behind; open transactions are still rolled back by the pool."""


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    command_timeout: float | None = 60,
    statement_timeout: float | None = None,
    generic_plans: bool = False,
) -> asyncpg.Pool:
    """A pool; `command_timeout` None for bulk work (rebuild, export, import) whose statements
    run as long as the log is big; with `statement_timeout` (seconds) PostgreSQL cancels
    longer statements. `generic_plans` plans each prepared statement once per connection: the
    server's statements read through schema.sql's page functions, written so that a generic
    plan walks the same index a custom one would, and planning a compiled document's
    statement anew costs more than running it."""
    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if on_connect is not None:
            await on_connect(conn)

    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=init, reset=_keep_session,
            connect=outage.connect,
            command_timeout=command_timeout, server_settings={"timezone": "UTC", **(
                {"statement_timeout": f"{int(statement_timeout * 1000)}"} if statement_timeout else {}),
                **({"plan_cache_mode": "force_generic_plan"} if generic_plans else {})},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {describe(exc)}") from exc
    assert pool is not None
    return pool


async def warn_if_superuser(pool: asyncpg.Pool) -> None:
    """One warning line when the server runs as a superuser: it could switch off the log's
    guards; the role `ordergraph migrate` creates for it (ordergraph_app) cannot."""
    if await pool.fetchval(IS_SUPERUSER):
        log.warning("the server connects to PostgreSQL as a superuser; connect as %s instead "
                    "(created by `ordergraph migrate`)", APP_ROLE)


def target(url: str) -> tuple[str, str]:
    """The (database, host) a PostgreSQL URL names; ConfigurationError when it names no
    database, which libpq would quietly take to be the user's name."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"the database URL must start with postgresql://, not {url!r}")
    query = parse_qs(parts.query)
    database = unquote(parts.path.lstrip("/")) or next(
        (query[key][0] for key in ("dbname", "database") if query.get(key)), "")
    if not database:
        raise ConfigurationError(
            f"the database URL {url!r} names no database: add one, as in postgresql://host/name")
    host = parts.netloc.rpartition("@")[2] or (query.get("host") or ["the local socket"])[0]
    return database, host


def describe_target(url: str) -> str:
    """`database "name" on host:port`, for messages that say where something happened."""
    database, host = target(url)
    return f'database "{database}" on {host}'


def as_role(url: str, role: str) -> str:
    """The same server and database, logging in as `role` (for trust or peer setups)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def connect(url: str) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {describe(exc)}") from exc
    await init_connection(conn)
    return conn


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` on the server at `admin_url` unless it exists."""
    conn = await connect(admin_url)
    try:
        if not await conn.fetchval("select 1 from pg_database where datname = $1", name):
            await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text
