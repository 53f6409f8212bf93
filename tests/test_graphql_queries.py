"""Queries over HTTP: paging, filters, timelines, time travel, and batched reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from gql.config import Settings
from gql.events import EventType, OrderStatus
from gql.http.app import create_app
from gql.seed import seed
from gql.store.connection import create_pool
from tests.factories import append, customer, order_in
from tests.graphql import ORDER_FIELDS, data, error

ORDERS_PAGE = """query($after: String, $status: [OrderStatus!], $customerId: UUID,
  $placedAfter: DateTime, $placedBefore: DateTime, $first: Int) {
  orders(first: $first, after: $after, status: $status, customerId: $customerId,
         placedAfter: $placedAfter, placedBefore: $placedBefore) {
    edges { cursor node { id status lastEventAt placedAt customer { id } } }
    nodes { id } pageInfo { hasNextPage endCursor } } }"""


async def _all_pages(client: httpx.AsyncClient, first: int, **filters: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await data(client, ORDERS_PAGE, first=first, after=after, **filters))["orders"]
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        nodes.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_paging_through_120_orders_sees_each_once_most_recent_first(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    await seed(pool, orders=120, customers=10, seed=5)
    nodes = await _all_pages(client, 17)
    ids = [n["id"] for n in nodes]
    assert len(ids) == 120 and len(set(ids)) == 120
    keys = [(n["lastEventAt"], n["id"]) for n in nodes]
    assert keys == sorted(keys, reverse=True)


async def test_orders_filters(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await seed(pool, orders=60, customers=5, seed=6)
    rows = await pool.fetch("select order_id, status, customer_id, placed_at from orders_current")
    paid = await _all_pages(client, 100, status=["PAID", "SHIPPED"])
    assert {n["id"] for n in paid} == {str(r["order_id"]) for r in rows
                                       if r["status"] in ("PAID", "SHIPPED")}
    who = rows[0]["customer_id"]
    mine = await _all_pages(client, 100, customerId=str(who))
    assert {n["id"] for n in mine} == {str(r["order_id"]) for r in rows if r["customer_id"] == who}
    middle = sorted(r["placed_at"] for r in rows)[30]
    early = await _all_pages(client, 100, placedBefore=middle.isoformat())
    assert {n["id"] for n in early} == {str(r["order_id"]) for r in rows if r["placed_at"] < middle}
    late = await _all_pages(client, 100, placedAfter=middle.isoformat())
    assert len(early) + len(late) == 59


async def test_customer_orders_and_lookups(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    customer_id = await customer(pool, "Barbara Liskov")
    orders = {str(await order_in(pool, OrderStatus.PLACED, customer_id)) for _ in range(3)}
    result = await data(client, """query($id: UUID!) { customer(id: $id) { name
        orders(first: 2) { nodes { id customer { name } } pageInfo { hasNextPage endCursor } } } }""",
        id=str(customer_id))
    page = result["customer"]["orders"]
    assert result["customer"]["name"] == "Barbara Liskov"
    assert page["pageInfo"]["hasNextPage"] and {n["id"] for n in page["nodes"]} < orders
    missing = await data(client, "query($id: UUID!) { order(id: $id) { id } customer(id: $id) { id }"
                         " event(id: $id) { id } }", id=str(uuid.uuid4()))
    assert missing == {"order": None, "customer": None, "event": None}


async def test_global_events_feed_pages_in_log_order_with_filters(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    await seed(pool, orders=25, seed=8)
    query = """query($after: String, $types: [EventType!], $orderId: UUID) {
        events(first: 30, after: $after, types: $types, orderId: $orderId) {
          edges { cursor node { id globalPosition type orderId streamVersion } }
          pageInfo { hasNextPage endCursor } } }"""
    seen, after = [], None
    while True:
        page = (await data(client, query, after=after))["events"]
        assert all(e["cursor"] == e["node"]["globalPosition"] for e in page["edges"])
        seen.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    table = await pool.fetch("select event_id from order_events order by log_xid, global_position")
    assert [n["id"] for n in seen] == [str(r["event_id"]) for r in table]
    positions = [n["globalPosition"] for n in seen]
    assert positions == sorted(positions)  # positions compare as strings too
    shipped = (await data(client, query, types=["ORDER_SHIPPED"]))["events"]["edges"]
    assert shipped and all(e["node"]["type"] == "ORDER_SHIPPED" for e in shipped)
    one = seen[0]["orderId"]
    stream = (await data(client, query, orderId=one))["events"]["edges"]
    assert [e["node"]["streamVersion"] for e in stream] == list(range(1, len(stream) + 1))
    event = await data(client, "query($id: UUID!) { event(id: $id) { id order { id } } }",
                       id=seen[3]["id"])
    assert event["event"]["order"]["id"] == seen[3]["orderId"]


async def test_timeline_paging_types_and_order(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PLACED)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for n in range(6):  # occurred times run backwards: reversed by OCCURRED_AT
        await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                     {"sku": f"S{n}", "quantity": 1, "unitPrice": "1.00"},
                     occurred_at=base - timedelta(hours=n))
    query = """query($id: UUID!, $after: String, $types: [EventType!], $by: EventOrder) {
      order(id: $id) { events(first: 4, after: $after, types: $types, orderBy: $by) {
        nodes { streamVersion } pageInfo { hasNextPage endCursor } } } }"""
    first = (await data(client, query, id=str(order_id)))["order"]["events"]
    assert [n["streamVersion"] for n in first["nodes"]] == [1, 2, 3, 4]
    rest = (await data(client, query, id=str(order_id), after=first["pageInfo"]["endCursor"]))
    assert [n["streamVersion"] for n in rest["order"]["events"]["nodes"]] == [5, 6, 7]
    by_time = (await data(client, query, id=str(order_id), by="OCCURRED_AT", types=["ITEM_ADDED_TO_ORDER"]))
    assert [n["streamVersion"] for n in by_time["order"]["events"]["nodes"]] == [7, 6, 5, 4]


@pytest.mark.parametrize(("query", "field"), [
    ("{ orders(first: 101) { nodes { id } } }", "first"),
    ("{ orders(first: -1) { nodes { id } } }", "first"),
    ("{ events(first: 100000) { nodes { id } } }", "first"),
    ('{ orders(after: "bm9wZQ") { nodes { id } } }', "after"),
    ('{ orders(after: "%%%") { nodes { id } } }', "after"),
    ('{ events(after: "12-34") { nodes { id } } }', "after"),
])
async def test_bad_page_arguments_are_bad_user_input(
    client: httpx.AsyncClient, query: str, field: str,
) -> None:
    failure = await error(client, query)
    assert failure["extensions"]["code"] == "BAD_USER_INPUT"
    assert failure["extensions"]["field"] == field


async def test_state_at_latest_version_equals_read_model_for_every_seeded_order(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    await seed(pool, orders=80, seed=9)
    state = ("status version totalAmount authorizedAmount capturedAmount "
             "items { sku quantity unitPrice lineTotal }")
    result = await data(client, "{ orders(first: 100) { nodes { %s stateAt { %s } } } }"
                        % (ORDER_FIELDS, state))
    nodes = result["orders"]["nodes"]
    assert len(nodes) == 80
    for node in nodes:
        expected = {k: node[k] for k in ("status", "version", "totalAmount", "authorizedAmount",
                                          "capturedAmount", "items")}
        assert node["stateAt"] == expected


async def test_state_at_a_late_event_counts_on_occurred_axis_only_once_recorded(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    customer_id = await customer(pool)
    order_id = uuid.uuid4()
    t0 = datetime.now(UTC) - timedelta(hours=3)
    await append(pool, order_id, EventType.ORDER_PLACED,
                 {"customerId": str(customer_id), "currency": "EUR", "items": []}, occurred_at=t0)
    recorded_before_late = datetime.now(UTC)
    # reported now, but it happened an hour after the placement
    await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                 {"sku": "LATE", "quantity": 2, "unitPrice": "5.00"},
                 occurred_at=t0 + timedelta(hours=1))
    query = """query($id: UUID!, $asOf: DateTime, $axis: TimeAxis, $version: Int) { order(id: $id) {
        stateAt(asOf: $asOf, axis: $axis, version: $version) { status version totalAmount } } }"""
    two_hours_in = (t0 + timedelta(hours=2)).isoformat()

    async def state(**args: Any) -> dict[str, Any]:
        return (await data(client, query, id=str(order_id), **args))["order"]["stateAt"]

    assert await state(asOf=two_hours_in, axis="OCCURRED") == {
        "status": "PLACED", "version": 2, "totalAmount": "10.00"}
    assert await state(asOf=recorded_before_late.isoformat(), axis="RECORDED") == {
        "status": "PLACED", "version": 1, "totalAmount": "0.00"}
    assert await state(asOf=(t0 - timedelta(minutes=1)).isoformat()) == {
        "status": None, "version": 0, "totalAmount": "0.00"}
    assert await state(version=1) == {"status": "PLACED", "version": 1, "totalAmount": "0.00"}


Q2 = """{ orders(first: %d) { nodes { id status totalAmount customer { id name email }
  events { nodes { id type occurredAt ... on OrderPlaced { currency } } } } } }"""


async def _statements_for(database_url: str, query: str) -> int:
    statements: list[str] = []

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await create_pool(database_url, min_size=1, max_size=4, on_connect=log_queries)
    try:
        app = create_app(Settings(database_url=database_url), pool=pool)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            await data(client, query)
            statements.clear()
            await data(client, query)
    finally:
        await pool.close()
    return len(statements)


async def test_statements_per_request_do_not_grow_with_orders(
    pool: asyncpg.Pool, database_url: str,
) -> None:
    await seed(pool, orders=60, seed=10)
    five = await _statements_for(database_url, Q2 % 5)
    fifty = await _statements_for(database_url, Q2 % 50)
    assert five == fifty <= 4, (five, fifty)
