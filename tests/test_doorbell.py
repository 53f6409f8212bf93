"""The doorbell: one NOTIFY at a time, skipped rings still delivered, writers never serialised.

Every server here runs with the safety poll an hour away, so what arrives came by the
doorbell (a NOTIFY, or the listener's follow-up after one), not by the poll.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from gql.events import EventType, OrderStatus
from gql.listener import Listener
from gql.store.connection import create_pool
from tests.conftest import serving
from tests.factories import append, order_in, payload_for
from tests.test_subscriptions import _place_orders, _until_count, end_of_log, log_after
from tests.ws import ORDER_EVENTS, client, eventually, until_subscribed

DOORBELL_LOCK = 7318462022  # schema.sql's og_after_append: the transaction holding it rings
NO_POLL = {"safety_poll_interval": 3600.0}
ALONE_BOUND = 0.5  # README "Live delivery": one NOTIFY and one log read, with room for a busy CI
ITEM = payload_for(EventType.ITEM_ADDED_TO_ORDER)


async def _receive(ws_url: str, after: str | None, into: list[dict[str, Any]],
                   arrived: list[float] | None = None) -> None:
    async with client(ws_url) as ws:
        await ws.subscribe(ORDER_EVENTS, **({"after": after} if after else {}))
        while True:
            into.append((await ws.data())["orderEvents"])
            if arrived is not None:
                arrived.append(time.monotonic())


async def _notifications(database_url: str) -> tuple[asyncpg.Connection, list[str]]:
    """A connection counting the doorbell's NOTIFYs, as the listener hears them."""
    heard: list[str] = []
    conn = await asyncpg.connect(database_url)
    await conn.add_listener("ordergraph_events", lambda *args: heard.append(args[3]))
    return conn, heard


async def test_doorbell_concurrent_writers_deliver_every_event_once_in_order(
    database_url: str,
) -> None:
    """16 writers of 40 events, each in its own transaction: many commit while another rings,
    skip their NOTIFY, and are delivered all the same, exactly once and in log order."""
    pool = await create_pool(database_url, min_size=16, max_size=17)
    received: list[dict[str, Any]] = []
    listening, heard = await _notifications(database_url)
    try:
        async with serving(database_url, **NO_POLL) as server:
            orders = await _place_orders(pool, 16)
            start = await end_of_log(pool)
            reader = asyncio.create_task(_receive(server.ws_url, start, received))
            await until_subscribed(server.url, 1)

            async def writer(order_id: uuid.UUID) -> None:
                for _ in range(40):
                    await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)

            await asyncio.gather(*(writer(order_id) for order_id in orders))
            expected = await log_after(pool, start)
            assert len(expected) == 16 * 40
            await _until_count(received, len(expected))
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await listening.close()
        await pool.close()
    assert [e["id"] for e in received] == expected
    assert len(heard) <= len(expected)  # at most one NOTIFY per transaction, and all folded
    assert set(heard) == {""}


