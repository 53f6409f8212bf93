"""The compiled fast path answers exactly what the resolvers answer, in one statement."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from bench.workloads import OURS
from gql.config import Settings
from gql.events import EventType, OrderStatus
from gql.http.app import create_app
from gql.seed import seed
from gql.store.connection import create_pool
from tests.factories import append, order_in

EVENT_FIELDS = """__typename id orderId streamVersion globalPosition type occurredAt recordedAt
  correlationId causationId actor { type id __typename } schemaVersion payload
  ... on OrderPlaced { customerId currency items { sku quantity unitPrice lineTotal } }
  ... on ItemAddedToOrder { sku quantity unitPrice }
  ... on ItemRemovedFromOrder { sku quantity }
  ... on PaymentAuthorized { amount paymentProvider authorizationId }
  ... on PaymentCaptured { amount }
  ... on PaymentCaptureReversed { amount reason }
  ... on OrderShipped { carrier trackingNumber shippedItems { sku quantity } }
  ... on OrderCancelled { reason }"""

CORPUS: list[tuple[str, dict[str, Any]]] = [
    ("""{ orders(first: 30) { edges { cursor node { id status currency totalAmount
        authorizedAmount capturedAmount version placedAt lastEventAt __typename
        items { sku quantity unitPrice lineTotal } customer { id name email } } }
        nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }""", {}),
    ("""query($s: [OrderStatus!]) { orders(first: 5, status: $s) { nodes { id status
        events { edges { cursor node { %s } } pageInfo { hasNextPage endCursor } } } } }"""
     % EVENT_FIELDS, {"s": ["SHIPPED", "CANCELLED"]}),
    ("""query($id: UUID!) { order(id: $id) { id ...o stateAt { status version totalAmount items {
        sku lineTotal } } early: stateAt(version: 1) { status version capturedAmount } } }
        fragment o on Order { customer { name orders(first: 2) { nodes { id } pageInfo {
        hasNextPage endCursor } } } events(first: 3, orderBy: OCCURRED_AT) { nodes { type
        order { id version } } } }""", {"id": "$ORDER"}),
    ("""query($id: UUID!, $types: [EventType!], $with: Boolean!) { order(id: $id) {
        a: events(types: $types) { nodes { type } } b: events(orderBy: RECORDED_AT, first: 2) {
        nodes { streamVersion } pageInfo { endCursor } } id @include(if: $with)
        status @skip(if: $with) } }""",
     {"id": "$ORDER", "types": ["ORDER_PLACED", "PAYMENT_CAPTURED"], "with": False}),
    ("""{ events(first: 40, types: [ORDER_SHIPPED, ORDER_CANCELLED]) { edges { cursor node {
        %s order { status } } } pageInfo { hasNextPage endCursor startCursor } } }""" % EVENT_FIELDS,
     {}),
    ("""query($id: UUID!) { event(id: $id) { ... on OrderEvent { id type } __typename } }""",
     {"id": "$EVENT"}),
    ("""query($id: UUID!) { customer(id: $id) { __typename id name email orders(first: 3) {
        edges { node { id customer { email } } } } } missing: order(id: $id) { id } }""",
     {"id": "$CUSTOMER"}),
    ("""query($after: String) { orders(first: 4, after: $after) { nodes { id } } }""",
     {"after": "$CURSOR"}),
    # an empty page of a non-empty list: no edge, so no start or end cursor (the look-ahead
    # row that tells hasNextPage is not an edge)
    ("""query($id: UUID!) { customer(id: $id) { orders(first: 0) { edges { cursor }
        pageInfo { hasNextPage startCursor endCursor } } } }""", {"id": "$CUSTOMER"}),
    ("""{ events(types: [ORDER_CANCELLED], occurredBefore: "2026-01-02T00:00:00Z") { nodes {
        occurredAt recordedAt ... on OrderCancelled { reason } } } }""", {}),
    ("""query($before: DateTime) { __typename orders(first: 10, placedBefore: $before) {
        nodes { placedAt } } }""", {"before": "2026-10-15T00:00:00+00:00"}),
    # as Apollo Client sends it (bench Q4): __typename everywhere, typed fragments, stateAt
    (OURS["Q4"], {"id": "$ORDER"}),
    ("""query($id: UUID!) { order(id: $id) { stateAt(asOf: "2026-06-01T00:00:00Z", axis: RECORDED) {
        __typename status version items { __typename sku } } } }""", {"id": "$ORDER"}),
]


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> dict[str, str]:
    await seed(pool, orders=40, customers=6, seed=12)
    order_id = await order_in(pool, OrderStatus.PAID)
    await append(pool, order_id, EventType.PAYMENT_CAPTURE_REVERSED,
                 {"amount": "25.00", "reason": "x"},
                 occurred_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=5))
    await append(pool, order_id, EventType.ORDER_CANCELLED,
                 {"reason": "trailing zeros", "reasonCode": "OTHER"},
                 occurred_at=datetime(2026, 1, 1, 12, 0, 1, 500000, tzinfo=UTC))
    row = await pool.fetchrow("select o.order_id, o.customer_id, e.event_id from orders_current o "
                              "join order_events e using (order_id) where o.status = 'SHIPPED' "
                              "order by o.order_id limit 1")
    page = await pool.fetchrow("select last_event_at, order_id from orders_current "
                               "order by last_event_at desc, order_id desc offset 3 limit 1")
    from gql.schema.pagination import encode_cursor

    return {"$ORDER": str(row["order_id"]), "$CUSTOMER": str(row["customer_id"]),
            "$EVENT": str(row["event_id"]),
            "$CURSOR": encode_cursor("o", page["last_event_at"], page["order_id"])}


async def _answers(database_url: str, compiled: bool, query: str,
                   variables: dict[str, Any]) -> tuple[str, int]:
    statements: list[str] = []

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await create_pool(database_url, min_size=1, max_size=2, on_connect=log_queries)
    try:
        app = create_app(Settings(database_url=database_url, compiled_reads=compiled), pool=pool)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            body = {"query": query, "variables": variables}
            first = await client.post("/graphql", json=body)
            assert "errors" not in first.json(), first.json()
            statements.clear()
            second = await client.post("/graphql", json=body)
    finally:
        await pool.close()
    return json.dumps(second.json()), len(statements)


@pytest.mark.parametrize(("query", "variables"), CORPUS, ids=[f"q{n}" for n in range(len(CORPUS))])
async def test_compiled_path_answers_like_the_resolvers(
    database_url: str, seeded: dict[str, str], query: str, variables: dict[str, Any],
) -> None:
    variables = {k: seeded.get(v, v) if isinstance(v, str) else v for k, v in variables.items()}
    reference, _ = await _answers(database_url, False, query, variables)
    fast, statements = await _answers(database_url, True, query, variables)
    assert statements == 1, "the compiled path was not taken"
    assert fast == reference


async def test_compiled_path_leaves_errors_to_the_resolvers(
    database_url: str, seeded: dict[str, str],
) -> None:
    query = "query($n: Int) { orders(first: $n) { nodes { id } } }"
    settings = Settings(database_url=database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        app = create_app(settings, pool=pool)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            ok = await client.post("/graphql", json={"query": query, "variables": {"n": 2}})
            assert len(ok.json()["data"]["orders"]["nodes"]) == 2
            refused = await client.post("/graphql", json={"query": query, "variables": {"n": 500}})
            assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            wrong = await client.post("/graphql", json={"query": query, "variables": {"n": "x"}})
            assert wrong.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    finally:
        await pool.close()


async def test_a_reused_plan_follows_each_requests_variables(
    database_url: str, seeded: dict[str, str], pool: asyncpg.Pool,
) -> None:
    """One document on one server, variables that change values and the statement's shape."""
    query = """query($id: UUID!, $with: Boolean!, $n: Int, $by: EventOrder, $types: [EventType!])
        { order(id: $id) { id status @include(if: $with)
          events(first: $n, orderBy: $by, types: $types) { nodes { streamVersion } } } }"""
    other = str(await pool.fetchval("select order_id from orders_current where order_id <> $1 "
                                    "order by order_id limit 1", uuid.UUID(seeded["$ORDER"])))
    requests = [{"id": seeded["$ORDER"], "with": True, "n": 2, "by": "STREAM_VERSION"},
                {"id": other, "with": True, "n": 2, "by": "STREAM_VERSION"},
                {"id": other, "with": False, "n": 3, "by": "OCCURRED_AT"},
                # an absent filter compiles to a literal null: a present one needs its own plan
                {"id": other, "with": False, "n": 3, "by": "OCCURRED_AT",
                 "types": ["ITEM_ADDED_TO_ORDER"]},
                {"id": seeded["$ORDER"], "with": True, "n": 2, "by": "STREAM_VERSION"}]
    apps = {flag: create_app(Settings(database_url=database_url, compiled_reads=flag), pool=pool)
            for flag in (True, False)}
    answers: dict[bool, list[Any]] = {True: [], False: []}
    for flag, app in apps.items():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            for variables in [requests[0], *requests]:  # the first one only teaches the path
                response = await client.post("/graphql", json={"query": query,
                                                               "variables": variables})
                answers[flag].append(response.json())
    assert answers[True] == answers[False]
    assert len({json.dumps(a) for a in answers[True]}) == 4  # the variables did change answers
