"""Event versions: events stored with an older schema_version are read in the current one.

The example evolution: OrderCancelled 2 requires `reasonCode`; version 1 events (written here
by plain SQL, as release 0.1 stored them) get the code their free-text reason names.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from gql.config import Settings
from gql.events import EventType, OrderStatus
from gql.http.app import create_app
from gql.store.connection import create_pool
from gql.store.projections import rebuild_projections
from tests.conftest import LiveServer
from tests.factories import order_in, snapshot
from tests.graphql import data, error
from tests.ws import client, subscriptions_gauge, until_subscribed

V1_CANCEL = """
insert into order_events (event_id, order_id, event_type, payload, schema_version)
values ($1, $2, 'OrderCancelled', $3, 1)
returning og_position(log_xid, global_position)
"""
CANCELLED = "... on OrderCancelled { reason reasonCode }"
EVENT = "query($id: UUID!) { event(id: $id) { schemaVersion payload %s } }" % CANCELLED
TIMELINE = """query($id: UUID!) { order(id: $id) {
    status events { nodes { type schemaVersion payload %s } }
    stateAt(version: 2) { status version } } }""" % CANCELLED
FEED = "{ events(first: 100, types: [ORDER_CANCELLED]) { nodes { id schemaVersion %s } } }" % CANCELLED
SUBSCRIPTION = """subscription($after: String) {
    orderEvents(after: $after, types: [ORDER_CANCELLED]) { id schemaVersion payload %s } }""" % CANCELLED
UPCAST = {"reason": "out of stock", "reasonCode": "OUT_OF_STOCK"}


async def _v1_cancelled(pool: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID]:
    order_id = await order_in(pool, OrderStatus.PLACED)
    event_id = uuid.uuid4()
    await pool.execute(V1_CANCEL, event_id, order_id, {"reason": "out of stock"})
    return order_id, event_id


@pytest.fixture(params=[True, False], ids=["compiled", "resolvers"])
async def api(request: pytest.FixtureRequest, database_url: str,
              pool: asyncpg.Pool) -> httpx.AsyncClient:
    app = create_app(Settings(database_url=database_url, compiled_reads=request.param), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as api:
        yield api


async def test_event_versions_v1_events_read_upcast_through_graphql(
        api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id, event_id = await _v1_cancelled(pool)
    event = (await data(api, EVENT, id=str(event_id)))["event"]
    assert event == {"schemaVersion": 2, "payload": UPCAST, **UPCAST}
    order = (await data(api, TIMELINE, id=str(order_id)))["order"]
    assert order["status"] == "CANCELLED" and order["stateAt"] == {"status": "CANCELLED", "version": 2}
    assert order["events"]["nodes"][1] == {"type": "ORDER_CANCELLED", "schemaVersion": 2,
                                           "payload": UPCAST, **UPCAST}
    feed = (await data(api, FEED))["events"]["nodes"]
    assert {"id": str(event_id), "schemaVersion": 2, **UPCAST} in feed
    # the log keeps the event as it was written
    stored = await pool.fetchrow("select schema_version, payload from order_events where event_id = $1",
                                 event_id)
    assert (stored["schema_version"], stored["payload"]) == (1, {"reason": "out of stock"})


async def test_event_versions_rebuild_folds_v1_events(pool: asyncpg.Pool) -> None:
    order_id, _ = await _v1_cancelled(pool)
    before = await pool.fetchrow("select * from orders_current where order_id = $1", order_id)
    async with pool.acquire() as conn:
        rebuilt = await rebuild_projections(conn)
    assert rebuilt.changed_rows == 0
    assert await pool.fetchrow("select * from orders_current where order_id = $1", order_id) == before
    assert before["status"] == "CANCELLED"


async def test_event_versions_subscription_delivers_v1_events_upcast(live_server: LiveServer) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        start = await pool.fetchval("select og_position(log_xid, global_position) from order_events "
                                    "order by log_xid desc, global_position desc limit 1")
        baseline = await subscriptions_gauge(live_server.url)
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(SUBSCRIPTION, after=start)
            await until_subscribed(live_server.url, baseline + 1)
            _, event_id = await _v1_cancelled(pool)
            event = (await ws.data())["orderEvents"]
    finally:
        await pool.close()
    assert event == {"id": str(event_id), "schemaVersion": 2, "payload": UPCAST, **UPCAST}


@pytest.mark.parametrize(("version", "payload", "field"), [
    (2, {"reason": "out of stock"}, "reasonCode"),              # v2 requires the code
    (2, {"reason": "x", "reasonCode": "BORED"}, "reasonCode"),
    (3, {"reason": "x", "reasonCode": "OTHER"}, "schemaVersion"),  # no such version yet
    (0, {"reason": "x"}, "schemaVersion"),
])
async def test_event_versions_refuse_bad_versions_and_change_nothing(
        pool: asyncpg.Pool, version: int, payload: dict[str, str], field: str) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    before = await snapshot(pool)
    with pytest.raises(asyncpg.RaiseError) as refused:
        await pool.execute(V1_CANCEL.replace(", 1)", ", $4)"), uuid.uuid4(), order_id, payload, version)
    assert refused.value.constraint_name == "bad_user_input" and field in refused.value.detail
    assert await snapshot(pool) == before


async def test_event_versions_cancel_order_writes_the_current_version(
        client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    mutation = """mutation($input: CancelOrderInput!) { cancelOrder(input: $input) {
        event { schemaVersion ... on OrderCancelled { reasonCode } } } }"""
    result = await data(client, mutation, input={"orderId": str(order_id), "reason": "no stock",
                                                  "reasonCode": "OUT_OF_STOCK"})
    assert result["cancelOrder"]["event"] == {"schemaVersion": 2, "reasonCode": "OUT_OF_STOCK"}
    stored = await pool.fetchval("select schema_version from order_events where order_id = $1 "
                                 "and event_type = $2", order_id, EventType.ORDER_CANCELLED.value)
    assert stored == 2
    other = await order_in(pool, OrderStatus.PLACED)
    bad = await error(client, mutation, input={"orderId": str(other), "reason": "x", "reasonCode": "NOPE"})
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"
