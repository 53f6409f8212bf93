"""Subscriptions against a real server with real WebSocket clients and real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from gql.events import EventType, OrderStatus, Position
from gql.identity import OPEN
from gql.live import Delivery
from gql.store import reads
from gql.store.access import load_grants
from gql.store.connection import create_pool
from tests.conftest import LiveServer, seeded_server
from tests.factories import append, customer, order_in, payload_for, settled_end
from tests.graphql import data
from tests.ws import (
    LEGACY,
    ORDER_EVENTS,
    STATUS_CHANGED,
    client,
    eventually,
    subscriptions_gauge,
    until_subscribed,
)

LIFECYCLE = [EventType.ORDER_PLACED, EventType.ITEM_ADDED_TO_ORDER, EventType.PAYMENT_AUTHORIZED,
             EventType.PAYMENT_CAPTURED, EventType.ORDER_SHIPPED]
EVENTS_WITH_ORDER = """subscription($orderId: UUID) {
  orderEvents(orderId: $orderId) { type streamVersion globalPosition order { status version } }
}"""


@pytest.fixture(params=[True, False], ids=["compiled", "resolvers"])
async def live_server(database_url: str, request: pytest.FixtureRequest) -> Any:
    """Every test here runs with payloads rendered by the hub, and with the resolvers."""
    async with seeded_server(database_url, compiled_reads=request.param) as server:
        yield server


def cursor(row: asyncpg.Record) -> str:
    return Position(row["log_xid"], row["global_position"]).encode()


async def log_after(db: asyncpg.Pool, after: str) -> list[str]:
    """Event ids after a cursor, in the log's order, straight from the table."""
    start = Position.decode(after)
    rows = await db.fetch("""select event_id from order_events
        where (log_xid, global_position) > ($1::xid8, $2::bigint)
        order by log_xid, global_position""", start.xid, start.seq)
    return [str(row["event_id"]) for row in rows]


async def end_of_log(db: asyncpg.Pool) -> str:
    return (await settled_end(db)).encode()


