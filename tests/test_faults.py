"""Faults an operator meets, end to end and bounded in time (pytest -m fault): the server
killed under writers, the database cut off under writers and subscribers, rebuilds under
writers, an import killed half-way. Each checks outcomes: what was acknowledged is in the
log exactly once, the read model equals a rebuild, subscribers miss nothing."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gql.seed import seed
from gql.store.connection import create_pool
from gql.store.projections import rebuild_projections
from tests.conftest import serving
from tests.factories import customer, settled_end
from tests.outages import cut_off
from tests.processes import free_port, serve_process
from tests.test_cli import ROOT, run
from tests.test_subscriptions import log_after
from tests.test_transfer import LOG, READ_MODEL
from tests.writers import Outcomes, write
from tests.ws import ORDER_EVENTS, client, eventually

pytestmark = pytest.mark.fault
WRITERS = 8


async def _exactly_once(db: asyncpg.Pool, outcomes: Outcomes) -> None:
    """Every acknowledged event is in the log exactly once, and nothing else was appended."""
    assert outcomes.acknowledged, "nothing was acknowledged"
    counts = await db.fetch("select event_id, count(*) from order_events where event_id = any($1) "
                            "group by event_id", outcomes.acknowledged)
    assert len(counts) == len(set(outcomes.acknowledged)) == len(outcomes.acknowledged)
    assert all(row["count"] == 1 for row in counts)


async def _read_model_is_a_rebuild(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert (await rebuild_projections(conn)).changed_rows == 0


async def test_server_killed_under_writers_loses_and_repeats_nothing(
        database_url: str, pool: asyncpg.Pool) -> None:
    customer_id = await customer(pool)
    port, stop, outcomes = free_port(), asyncio.Event(), Outcomes()
    base = f"http://127.0.0.1:{port}"
    async with serve_process(database_url, port) as first:
        writers = [asyncio.create_task(write(base, customer_id, stop, outcomes))
                   for _ in range(WRITERS)]
        await eventually(lambda: _at_least(outcomes, 150), within=30)
        first.send_signal(signal.SIGKILL)  # mid-flight: some appends committed, unanswered
        await asyncio.wait_for(first.wait(), 10)
    killed_at = len(outcomes.acknowledged)
    async with serve_process(database_url, port):  # writers re-send what got no answer
        await eventually(lambda: _at_least(outcomes, killed_at + 150), within=30)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    assert outcomes.statuses["no answer"] > 0  # the kill did cut requests off
    assert "INTERNAL_SERVER_ERROR" not in outcomes.codes
    await _exactly_once(pool, outcomes)
    appended = await pool.fetchval("select count(*) from order_events where actor_id = 'open'")
    assert appended == len(outcomes.acknowledged)  # nothing appended that was not acknowledged
    await _read_model_is_a_rebuild(pool)


async def _at_least(outcomes: Outcomes, count: int) -> bool:
    return len(outcomes.acknowledged) >= count


async def _subscriber(ws_url: str, after: str, into: list[str], ready: asyncio.Event) -> None:
    async with client(ws_url) as ws:
        await ws.subscribe(ORDER_EVENTS, after=after)
        ready.set()
        while True:
            into.append((await ws.data(within=60))["orderEvents"]["id"])


async def test_database_cut_off_under_writers_and_subscribers(
        database_url: str, pool: asyncpg.Pool, server_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    customer_id = await customer(pool)
    start = (await settled_end(pool)).encode()
    stop, outcomes = asyncio.Event(), Outcomes()
    received: list[list[str]] = [[], []]
    async with serving(database_url) as server:
        ready = [asyncio.Event(), asyncio.Event()]
        subscribers = [asyncio.create_task(_subscriber(server.ws_url, start, into, r))
                       for into, r in zip(received, ready, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 15)
        writers = [asyncio.create_task(write(server.url, customer_id, stop, outcomes, pause=0.01))
                   for _ in range(WRITERS)]
        await eventually(lambda: _at_least(outcomes, 50), within=30)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            async with cut_off(server_url, database_url):
                await asyncio.sleep(8)
            before = len(outcomes.acknowledged)
            await eventually(lambda: _at_least(outcomes, before + 100), within=30)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 30)
        expected = await log_after(pool, start)
        for into in received:
            await eventually(lambda into=into: _has(into, len(expected)), within=30)
        await asyncio.sleep(0.3)  # a duplicate arriving late would show here
        for task in subscribers:
            task.cancel()
        await asyncio.gather(*subscribers, return_exceptions=True)
    assert outcomes.statuses[503] > 0  # the outage was answered, not hung
    assert "INTERNAL_SERVER_ERROR" not in outcomes.codes
    assert set(outcomes.codes) <= {"SERVICE_UNAVAILABLE"}
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    assert caplog.text.count("the database is unavailable") == 1
    assert caplog.text.count("the database is available again") == 1
    await _exactly_once(pool, outcomes)
    for into in received:
        assert into == expected  # every event once, in log order, across the outage
    await _read_model_is_a_rebuild(pool)


async def _has(items: list[Any], count: int) -> bool:
    return len(items) >= count


async def test_rebuild_three_times_under_writers(database_url: str, pool: asyncpg.Pool) -> None:
    await seed(pool, orders=600, customers=60, seed=5)
    customer_id = await customer(pool)
    stop, outcomes = asyncio.Event(), Outcomes()
    async with serving(database_url) as server:
        writers = [asyncio.create_task(write(server.url, customer_id, stop, outcomes))
                   for _ in range(WRITERS)]
        await eventually(lambda: _at_least(outcomes, 50), within=30)
        rebuilds = []
        for _ in range(3):
            rebuilds.append(await asyncio.to_thread(
                run, "rebuild-projections", "--database-url", database_url))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    for rebuilt in rebuilds:
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "rebuilt " in rebuilt.stdout and "Traceback" not in rebuilt.stderr
    assert set(outcomes.statuses) == {200}, outcomes.statuses
    assert not outcomes.codes, outcomes.codes
    await _exactly_once(pool, outcomes)
    await _read_model_is_a_rebuild(pool)


async def test_import_killed_midway_then_run_again_gives_the_file(
        database_url: str, second_database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    await seed(pool, orders=600, customers=60, seed=9)
    await settled_end(pool)
    exported = run("export", "--database-url", database_url, "--output", str(tmp_path / "log.ndjson"))
    assert exported.returncode == 0, exported.stderr
    importing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gql", "import", str(tmp_path / "log.ndjson"), "--batch-size", "50",
        "--database-url", second_database_url,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    target = await create_pool(second_database_url, min_size=1, max_size=1)
    try:
        total = await pool.fetchval("select count(*) from order_events")
        await eventually(lambda: _imported_at_least(target, 200), within=60)
        importing.send_signal(signal.SIGKILL)
        await asyncio.wait_for(importing.wait(), 10)
        partial = await target.fetchval("select count(*) from order_events")
        assert 0 < partial < total  # killed half-way: whole batches in, the rest not
        again = await asyncio.to_thread(
            run, "import", str(tmp_path / "log.ndjson"), "--database-url", second_database_url)
        assert again.returncode == 0, again.stderr
        assert f"appended {total - partial}, deduplicated {partial}, refused 0" in again.stdout
        assert await target.fetchval(LOG) == await pool.fetchval(LOG)
        assert await target.fetchval(READ_MODEL) == await pool.fetchval(READ_MODEL)
    finally:
        if importing.returncode is None:
            importing.kill()
        await target.close()


async def _imported_at_least(db: asyncpg.Pool, count: int) -> bool:
    return await db.fetchval("select count(*) from order_events") >= count
