"""Upgrades: numbered steps for tables and data, then the schema's definitions, every time.

`migrate` applies, in one transaction: the numbered files of gql/migrations the database has
not applied yet (none for an empty database; all of them for one of release 0.1, which has no
`og_migrations` table), recorded there; then the schema itself — schema.sql with the SQL that
gql/store/rules.py generates from the declarations (gql/catalogue.py) — after dropping every
ordergraph function, so that functions, triggers and reference rows are always exactly this
release's (as Flyway's repeatable migrations are). Its digest is recorded in `og_schema`; a
database whose digest differs is behind. When the fold itself changed (og_evolve, og_upcast
or the item functions), the read model is folded again from the log.

A change to a rule is a change of schema.sql or of a declaration; a numbered file is needed
only to change an existing table or its data.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from gql.catalogue import CATALOGUE
from gql.declaration import Catalogue
from gql.errors import ConfigurationError
from gql.store.connection import schema_sql
from gql.store.customers import seal_plain
from gql.store.rules import generate, generate_reads

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
DIGEST = "select digest from og_schema"
HAS_DIGEST = "select to_regclass('og_schema') is not null"
RECORD_DIGEST = "delete from og_schema; insert into og_schema (digest) values ('{digest}')"
# Every ordergraph routine (functions and the fold's aggregate), dropped before the schema's
# definitions are applied again: none is left behind when one is renamed or retired.
ROUTINES = """
select format('drop routine if exists %s cascade', p.oid::regprocedure) from pg_proc p
where p.pronamespace = current_schema()::regnamespace and p.proname like 'og\\_%'
order by p.prokind desc
"""
# The definitions the fold depends on: when they change, the read model is folded again.
FOLD_DIGEST = """
select md5(coalesce(string_agg(pg_get_functiondef(p.oid), '' order by p.oid::regprocedure::text), ''))
from pg_proc p
where p.pronamespace = current_schema()::regnamespace and p.prokind = 'f'
  and (p.proname in ('og_evolve', 'og_upcast', 'og_minor_units') or p.proname like 'og\\_items\\_%')
"""
REFOLD = """
lock table orders_current in exclusive mode;
create temp table og_refolded on commit drop as
    select (og_fold(e order by e.stream_version)).* from order_events e group by e.order_id;
delete from orders_current;
insert into orders_current select * from og_refolded;
"""
HAS_TALLIES = "select to_regclass('order_tallies') is not null"
RECOUNT = "select og_recount_tallies()"
COUNT_ORDERS = "select count(*) from orders_current"
# where schema.sql takes the declarations' SQL: their tables and rules, then their reads
MARKER = "-- @catalogue\n"
READS_MARKER = "-- @catalogue reads\n"

# Steps that need Python after their SQL (the sealing of personal data): run in the same
# transaction, before the next numbered step.
AFTER: dict[int, Callable[[asyncpg.Connection], Awaitable[None]]] = {8: seal_plain}

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
    redefined: bool = False  # the schema's definitions changed (functions, rules, rows)
    refolded: int | None = None  # orders folded again because the fold changed


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


def schema(catalogue: Catalogue = CATALOGUE) -> str:
    """The whole schema: schema.sql with the declarations' SQL where its marker stands."""
    head, marker, tail = schema_sql().partition(MARKER)
    middle, reads_marker, tail = tail.partition(READS_MARKER)
    if not (marker and reads_marker):
        raise ConfigurationError("schema.sql lacks a `-- @catalogue` or `-- @catalogue reads` line")
    return head + generate(catalogue) + middle + generate_reads(catalogue) + tail


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def _digest(conn: asyncpg.Connection) -> str | None:
    return await conn.fetchval(DIGEST) if await conn.fetchval(HAS_DIGEST) else None


async def migrate(conn: asyncpg.Connection, catalogue: Catalogue = CATALOGUE) -> Migrated:
    """Bring the database to this release's schema; safe when several processes race."""
    await conn.execute(LOCK, LOCK_KEY)
    try:
        todo = await pending(conn)
        known = available()
        text = schema(catalogue)
        wanted = digest(text)
        if todo == [] and await _digest(conn) == wanted:
            return Migrated(created=False, applied=[], current=len(known))
        async with conn.transaction():
            fold = None if todo is None else await conn.fetchval(FOLD_DIGEST)
            tallied = todo is None or await conn.fetchval(HAS_TALLIES)
            for m in todo or []:
                await conn.execute(m.sql)
                if m.version in AFTER:
                    await AFTER[m.version](conn)
                await conn.execute(RECORD, m.version, m.name)
            for (drop,) in await conn.fetch(ROUTINES):
                await conn.execute(drop)
            await conn.execute(text)
            if todo is None:
                for m in known:
                    await conn.execute(RECORD, m.version, m.name)
            await conn.execute(RECORD_DIGEST.format(digest=wanted))
            refolded = None
            if fold is not None and fold != await conn.fetchval(FOLD_DIGEST):
                await conn.execute(REFOLD)
                refolded = await conn.fetchval(COUNT_ORDERS)
            if refolded is not None or not tallied:
                await conn.execute(RECOUNT)
        return Migrated(created=todo is None, applied=todo or [], current=len(known),
                        redefined=True, refolded=refolded)
    finally:
        await conn.execute(UNLOCK, LOCK_KEY)


async def require_current(conn: asyncpg.Connection, catalogue: Catalogue = CATALOGUE) -> None:
    """Refuse a database that is behind this release (an empty one is fine: serve creates it)."""
    todo = await pending(conn)
    if todo:
        raise DatabaseBehind(
            f"the database is behind this ordergraph ({len(todo)} migration(s) pending, "
            f"first {todo[0].label}): run `ordergraph migrate`")
    if todo is not None and await _digest(conn) != digest(schema(catalogue)):
        raise DatabaseBehind("the database's functions and rules are not this ordergraph's: "
                             "run `ordergraph migrate`")


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
