"""The read lane: reads on held pool connections, without starving the pool's other users."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gql.store.connection import create_pool
from gql.store.lane import ReadLane


@pytest.fixture
async def small_pool(database_url: str) -> asyncpg.Pool:
    pool = await create_pool(database_url, min_size=1, max_size=3)
    yield pool
    await pool.close()


async def test_many_concurrent_reads_share_the_pools_connections(small_pool: asyncpg.Pool) -> None:
    lane = ReadLane(small_pool, workers=3)
    results = await asyncio.gather(*(lane.fetchval("select $1::int * 2", n) for n in range(300)))
    assert results == [n * 2 for n in range(300)]
    backends = await asyncio.gather(*(lane.fetchval("select pg_backend_pid()") for _ in range(60)))
    assert 1 <= len(set(backends)) <= 3


async def test_a_failing_statement_fails_only_its_caller(small_pool: asyncpg.Pool) -> None:
    lane = ReadLane(small_pool, workers=2)
    outcomes = await asyncio.gather(
        lane.fetchval("select 1 / $1::int", 0), lane.fetchval("select 1 / $1::int", 1),
        return_exceptions=True)
    assert isinstance(outcomes[0], asyncpg.DivisionByZeroError)
    assert outcomes[1] == 1
    assert await lane.fetchval("select 'still serving'") == "still serving"


async def test_a_cancelled_reader_leaves_its_statement_to_finish(small_pool: asyncpg.Pool) -> None:
    await small_pool.execute("create sequence lane_probe")
    lane = ReadLane(small_pool, workers=1)
    # nextval runs only once the sleep is over: it shows the statement was not interrupted
    slow = asyncio.create_task(lane.fetchval("select nextval('lane_probe') from pg_sleep(0.3)"))
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await lane.fetchval("select 'next'") == "next"
    assert await small_pool.fetchval("select is_called from lane_probe") is True


async def test_the_pools_other_users_are_not_starved(small_pool: asyncpg.Pool) -> None:
    lane = ReadLane(small_pool, workers=3, batch=4)
    reads = [asyncio.create_task(lane.fetchval("select pg_sleep(0.01)::text")) for _ in range(120)]
    await asyncio.sleep(0.05)
    assert await asyncio.wait_for(small_pool.fetchval("select 'writer'"), 5) == "writer"
    assert sum(r.done() for r in reads) < len(reads)  # it got in while the lane was busy
    await asyncio.gather(*reads)


async def test_a_lost_connection_fails_its_read_and_the_lane_recovers(
    small_pool: asyncpg.Pool, database_url: str,
) -> None:
    lane = ReadLane(small_pool, workers=1)
    victim = await lane.fetchval("select pg_backend_pid()")
    slow = asyncio.create_task(lane.fetchval("select pg_sleep(5)::text"))
    await asyncio.sleep(0.1)
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("select pg_terminate_backend($1)", victim)
    finally:
        await admin.close()
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await asyncio.wait_for(slow, 5)
    assert await asyncio.wait_for(lane.fetchval("select 'recovered'"), 5) == "recovered"


async def test_reads_fail_instead_of_hanging_when_the_pool_is_closed(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    lane = ReadLane(pool, workers=2)
    assert await lane.fetchval("select 1") == 1
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await asyncio.wait_for(lane.fetchval("select 1"), 5)
