"""The listener and the hub under faults and limits: killed connections, outages, slow clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gql.config import Settings
from gql.events import EventType
from gql.listener import APPLICATION_NAME
from gql.store.connection import create_pool
from tests.conftest import LiveServer, serving
from tests.factories import append, payload_for
from tests.test_subscriptions import _place_orders, _until_count, _write, end_of_log, log_after
from tests.ws import (
    LEGACY,
    ORDER_EVENTS,
    TRANSPORT,
    client,
    eventually,
    subscriptions_gauge,
    until_subscribed,
)

LISTENER_PID = """select pid from pg_stat_activity
where application_name = $1 and datname = current_database()"""


async def _listener_pid(db: asyncpg.Pool | asyncpg.Connection) -> int | None:
    return await db.fetchval(LISTENER_PID, APPLICATION_NAME)


async def _readyz(base_url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.get("/readyz")
    return response.status_code, response.json()


async def test_listener_killed_mid_stream_loses_nothing(live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=2, max_size=8)
    received: list[dict[str, Any]] = []
    try:
        start = await end_of_log(pool)
        first_pid = await _listener_pid(pool)
        assert first_pid is not None
        reader = asyncio.create_task(_receive_all(live_server.ws_url, start, received))
        orders = await _place_orders(pool, 8)
        writers = [asyncio.create_task(_write(pool, orders, 150, seed)) for seed in range(4)]
        await eventually(_at_least(received, 100))
        assert await pool.fetchval("select pg_terminate_backend($1)", first_pid)
        await asyncio.gather(*writers)
        expected = await log_after(pool, start)
        await _until_count(received, len(expected))
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

        async def reconnected() -> bool:
            status, body = await _readyz(live_server.url)
            pid = await _listener_pid(pool)
            return status == 200 and body["listener"] == "connected" and pid not in (None, first_pid)

        await eventually(reconnected)
    finally:
        await pool.close()
    assert [e["id"] for e in received] == expected


async def test_listener_outage_is_reported_and_caught_up_from_the_log(
    database_url: str, server_url: str
) -> None:
    """With the safety poll out of the way, only the reconnect's catch-up can deliver events
    appended while the listener was away."""
    pool = await create_pool(database_url, min_size=2, max_size=2)
    admin = await asyncpg.connect(server_url)
    name = await pool.fetchval("select current_database()")
    received: list[dict[str, Any]] = []
    async with serving(database_url, safety_poll_interval=60) as server:
        orders = await _place_orders(pool, 2)
        start = await end_of_log(pool)
        reader = asyncio.create_task(_receive_all(server.ws_url, start, received))
        # subscribed, so its own catch-up from `start` is over before the outage begins
        await until_subscribed(server.url, 1)
        try:
            async with pool.acquire() as conn:
                await admin.execute(f'alter database "{name}" allow_connections false')
                try:
                    assert await conn.fetchval("select pg_terminate_backend($1)",
                                               await _listener_pid(conn))

                    async def reconnecting() -> bool:
                        status, body = await _readyz(server.url)
                        return status == 503 and body["listener"] == "reconnecting"

                    await eventually(reconnecting)
                    for _ in range(30):
                        await append(conn, orders[0], EventType.ITEM_ADDED_TO_ORDER,
                                     payload_for(EventType.ITEM_ADDED_TO_ORDER))
                    await asyncio.sleep(0.3)
                    assert received == [], "nothing can be delivered while the listener is away"
                finally:
                    await admin.execute(f'alter database "{name}" allow_connections true')
            expected = await log_after(pool, start)
            await _until_count(received, len(expected))
            status, body = await _readyz(server.url)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await admin.close()
            await pool.close()
    assert [e["id"] for e in received] == expected and len(expected) == 30
    assert (status, body["listener"]) == (200, "connected")


async def test_slow_subscription_is_ended_with_its_position_and_resumes(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    async with serving(database_url, subscription_queue_size=5) as server:
        [order_id] = await _place_orders(pool, 1)
        baseline = await subscriptions_gauge(server.url)
        async with client(server.ws_url) as ws:
            await ws.subscribe(ORDER_EVENTS, orderId=str(order_id))
            await until_subscribed(server.url, baseline + 1)
            async with pool.acquire() as conn, conn.transaction():  # one read, one burst of 20
                for _ in range(20):
                    await append(conn, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                 payload_for(EventType.ITEM_ADDED_TO_ORDER))
            queued = await ws.collect(5)
            error = (await ws.result())["errors"][0]
            assert (await ws.message())["type"] == "complete"
            last = error["extensions"]["lastPosition"]
            await ws.subscribe(ORDER_EVENTS, "2", orderId=str(order_id), after=last)
            rest = await ws.collect(15, "2")
        versions = [e["orderEvents"]["streamVersion"] for e in queued + rest]
    await pool.close()
    assert error["extensions"]["code"] == "SUBSCRIPTION_OVERFLOW"
    assert last == queued[-1]["orderEvents"]["globalPosition"]
    assert versions == list(range(2, 22))


async def test_subscriptions_per_connection_are_capped(database_url: str) -> None:
    async with serving(database_url, max_subscriptions_per_connection=2) as server:
        baseline = await subscriptions_gauge(server.url)
        async with client(server.ws_url) as ws:
            await ws.subscribe(ORDER_EVENTS, "1")
            await ws.subscribe(ORDER_EVENTS, "2")
            await until_subscribed(server.url, baseline + 2)
            await ws.subscribe(ORDER_EVENTS, "3")
            error = (await ws.result("3"))["errors"][0]
    assert error["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": 2}


@pytest.mark.parametrize(("protocol", "ping"), [(TRANSPORT, "ping"), (LEGACY, "ka")])
async def test_connections_get_keepalives(database_url: str, protocol: str, ping: str) -> None:
    async with serving(database_url, keepalive_interval=0.1) as server, client(server.ws_url, protocol) as ws:
        async with asyncio.timeout(5):
            while json.loads(await ws.ws.recv())["type"] != ping:
                pass


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_connection_without_init_is_closed(database_url: str, protocol: str) -> None:
    async with (serving(database_url, connection_init_timeout=0.2) as server,
                connect(server.ws_url, subprotocols=[protocol]) as ws):  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


def _at_least(items: list[Any], count: int) -> Any:
    async def check() -> bool:
        return len(items) >= count

    return check


async def _receive_all(ws_url: str, after: str, into: list[dict[str, Any]]) -> None:
    async with client(ws_url) as ws:
        await ws.subscribe(ORDER_EVENTS, after=after)
        while True:
            into.append((await ws.data(within=60))["orderEvents"])


async def test_a_replay_that_overflows_its_queue_reads_the_log_again(
    pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a subscription replays from its cursor, live events beyond its queue are dropped
    and read again from the log: no error, no gap, no duplicate."""
    from gql.events import Position
    from gql.live import EventFilter, LiveHub

    replays = 0
    replay = LiveHub._replay

    def counting(self: LiveHub, *args: Any) -> Any:
        nonlocal replays
        replays += 1
        return replay(self, *args)

    async def burst(count: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            for n in range(count):
                await append(conn, orders[n % 2], EventType.ITEM_ADDED_TO_ORDER,
                             payload_for(EventType.ITEM_ADDED_TO_ORDER))

    monkeypatch.setattr(LiveHub, "_replay", counting)
    orders = await _place_orders(pool, 2)
    await burst(300)  # more than a replay page
    hub = LiveHub(pool, Settings(database_url=database_url, subscription_queue_size=3))
    await hub.start()
    received: list[Any] = []

    async def read() -> None:
        async for delivery in hub.follow(EventFilter(), after=Position(0, 0)):
            received.append(delivery.row["event_id"])
            await asyncio.sleep(0.001)  # a slow client: the replay takes a while

    reader = asyncio.create_task(read())
    try:
        await eventually(_at_least(received, 20))
        await burst(10)  # offered to the replaying subscription at once: more than its queue
        expected = [r["event_id"] for r in await pool.fetch(
            "select event_id from order_events order by log_xid, global_position")]
        await eventually(_at_least(received, len(expected)), within=30)
        await asyncio.sleep(0.1)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await hub.stop()
    assert received == expected
    assert replays >= 2, "the queue overflowed during the replay and the log was read again"


async def test_an_event_held_back_by_an_older_transaction_leaves_when_it_ends(database_url: str) -> None:
    """A committed event waits while an older transaction runs (here one that rings no
    doorbell), then leaves at once: not at the next safety poll."""
    pool = await create_pool(database_url, min_size=2, max_size=4)
    async with serving(database_url, safety_poll_interval=60) as server:
        [order_id] = await _place_orders(pool, 1)
        start = await end_of_log(pool)
        async with client(server.ws_url) as ws, pool.acquire() as older:
            await ws.subscribe(ORDER_EVENTS, after=start)
            blocking = older.transaction()
            await blocking.start()
            await older.execute("select pg_current_xact_id()")  # an xid older than the event
            added = await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                 payload_for(EventType.ITEM_ADDED_TO_ORDER))
            with pytest.raises(TimeoutError):
                await ws.data(within=0.5)  # behind the older transaction, in the log's order
            await blocking.rollback()
            event = (await ws.data(within=2))["orderEvents"]
    await pool.close()
    assert event["id"] == str(added.event["event_id"])


async def test_the_hub_reads_nothing_without_subscribers_and_catches_up_for_the_first(
    pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gql.live import EventFilter, LiveHub
    from gql.store import reads

    read_log = reads.read_log
    calls = 0

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await read_log(*args, **kwargs)

    monkeypatch.setattr(reads, "read_log", counting)
    [order_id] = await _place_orders(pool, 1)
    hub = LiveHub(pool, Settings(database_url=database_url))
    await hub.start()
    try:
        await eventually(lambda: _true(hub.connected))
        for _ in range(5):  # rung, but nobody listens
            await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                         payload_for(EventType.ITEM_ADDED_TO_ORDER))
        await asyncio.sleep(0.2)
        assert calls == 0
        live = hub.follow(EventFilter())
        first = asyncio.create_task(anext(live))
        await eventually(lambda: _true(bool(hub._subscribers)))
        added = await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                             payload_for(EventType.ITEM_ADDED_TO_ORDER))
        async with asyncio.timeout(5):
            delivery = await first
        await live.aclose()
    finally:
        await hub.stop()
    assert delivery.row["event_id"] == added.event["event_id"], "only what came after subscribing"


async def _true(value: bool) -> bool:
    return value
