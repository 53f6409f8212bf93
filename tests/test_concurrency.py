"""Concurrent writers: optimistic concurrency, contiguous versions, a gap-free global read."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest

from gql import errors
from gql.events import EventType, OrderStatus, Position
from gql.store.reads import list_events
from tests.factories import append, customer, order_in, payload_for

ITEM = {"sku": "SKU-9", "quantity": 1, "unitPrice": "1.00"}


async def test_same_expected_version_lets_exactly_one_writer_win(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    results = await asyncio.gather(
        *(append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM, expected_version=1)
          for _ in range(50)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, errors.WrongExpectedVersion) for r in lost), lost[:3]
    assert all(r.extensions["currentVersion"] == 2 for r in lost)  # type: ignore[union-attr]
    assert await pool.fetchval("select version from orders_current where order_id = $1",
                               order_id) == 2


async def test_concurrent_appends_get_contiguous_versions(pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    await asyncio.gather(*(append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
                           for _ in range(49)))
    versions = await pool.fetch(
        "select stream_version from order_events where order_id = $1 order by stream_version",
        order_id)
    assert [r["stream_version"] for r in versions] == list(range(1, 51))
    row = await pool.fetchrow("select version, items from orders_current where order_id = $1",
                              order_id)
    assert row["version"] == 50
    assert {i["sku"]: i["quantity"] for i in row["items"]}["SKU-9"] == 49


async def test_concurrent_placements_of_one_new_order_create_it_once(pool: asyncpg.Pool) -> None:
    customer_id = await customer(pool)
    order_id = uuid.uuid4()
    data = payload_for(EventType.ORDER_PLACED, customer_id)
    results = await asyncio.gather(
        *(append(pool, order_id, EventType.ORDER_PLACED, data) for _ in range(10)),
        return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, errors.OrderAlreadyExists)
               for r in results if isinstance(r, BaseException))


async def test_concurrent_retries_of_one_event_are_deduplicated(pool: asyncpg.Pool) -> None:
    customer_id = await customer(pool)
    order_id, event_id = uuid.uuid4(), uuid.uuid4()
    data = payload_for(EventType.ORDER_PLACED, customer_id)
    results = await asyncio.gather(*(append(pool, order_id, EventType.ORDER_PLACED, data,
                                            event_id=event_id) for _ in range(10)))
    assert sorted(r.deduplicated for r in results) == [False] + [True] * 9
    assert await pool.fetchval("select count(*) from order_events") == 1


async def _writer(pool: asyncpg.Pool, customer_id: uuid.UUID, rng: random.Random,
                  events: int) -> None:
    """Appends in explicit transactions held open a random while, so commits reorder."""
    order_id = uuid.uuid4()
    for n in range(events):
        event_type = EventType.ORDER_PLACED if n == 0 else EventType.ITEM_ADDED_TO_ORDER
        data = payload_for(event_type, customer_id) if n == 0 else ITEM
        async with pool.acquire() as conn, conn.transaction():
            await append(conn, order_id, event_type, data)
            await asyncio.sleep(rng.random() * 0.01)


async def test_reader_following_the_log_sees_every_event_once_in_order(
    pool: asyncpg.Pool,
) -> None:
    customer_id = await customer(pool)
    rng = random.Random(42)
    writers = asyncio.gather(*(_writer(pool, customer_id, rng, 40) for _ in range(8)))
    seen: list[asyncpg.Record] = []
    cursor: Position | None = None

    async def follow() -> None:
        nonlocal cursor
        rows = await list_events(pool, limit=100, after=cursor, viewer=None)
        seen.extend(rows)
        if rows:
            cursor = Position(rows[-1]["log_xid"], rows[-1]["global_position"])

    while not writers.done():
        await follow()
        await asyncio.sleep(0.002)
    await writers
    for _ in range(5):  # drain what committed last
        await follow()
    table = await pool.fetch("select event_id from order_events order by log_xid, global_position")
    assert [r["event_id"] for r in seen] == [r["event_id"] for r in table]
    assert len(seen) == 8 * 40
    by_order: dict[uuid.UUID, list[int]] = {}
    for row in seen:
        by_order.setdefault(row["order_id"], []).append(row["stream_version"])
    assert all(v == list(range(1, 41)) for v in by_order.values())


@pytest.mark.parametrize("writers", [8])
async def test_commits_out_of_order_do_not_reorder_a_stream(pool: asyncpg.Pool, writers: int) -> None:
    """Writers that take a transaction id before waiting on a stream keep version order."""
    order_id = await order_in(pool, OrderStatus.PLACED)

    async def add_after_taking_an_xid() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_current_xact_id()")
            await append(conn, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
            await asyncio.sleep(0.005)

    await asyncio.gather(*(add_after_taking_an_xid() for _ in range(writers)))
    rows = await pool.fetch(
        "select stream_version from order_events where order_id = $1 order by log_xid, global_position",
        order_id)
    assert [r["stream_version"] for r in rows] == list(range(1, writers + 2))
