"""Versioned upgrades: a database of the previous release, full of events, migrated, is a fresh one."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import asyncpg
import pytest

from gql.events import Position
from gql.store.connection import connect
from gql.store.migrations import DatabaseBehind, available, migrate, pending, prepare
from gql.store.projections import rebuild_projections
from gql.transfer import export_to, import_lines
from tests.catalog import catalog, differences
from tests.test_cli import _one_clean_line, run

FIXTURES = Path(__file__).parent / "fixtures"
RELEASE_0_1 = FIXTURES / "schema-0.1.sql"
# what release 0.1's seed wrote (its append function differs from today's)
RELEASE_0_1_EVENTS = FIXTURES / "release-0.1-events.sql"
# what every event says, without the status the log derives from it (0003 added that column)
STATUSES = "select event_id, status from order_events order by event_id"
# the stored status of each stream's last event is the read model's status
LAST_STATUS_DIFFERS = """
select count(*) from orders_current o join order_events e
  on e.order_id = o.order_id and e.stream_version = o.version
where e.status is distinct from o.status
"""
# (less the columns later steps added: the status each event leads to, and its traceparent)
LOG_CHECKSUM = """select md5(string_agg((to_jsonb(e) - 'status' - 'trace_parent')::text, ','
                                   order by e.global_position))
                  from order_events e"""
# A cancellation as release 0.1 wrote it: schema_version 1, no reasonCode.
OLD_CANCEL = """
insert into order_events (event_id, order_id, event_type, payload)
select $1, order_id, 'OrderCancelled', '{"reason": "out of stock"}' from orders_current
where status = 'PLACED' order by order_id limit 1
"""


async def _release_0_1(url: str) -> None:
    """The previous release's schema with the events its users have, written by it."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(RELEASE_0_1.read_text())
        await conn.execute(RELEASE_0_1_EVENTS.read_text())
        await conn.execute(OLD_CANCEL, uuid.uuid4())
    finally:
        await conn.close()


async def test_migrations_turn_release_0_1_into_the_fresh_schema(
        empty_database_url: str, database_url: str) -> None:
    await _release_0_1(empty_database_url)
    conn = await connect(empty_database_url)
    fresh = await connect(database_url)
    try:
        log = await conn.fetchval(LOG_CHECKSUM)
        assert await pending(conn) == available()  # release 0.1 has no migrations table
        assert differences(await catalog(conn), await catalog(fresh)) != []
        result = await migrate(conn)
        assert not result.created and result.applied == available()
        assert differences(await catalog(conn), await catalog(fresh)) == []
        assert await conn.fetchval(LOG_CHECKSUM) == log
        rebuilt = await rebuild_projections(conn)
        assert rebuilt.changed_rows == 0 and rebuilt.events > 150
        assert await pending(conn) == []
    finally:
        await conn.close()
        await fresh.close()


async def test_migrations_backfill_stores_the_status_a_fresh_append_stores(
        empty_database_url: str, database_url: str) -> None:
    """0003 folds the existing log; the same events appended anew get the same statuses."""
    await _release_0_1(empty_database_url)
    conn = await connect(empty_database_url)
    fresh = await connect(database_url)
    try:
        await migrate(conn)
        log = io.BytesIO()
        await export_to(conn, log, after=Position(0, 0))
        imported = await import_lines(fresh, log.getvalue().splitlines())
        assert imported.refused == [] and imported.appended > 150
        backfilled = await conn.fetch(STATUSES)
        assert [tuple(r) for r in backfilled] == [tuple(r) for r in await fresh.fetch(STATUSES)]
        assert len({r["status"] for r in backfilled}) >= 4
        assert await conn.fetchval(LAST_STATUS_DIFFERS) == 0
    finally:
        await conn.close()
        await fresh.close()


async def test_migrations_fresh_database_is_marked_fully_migrated(empty_database_url: str) -> None:
    conn = await connect(empty_database_url)
    try:
        result = await migrate(conn)
        assert result.created and result.current == len(available())
        assert await pending(conn) == []
        again = await migrate(conn)
        assert not again.created and again.applied == []
    finally:
        await conn.close()


async def test_migrations_racing_workers_apply_each_step_once(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    await conn.execute(RELEASE_0_1.read_text())
    await conn.close()
    workers = [await connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(w) for w in workers))
        assert sorted(len(r.applied) for r in results) == [0, 0, len(available())]
        rows = await workers[0].fetch("select version from og_migrations order by 1")
        assert [r[0] for r in rows] == [m.version for m in available()]
    finally:
        for w in workers:
            await w.close()


async def test_migrations_serve_refuses_a_database_that_is_behind(empty_database_url: str) -> None:
    await _release_0_1(empty_database_url)
    conn = await connect(empty_database_url)
    try:
        with pytest.raises(DatabaseBehind, match="run `ordergraph migrate`"):
            await prepare(conn, upgrade=False)
        assert await pending(conn) == available()  # refused, and nothing changed
    finally:
        await conn.close()
    refused = run("serve", "--database-url", empty_database_url, "--port", "0")
    assert refused.returncode == 1
    assert "ordergraph migrate" in _one_clean_line(refused.stderr)
    migrated = run("migrate", "--database-url", empty_database_url)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied 0001_event_versions" in migrated.stdout
    assert "already up to date" in run("migrate", "--database-url", empty_database_url).stdout


async def test_migrations_embedded_default_upgrades_itself(empty_database_url: str) -> None:
    """What `serve` does on its own embedded database: migrate instead of refusing."""
    await _release_0_1(empty_database_url)
    conn = await connect(empty_database_url)
    try:
        await prepare(conn, upgrade=True)
        assert await pending(conn) == []
    finally:
        await conn.close()


async def test_migrations_refuse_a_database_from_a_newer_release(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("insert into og_migrations (version, name) values (9999, 'future')")
        with pytest.raises(Exception, match="newer than this ordergraph knows"):
            await pending(conn)
    finally:
        await conn.close()