async def test_doorbell_skipped_rings_are_found_by_the_listeners_follow_up(
    database_url: str,
) -> None:
    """Writers that are still running when a ring arrives, and then commit while the doorbell's
    lock is taken (so none of them rings), reach the subscriber with no poll and no ring of
    their own: the listener rings again once they have all ended."""
    pool = await create_pool(database_url, min_size=2, max_size=4)
    received: list[dict[str, Any]] = []
    holder = await asyncpg.connect(database_url)
    writing = await create_pool(database_url, min_size=16, max_size=16)
    writers = [await writing.acquire() for _ in range(16)]
    try:
        async with serving(database_url, **NO_POLL) as server:
            orders = await _place_orders(pool, 16)
            start = await end_of_log(pool)
            reader = asyncio.create_task(_receive(server.ws_url, start, received))
            await until_subscribed(server.url, 1)
            assert await holder.fetchval("select pg_try_advisory_lock($1)", DOORBELL_LOCK)
            transactions = [conn.transaction() for conn in writers]
            for conn, tx, order_id in zip(writers, transactions, orders, strict=True):
                await tx.start()
                for _ in range(5):
                    await append(conn, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
            await pool.execute("select pg_notify('ordergraph_events', '')")  # a ring meanwhile
            await asyncio.sleep(0.3)
            assert received == []  # nothing was committed yet
            for tx in transactions:
                await tx.commit()
            expected = await log_after(pool, start)
            assert len(expected) == 16 * 5
            await _until_count(received, len(expected))
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        for conn in writers:
            await writing.release(conn)
        await writing.close()
        await holder.close()
        await pool.close()
    assert [e["id"] for e in received] == expected


async def test_doorbell_event_committed_alone_arrives_within_the_bound(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    received: list[dict[str, Any]] = []
    arrived: list[float] = []
    try:
        async with serving(database_url, **NO_POLL) as server:
            order_id = await order_in(pool, OrderStatus.PLACED)
            reader = asyncio.create_task(_receive(server.ws_url, None, received, arrived))
            await until_subscribed(server.url, 1)
            await asyncio.sleep(0.2)  # the hub's first reads are done: nothing else is running
            latencies = []
            for n in range(1, 6):
                committed = time.monotonic()
                await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)

                async def delivered(n: int = n) -> bool:
                    return len(arrived) >= n

                await eventually(delivered, within=5)
                latencies.append(arrived[n - 1] - committed)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await pool.close()
    assert len(received) == 5
    assert max(latencies) < ALONE_BOUND, latencies


async def test_doorbell_hot_stream_writers_without_expected_version_all_succeed(
    database_url: str,
) -> None:
    """Writers on one stream wait for its head row's lock instead of failing."""
    pool = await create_pool(database_url, min_size=16, max_size=16)
    try:
        order_id = await order_in(pool, OrderStatus.PLACED)
        before = await pool.fetchval(
            "select version from orders_current where order_id = $1", order_id)

        async def writer() -> list[int]:
            return [(await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                  ITEM)).event["stream_version"] for _ in range(10)]

        results = await asyncio.gather(*(writer() for _ in range(16)), return_exceptions=True)
        versions = await pool.fetch("select stream_version from order_events "
                                    "where order_id = $1 order by stream_version", order_id)
    finally:
        await pool.close()
    assert [r for r in results if isinstance(r, BaseException)] == []
    mine = sorted(v for r in results if not isinstance(r, BaseException) for v in r)
    assert mine == list(range(before + 1, before + 161))
    assert [r["stream_version"] for r in versions] == list(range(1, before + 161))


async def test_doorbell_listener_rings_again_only_once_the_transactions_it_saw_have_ended(
    database_url: str,
) -> None:
    """What every reader of the doorbell relies on (the hub and the durable consumers alike):
    after a NOTIFY, one more ring once the transactions running then have ended, not before."""
    pool = await create_pool(database_url, min_size=3, max_size=3)
    rings: list[float] = []
    listener = Listener(database_url, lambda: rings.append(time.monotonic()))
    listener.start()
    try:
        order_id = await order_in(pool, OrderStatus.PLACED)

        async def connected() -> bool:
            return listener.connected

        await eventually(connected)
        await asyncio.sleep(0.3)  # the connect's ring and its follow-up are done
        async with pool.acquire() as holder, pool.acquire() as writer, writer.transaction():
            # the writer's commit finds the doorbell taken, so it sends no NOTIFY of its own
            assert await holder.fetchval("select pg_try_advisory_lock($1)", DOORBELL_LOCK)
            await append(writer, order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
            before = len(rings)
            await pool.execute("select pg_notify('ordergraph_events', '')")
            await asyncio.sleep(0.5)
            assert len(rings) == before + 1  # the NOTIFY's ring; the follow-up waits for us
            committing = time.monotonic()
        # (the writer commits first; the holder's lock goes when the pool resets it, after)

        async def rang_again() -> bool:
            return len(rings) > before + 1

        await eventually(rang_again, within=1)
    finally:
        await listener.stop()
        await pool.close()
    assert rings[before + 1] >= committing
