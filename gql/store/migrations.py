"""Versioned upgrades: schema.sql for a new database, numbered files for an existing one.

An empty database gets schema.sql (the whole current schema) and every file of
gql/migrations recorded as applied. A database made by an earlier release gets the files it
has not applied yet, in order, each in its own transaction, recorded in `og_migrations`. A
database from the first release (0.1) has no such table: all files are pending for it.
Adding a migration is one new file, `NNNN_name.sql`, with the same change made in schema.sql.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from gql.errors import ConfigurationError
from gql.store.connection import schema_sql

# The same key schema.sql takes, so every path that changes the schema queues on one lock.
LOCK_KEY = 7318462019
LOCK = "select pg_advisory_lock($1)"
UNLOCK = "select pg_advisory_unlock($1)"
IS_EMPTY = "select to_regclass('order_events') is null"
# whether this login may change the schema: a superuser, or a member of the owner role (the
# first migration, before the roles exist, needs a superuser or CREATEROLE)
MAY_MIGRATE = """select r.rolsuper or r.rolcreaterole or exists (
    select from pg_roles o where o.rolname = 'ordergraph_owner' and pg_has_role(r.oid, o.oid, 'member'))
    from pg_roles r where r.rolname = current_user"""
HAS_TABLE = "select to_regclass('og_migrations') is not null"
APPLIED = "select version, name from og_migrations order by version"
RECORD = "insert into og_migrations (version, name) values ($1, $2)"

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Migrated:
    created: bool  # the database was empty and got schema.sql
    applied: list[Migration]
    current: int  # the version it is at now


class DatabaseBehind(ConfigurationError):
    """The database needs `ordergraph migrate` before this release can use it."""


def _directory() -> Path:
    source = Path(__file__).resolve().parents[1] / "migrations"
    if source.is_dir():
        return source
    return Path(str(importlib.resources.files("gql").joinpath("migrations")))


def available() -> list[Migration]:
    """Every migration this release ships, in version order."""
    found = []
    for path in sorted(_directory().glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ConfigurationError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ConfigurationError(f"migrations must be numbered 1, 2, 3 … without gaps: {versions}")
    return found


async def _applied(conn: asyncpg.Connection) -> dict[int, str]:
    if not await conn.fetchval(HAS_TABLE):
        return {}  # a database of release 0.1: before the first numbered step
    return {row["version"]: row["name"] for row in await conn.fetch(APPLIED)}


async def pending(conn: asyncpg.Connection) -> list[Migration] | None:
    """What `migrate` would apply; None for an empty database (it would get schema.sql)."""
    if await conn.fetchval(IS_EMPTY):
        return None
    applied = await _applied(conn)
    known = available()
    unknown = sorted(set(applied) - {m.version for m in known})
    if unknown:
        raise ConfigurationError(
            f"the database has migration {unknown[-1]:04d}, newer than this ordergraph knows "
            f"(up to {len(known):04d}): upgrade ordergraph")
    return [m for m in known if m.version not in applied]


async def migrate(conn: asyncpg.Connection) -> Migrated:
    """Bring the database to this release's schema; safe when several processes race."""
    await conn.execute(LOCK, LOCK_KEY)
    try:
        todo = await pending(conn)
        known = available()
        if todo is None:
            async with conn.transaction():
                await conn.execute(schema_sql())
                for m in known:
                    await conn.execute(RECORD, m.version, m.name)
            return Migrated(created=True, applied=[], current=len(known))
        for m in todo:
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(RECORD, m.version, m.name)
        return Migrated(created=False, applied=todo, current=len(known))
    finally:
        await conn.execute(UNLOCK, LOCK_KEY)


async def require_current(conn: asyncpg.Connection) -> None:
    """Refuse a database that is behind this release (an empty one is fine: serve creates it)."""
    todo = await pending(conn)
    if todo:
        raise DatabaseBehind(
            f"the database is behind this ordergraph ({len(todo)} migration(s) pending, "
            f"first {todo[0].label}): run `ordergraph migrate`")


async def prepare(conn: asyncpg.Connection, *, upgrade: bool) -> None:
    """Before serving: create an empty database, upgrade one that is behind when `upgrade`,
    else refuse it. A login that may not change the schema (the server's own role) only
    checks that it is current."""
    if not await conn.fetchval(MAY_MIGRATE):
        if await conn.fetchval(IS_EMPTY):
            raise DatabaseBehind("the database has no ordergraph schema: run "
                                 "`ordergraph migrate` as its owner first")
        await require_current(conn)
    elif upgrade or await conn.fetchval(IS_EMPTY):
        await migrate(conn)
    else:
        await require_current(conn)
