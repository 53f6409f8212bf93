"""Read models are a fold of the log: rebuilding them from the events changes nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from gql.events import EventType, OrderStatus
from gql.seed import seed
from gql.store.projections import rebuild_projections
from tests.factories import append, order_in, payload_for


async def _read_model(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch("select * from orders_current order by order_id")
    return [tuple(row.values()) for row in rows]


async def test_rebuild_after_seeding_2000_orders_equals_live_read_model(pool: asyncpg.Pool) -> None:
    result = await seed(pool, orders=2000, customers=300, seed=3)
    before = await _read_model(pool)
    assert len(before) == 2000
    reported: list[tuple[int, int]] = []
    async with pool.acquire() as conn:  # in ranges of ~1,000 events, reporting each
        rebuilt = await rebuild_projections(conn, progress=lambda *p: reported.append(p),
                                            events_per_range=1000)
    assert (rebuilt.orders, rebuilt.events, rebuilt.changed_rows) == (2000, result.events, 0)
    assert await _read_model(pool) == before
    done = [d for d, _ in reported]
    assert len(reported) > 5 and done == sorted(done) and reported[-1] == (result.events,) * 2


async def test_rebuild_repairs_a_tampered_read_model(pool: asyncpg.Pool) -> None:
    await seed(pool, orders=30, seed=4)
    before = await _read_model(pool)
    # three rows that really change, none of them the one deleted below
    await pool.execute("update orders_current set status = 'CANCELLED', total_amount = 0 "
                       "where order_id in (select order_id from orders_current "
                       "where status <> 'CANCELLED' order by order_id limit 3)")
    await pool.execute("delete from orders_current where order_id = "
                       "(select order_id from orders_current order by order_id desc limit 1)")
    async with pool.acquire() as conn:
        rebuilt = await rebuild_projections(conn)
    assert rebuilt.changed_rows >= 4
    assert await _read_model(pool) == before


async def test_seed_is_deterministic(pool: asyncpg.Pool, database_url: str) -> None:
    await seed(pool, orders=40, seed=11)
    first = await pool.fetch(
        "select event_id, order_id, stream_version, event_type, occurred_at, payload "
        "from order_events order by order_id, stream_version")
    types = {row["event_type"] for row in first}
    # every declared type but CustomerForgotten: the seed forgets no one
    assert types == {t.value for t in EventType} - {EventType.CUSTOMER_FORGOTTEN.value}
    late = await pool.fetchval(
        "select count(*) from order_events e join order_events p on p.order_id = e.order_id "
        "and p.stream_version = e.stream_version - 1 where e.occurred_at < p.occurred_at")
    assert late > 0
    await pool.execute("alter table order_events disable trigger order_events_no_truncate")
    await pool.execute("truncate order_events, orders_current, customers cascade")
    await pool.execute("alter table order_events enable trigger order_events_no_truncate")
    await seed(pool, orders=40, seed=11)
    again = await pool.fetch(
        "select event_id, order_id, stream_version, event_type, occurred_at, payload "
        "from order_events order by order_id, stream_version")
    assert [tuple(r.values()) for r in again] == [tuple(r.values()) for r in first]


async def _write_items(pool: asyncpg.Pool, orders: list[object], stop: asyncio.Event,
                       acknowledged: list[object], failures: list[BaseException]) -> None:
    """Add items to `orders` in turn until `stop`; every event id the store confirmed is kept."""
    while not stop.is_set():
        for order_id in orders:
            event_id = uuid.uuid4()
            try:
                await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                             payload_for(EventType.ITEM_ADDED_TO_ORDER), event_id=event_id)
            except Exception as exc:
                failures.append(exc)
            else:
                acknowledged.append(event_id)


async def test_rebuild_beside_eight_writers_neither_deadlocks_nor_loses_an_append(
        pool: asyncpg.Pool) -> None:
    orders = [await order_in(pool, OrderStatus.PLACED) for _ in range(64)]
    stop, acknowledged, failures = asyncio.Event(), [], []
    writers = [asyncio.create_task(_write_items(pool, orders[i::8], stop, acknowledged, failures))
               for i in range(8)]
    try:
        for _ in range(4):
            async with asyncio.timeout(30):  # each rebuild with appends in flight
                seen = len(acknowledged)
                while len(acknowledged) < seen + 20:  # noqa: ASYNC110 (waits for the writers)
                    await asyncio.sleep(0.01)
            async with pool.acquire() as conn:
                await rebuild_projections(conn)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert failures == []
    assert len(acknowledged) >= 80
    logged = await pool.fetchval("select count(*) from order_events where event_id = any($1)",
                                 acknowledged)
    assert logged == len(acknowledged)
    before = await _read_model(pool)
    async with pool.acquire() as conn:
        assert (await rebuild_projections(conn)).changed_rows == 0
    assert await _read_model(pool) == before


async def test_append_chosen_as_a_deadlock_victim_is_sent_again(pool: asyncpg.Pool,
                                                                 database_url: str) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("set deadlock_timeout = '20s'")  # the append's session detects it
        tx = other.transaction()
        await tx.start()
        await other.execute("select from orders_current where order_id = $1 for update", order_id)
        event_id = uuid.uuid4()
        appending = asyncio.create_task(append(
            pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
            payload_for(EventType.ITEM_ADDED_TO_ORDER), event_id=event_id))
        await asyncio.sleep(0.3)  # the append waits for the row; now wait for the append
        locking = asyncio.create_task(other.execute("lock table orders_current in exclusive mode"))
        await asyncio.sleep(1.5)  # past the append session's deadlock_timeout (1 s)
        await locking
        await tx.commit()
        appended = await asyncio.wait_for(appending, 10)
    finally:
        await other.close()
    assert appended.deduplicated is False
    assert await pool.fetchval("select count(*) from order_events where event_id = $1",
                               event_id) == 1