async def test_subscriptions_follow_an_order_lifecycle(live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        customer_id = await customer(pool)
        order_id = uuid.uuid4()
        baseline = await subscriptions_gauge(live_server.url)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(EVENTS_WITH_ORDER, "events", orderId=str(order_id))
            await ws.subscribe(STATUS_CHANGED, "status", orderId=str(order_id))
            await until_subscribed(live_server.url, baseline + 2)
            changes = []
            for version, event_type in enumerate(LIFECYCLE, start=1):
                payload = payload_for(event_type, customer_id)
                if "amount" in payload:
                    payload["amount"] = "28.00"  # with the added item
                await append(pool, order_id, event_type, payload)
                event = (await ws.data("events"))["orderEvents"]
                assert (event["type"], event["streamVersion"]) == (event_type.name, version)
                # nested fields are read afresh for each event, not from the first one's loaders
                assert event["order"]["version"] == version
                if event_type is not EventType.ITEM_ADDED_TO_ORDER:
                    changes.append((await ws.data("status"))["orderStatusChanged"])
            await ws.stop("events")  # the server ends the operation and its subscription
            await until_subscribed(live_server.url, baseline + 1)
    finally:
        await pool.close()
    assert [(c["previousStatus"], c["status"]) for c in changes] == [
        (None, "PLACED"), ("PLACED", "PAYMENT_AUTHORIZED"), ("PAYMENT_AUTHORIZED", "PAID"),
        ("PAID", "SHIPPED")]
    assert [c["order"]["status"] for c in changes] == [c["status"] for c in changes]
    assert [c["event"]["type"] for c in changes] == [
        "ORDER_PLACED", "PAYMENT_AUTHORIZED", "PAYMENT_CAPTURED", "ORDER_SHIPPED"]


async def test_order_status_changed_filters_by_status(live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        customer_id = await customer(pool)
        baseline = await subscriptions_gauge(live_server.url)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(STATUS_CHANGED, statuses=["CANCELLED"])
            await until_subscribed(live_server.url, baseline + 1)
            first, second = uuid.uuid4(), uuid.uuid4()
            for order_id in (first, second):
                await append(pool, order_id, EventType.ORDER_PLACED,
                             payload_for(EventType.ORDER_PLACED, customer_id))
            await append(pool, second, EventType.ORDER_CANCELLED,
                         payload_for(EventType.ORDER_CANCELLED))
            change = (await ws.data())["orderStatusChanged"]
    finally:
        await pool.close()
    assert (change["order"]["id"], change["previousStatus"], change["status"]) == (
        str(second), "PLACED", "CANCELLED")


# A state machine where one event type leads to two statuses: removing an item keeps an
# authorized order authorized (and a placed one placed).
REMOVE_WHILE_AUTHORIZED = """
insert into order_transitions (event_type, from_status, to_status)
values ('ItemRemovedFromOrder', 'PAYMENT_AUTHORIZED', 'PAYMENT_AUTHORIZED')
"""


async def test_order_status_changed_reports_the_status_each_event_stored(
        live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        await pool.execute(REMOVE_WHILE_AUTHORIZED)
        customer_id = await customer(pool)
        order_id = uuid.uuid4()
        remove_one = {"sku": "SKU-1", "quantity": 1}
        baseline = await subscriptions_gauge(live_server.url)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(STATUS_CHANGED, orderId=str(order_id))
            await until_subscribed(live_server.url, baseline + 1)
            await append(pool, order_id, EventType.ORDER_PLACED,
                         payload_for(EventType.ORDER_PLACED, customer_id))
            await append(pool, order_id, EventType.ITEM_REMOVED_FROM_ORDER, remove_one)
            await append(pool, order_id, EventType.PAYMENT_AUTHORIZED,
                         {**payload_for(EventType.PAYMENT_AUTHORIZED), "amount": "12.50"})
            await append(pool, order_id, EventType.ITEM_REMOVED_FROM_ORDER, remove_one)
            await append(pool, order_id, EventType.ORDER_CANCELLED,
                         payload_for(EventType.ORDER_CANCELLED))
            changes = [c["orderStatusChanged"] for c in await ws.collect(3)]
    finally:
        await pool.close()
    assert [(c["previousStatus"], c["status"], c["event"]["type"]) for c in changes] == [
        (None, "PLACED", "ORDER_PLACED"),
        ("PLACED", "PAYMENT_AUTHORIZED", "PAYMENT_AUTHORIZED"),
        ("PAYMENT_AUTHORIZED", "CANCELLED", "ORDER_CANCELLED")]


async def _write(db: asyncpg.Pool, orders: list[uuid.UUID], count: int, seed: int) -> None:
    """Appends in transactions that take their id early and stay open a random while, so that
    commits land out of order with respect to transaction ids and positions."""
    rng = random.Random(seed)
    payload = payload_for(EventType.ITEM_ADDED_TO_ORDER)
    async with db.acquire() as conn:
        for _ in range(count):
            async with conn.transaction():
                if rng.random() < 0.5:
                    await conn.execute("select pg_current_xact_id()")
                    await asyncio.sleep(rng.uniform(0, 0.003))
                await append(conn, rng.choice(orders), EventType.ITEM_ADDED_TO_ORDER, payload)
                await asyncio.sleep(rng.uniform(0, 0.003))


async def _place_orders(db: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    customer_id = await customer(db)
    orders = [uuid.uuid4() for _ in range(count)]
    for order_id in orders:
        await append(db, order_id, EventType.ORDER_PLACED,
                     payload_for(EventType.ORDER_PLACED, customer_id))
    return orders


async def _receive(ws_url: str, after: str, into: list[dict[str, Any]], stop_after: int | None = None,
                   ) -> str:
    """Collect orderEvents from `after` into `into`; return the last position received."""
    async with client(ws_url) as ws:
        await ws.subscribe(ORDER_EVENTS, after=after)
        while stop_after is None or len(into) < stop_after:
            into.append((await ws.data())["orderEvents"])
            after = into[-1]["globalPosition"]
    return after


async def _until_count(received: list[Any], expected: int) -> None:
    async def check() -> bool:
        return len(received) >= expected

    await eventually(check, within=30)
    await asyncio.sleep(0.2)  # a duplicate arriving late would show up here


async def test_order_events_exactly_once_in_log_order_under_concurrent_writers(
    live_server: LiveServer,
) -> None:
    """8 writers append 2,000 events while one subscriber replays from a cursor and goes live,
    and another disconnects midway and resumes from its last globalPosition."""
    pool = await create_pool(live_server.database_url, min_size=2, max_size=10)
    steady: list[dict[str, Any]] = []
    resumed: list[dict[str, Any]] = []

    async def resume() -> None:
        last = await _receive(live_server.ws_url, start, resumed, stop_after=700)
        await _receive(live_server.ws_url, last, resumed)

    try:
        seeded = await pool.fetch("select log_xid, global_position from order_events "
                                  "order by log_xid, global_position")
        start = cursor(seeded[len(seeded) // 2])
        readers = [asyncio.create_task(_receive(live_server.ws_url, start, steady)),
                   asyncio.create_task(resume())]
        orders = await _place_orders(pool, 16)
        await asyncio.gather(*(_write(pool, orders, 250, seed) for seed in range(8)))
        expected = await log_after(pool, start)
        assert len(expected) == len(seeded) - len(seeded) // 2 - 1 + 16 + 2000
        await _until_count(steady, len(expected))
        await _until_count(resumed, len(expected))
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await pool.close()
    assert [e["id"] for e in steady] == expected
    assert [e["id"] for e in resumed] == expected
    positions = [e["globalPosition"] for e in steady]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    for order_id in {e["orderId"] for e in steady}:
        versions = [e["streamVersion"] for e in steady if e["orderId"] == order_id]
        assert versions == sorted(versions)


async def test_order_events_with_filters_replays_then_goes_live(live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        order_id = (await pool.fetchval("select order_id from orders_current where status = 'PLACED' "
                                        "order by order_id limit 1"))
        before = await pool.fetch("select event_id, event_type from order_events where order_id = $1 "
                                  "order by stream_version", order_id)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(ORDER_EVENTS, orderId=str(order_id), after=Position(0, 0).encode(),
                               types=["ORDER_PLACED", "ITEM_ADDED_TO_ORDER"])
            replayed = await ws.collect(sum(r["event_type"] in ("OrderPlaced", "ItemAddedToOrder")
                                            for r in before))
            added = await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                 payload_for(EventType.ITEM_ADDED_TO_ORDER))
            live = (await ws.data())["orderEvents"]
    finally:
        await pool.close()
    assert {e["orderEvents"]["orderId"] for e in replayed} == {str(order_id)}
    assert replayed[0]["orderEvents"]["type"] == "ORDER_PLACED"
    assert live["id"] == str(added.event["event_id"])


async def test_order_status_changed_replays_changes_after_a_position_then_goes_live(
        live_server: LiveServer) -> None:
    """The changes recorded after `after`, each once, then live ones: what a board resuming
    after a reconnect sees."""
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        start = await end_of_log(pool)
        order_id = await order_in(pool, OrderStatus.PAID)  # three changes, one item event less
        expected = await pool.fetch(
            "select event_id from order_events where order_id = $1 order by stream_version", order_id)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(STATUS_CHANGED, after=start)
            replayed = [c["orderStatusChanged"] for c in await ws.collect(3)]
            shipped = await append(pool, order_id, EventType.ORDER_SHIPPED,
                                   payload_for(EventType.ORDER_SHIPPED))
            live = (await ws.data())["orderStatusChanged"]
    finally:
        await pool.close()
    assert [(c["previousStatus"], c["status"]) for c in replayed] == [
        (None, "PLACED"), ("PLACED", "PAYMENT_AUTHORIZED"), ("PAYMENT_AUTHORIZED", "PAID")]
    assert [c["event"]["id"] for c in replayed] == [str(r["event_id"]) for r in expected]
    assert (live["previousStatus"], live["status"], live["event"]["id"]) == (
        "PAID", "SHIPPED", str(shipped.event["event_id"]))


async def test_legacy_graphql_ws_protocol_delivers_events(live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        start = await end_of_log(pool)
        async with client(live_server.ws_url, LEGACY) as ws:
            await ws.subscribe(ORDER_EVENTS, after=start)
            orders = await _place_orders(pool, 2)
            received = await ws.collect(2)
            await ws.stop()
            assert (await ws.message())["type"] == "complete"
    finally:
        await pool.close()
    assert [e["orderEvents"]["orderId"] for e in received] == [str(o) for o in orders]


async def test_a_malformed_cursor_is_bad_user_input(live_server: LiveServer) -> None:
    async with client(live_server.ws_url) as ws:
        await ws.subscribe(ORDER_EVENTS, after="not-a-position")
        payload = await ws.result()
        assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert (await ws.message())["type"] == "complete"


async def test_internal_errors_in_subscriptions_are_masked(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("relation secret_table does not exist")

    monkeypatch.setattr(reads, "list_events", broken)
    async with client(live_server.ws_url) as ws:
        await ws.subscribe(ORDER_EVENTS, after=Position(0, 0).encode())
        error = (await ws.result())["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in str(error)


async def test_readyz_reports_the_listener(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        body = (await http.get("/readyz")).json()
    assert body["listener"] == "connected"


async def test_mutations_over_http_reach_subscribers(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        customer_id = (await data(http, "{ orders(first: 1) { nodes { customer { id } } } }")
                       )["orders"]["nodes"][0]["customer"]["id"]
        baseline = await subscriptions_gauge(live_server.url)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(STATUS_CHANGED)
            await until_subscribed(live_server.url, baseline + 1)
            placed = await data(http, """mutation($input: PlaceOrderInput!) {
                placeOrder(input: $input) { order { id } } }""",
                input={"customerId": customer_id, "currency": "EUR", "items": []})
            change = (await ws.data())["orderStatusChanged"]
    assert change["order"]["id"] == placed["placeOrder"]["order"]["id"]
    assert (change["previousStatus"], change["status"]) == (None, "PLACED")


@pytest.fixture
def two_workers(database_url: str) -> Iterator[tuple[str, psutil.Process]]:
    """`ordergraph serve --workers 2`, the real CLI, on the test's database."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "gql", "serve", "--port", str(port), "--workers", "2"],
        env=env, cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", psutil.Process(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()


async def _ready(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
            return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


def _connections_per_worker(server: psutil.Process, port: int) -> list[int]:
    """How many established connections each process of the server holds on its port."""
    return sorted(
        sum(1 for c in proc.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
        for proc in server.children(recursive=True))


@pytest.mark.slow
async def test_workers_deliver_mutations_to_subscribers_on_every_worker(
    two_workers: tuple[str, psutil.Process], pool: asyncpg.Pool
) -> None:
    """Subscribers on both worker processes; mutations, each on a new HTTP connection, served
    by either; every subscriber sees every event."""
    base_url, server = two_workers
    port = int(base_url.rsplit(":", 1)[1])
    await eventually(lambda: _ready(base_url), within=60)
    ws_url = base_url.replace("http://", "ws://") + "/graphql"
    customer_id = await customer(pool)
    start = await end_of_log(pool)
    async with contextlib.AsyncExitStack() as stack:
        subscribers = []
        # the kernel picks the worker that accepts; open connections until both hold some
        while len(subscribers) < 4 or _connections_per_worker(server, port)[-2] == 0:
            assert len(subscribers) < 32, "every connection went to the same worker"
            subscribers.append(await stack.enter_async_context(client(ws_url)))
            await subscribers[-1].subscribe(ORDER_EVENTS, after=start)
        order_ids = []
        for _ in range(6):
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
                placed = await data(http, """mutation($input: PlaceOrderInput!) {
                    placeOrder(input: $input) { order { id } } }""",
                    input={"customerId": str(customer_id), "currency": "EUR", "items": []})
            order_ids.append(placed["placeOrder"]["order"]["id"])
        received = [[e["orderEvents"]["orderId"] for e in await ws.collect(6)] for ws in subscribers]
    listeners = await pool.fetchval("select count(*) from pg_stat_activity where application_name = "
                                    "'ordergraph-listener' and datname = current_database()")
    assert received == [order_ids] * len(subscribers)
    assert listeners == 2, "one LISTEN connection per worker process"


async def test_identical_subscriptions_share_results_and_different_ones_do_not(
    live_server: LiveServer,
) -> None:
    other = """subscription($orderId: UUID) {
      orderEvents(orderId: $orderId) { streamVersion order { version } } }"""
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        [order_id] = await _place_orders(pool, 1)
        start = await end_of_log(pool)
        baseline = await subscriptions_gauge(live_server.url)
        async with client(live_server.ws_url) as a, client(live_server.ws_url) as b, \
                client(live_server.ws_url) as c:
            await a.subscribe(ORDER_EVENTS, orderId=str(order_id), after=start)
            await b.subscribe(ORDER_EVENTS, orderId=str(order_id), after=start)
            await c.subscribe(other, orderId=str(order_id))
            await until_subscribed(live_server.url, baseline + 3)
            for _ in range(3):
                await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                             payload_for(EventType.ITEM_ADDED_TO_ORDER))
            seen_a, seen_b, seen_c = await a.collect(3), await b.collect(3), await c.collect(3)
    finally:
        await pool.close()
    assert seen_a == seen_b
    assert [e["orderEvents"]["streamVersion"] for e in seen_a] == [2, 3, 4]
    assert set(seen_c[0]["orderEvents"]) == {"streamVersion", "order"}


class _OneEvent:
    """A stand-in hub that yields one stored event to every subscription."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row

    async def follow(self, *args: Any, **kwargs: Any) -> Any:
        yield Delivery(self.row)  # not rendered: the resolvers execute it


async def test_one_event_is_executed_once_per_distinct_operation(pool: asyncpg.Pool) -> None:
    from gql.config import Settings
    from gql.schema import build_schema
    from gql.schema.context import Context

    [order_id] = await _place_orders(pool, 1)
    await end_of_log(pool)  # the event is in the safe prefix the log pages read
    [row] = await reads.list_events(pool, limit=1, order_id=order_id, viewer=None)
    schema = build_schema(Settings(database_url=""))
    hub = _OneEvent(dict(row))

    async def first(query: str) -> Any:
        stream = await schema.stream(query, context_value=Context(
            pool, Settings(database_url=""), await load_grants(pool), OPEN, hub))
        async for result in stream:
            return result

    same = [await first("subscription { orderEvents { id type } }") for _ in range(2)]
    other = await first("subscription { orderEvents { id streamVersion } }")
    assert same[0].data is same[1].data, "identical operations share one execution"
    assert other.data == {"orderEvents": {"id": str(row["event_id"]), "streamVersion": 1}}
