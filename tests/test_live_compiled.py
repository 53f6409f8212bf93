"""Compiled subscription payloads: equal to the resolvers' payloads, one statement per ring."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from gql.config import Settings
from gql.events import EventType, Position
from gql.schema import build_schema
from gql.schema.compiled import Compiler, Unsupported, with_viewer
from gql.schema.plans import compile_subscription
from gql.store.connection import create_pool
from tests.conftest import LiveServer, serving
from tests.factories import append, customer, payload_for
from tests.ws import (
    LEGACY,
    ORDER_EVENTS,
    TRANSPORT,
    WAIT,
    Client,
    client,
    subscriptions_gauge,
    until_subscribed,
)

LIFECYCLE = [EventType.ORDER_PLACED, EventType.ITEM_ADDED_TO_ORDER, EventType.PAYMENT_AUTHORIZED,
             EventType.PAYMENT_CAPTURED, EventType.ORDER_SHIPPED]
ALL = set(LIFECYCLE)
CHANGES = ALL - {EventType.ITEM_ADDED_TO_ORDER}  # the item added leaves the status as it is

EVENT_FIELDS = """id orderId streamVersion globalPosition type occurredAt recordedAt
    correlationId causationId schemaVersion"""
# (document, variables besides $o, the events it delivers); every one compiles
DOCUMENTS: list[tuple[str, dict[str, Any], set[EventType]]] = [
    (f"subscription($o: UUID) {{ orderEvents(orderId: $o) {{ {EVENT_FIELDS} }} }}", {}, ALL),
    ("""subscription($o: UUID) { orderEvents(orderId: $o) {
        __typename payload actor { __typename type id } } }""", {}, ALL),
    ("""fragment Base on OrderEvent { id type __typename }
        fragment Shipped on OrderShipped { carrier trackingNumber shippedItems { sku quantity } }
        subscription($o: UUID) { orderEvents(orderId: $o) {
          ...Base ...Shipped
          ... on OrderPlaced { customerId currency items { sku quantity unitPrice lineTotal } }
          ... on PaymentAuthorized { amount paymentProvider authorizationId }
          ... on ItemAddedToOrder { sku quantity unitPrice }
          ... on OrderShipped { carrier } } }""", {}, ALL),
    ("""subscription($o: UUID, $withOrder: Boolean!, $first: Int) {
        e: orderEvents(orderId: $o) { v: streamVersion kind: type
          order @include(if: $withOrder) { id status totalAmount customer { name }
            events(first: $first) { nodes { streamVersion } } } } }""",
     {"withOrder": True, "first": 2}, ALL),
    ("""subscription($o: UUID) { orderStatusChanged(orderId: $o) {
        __typename previousStatus status order { id status totalAmount customer { name } }
        event { __typename id type ... on OrderShipped { carrier trackingNumber } } } }""",
     {}, CHANGES),
    ("""fragment Change on OrderStatusChange { from: previousStatus to: status }
        subscription($o: UUID, $statuses: [OrderStatus!]) {
          changed: orderStatusChanged(orderId: $o, statuses: $statuses) {
            ...Change event { streamVersion actor { type } order { version } } } }""",
     {"statuses": ["PLACED", "PAID", "SHIPPED"]},
     {EventType.ORDER_PLACED, EventType.PAYMENT_CAPTURED, EventType.ORDER_SHIPPED}),
]


async def renders(base_url: str, source: str = "live") -> float:
    """How many statements rendered subscription payloads so far (in the tests' process)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf'^ordergraph_live_renders_total{{source="{source}"}} ([0-9.e+]+)$', text,
                      re.MULTILINE)
    return float(found[1]) if found else 0.0


async def _subscribe_all(ws: Client, order_id: uuid.UUID) -> None:
    for i, (document, variables, _) in enumerate(DOCUMENTS):
        await ws.subscribe(document, f"d{i}", o=str(order_id), **variables)


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_compiled_payloads_equal_the_resolvers_payloads(database_url: str,
                                                              protocol: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        customer_id, order_id = await customer(pool), uuid.uuid4()
        async with serving(database_url) as compiled, \
                serving(database_url, compiled_reads=False) as resolvers, \
                client(compiled.ws_url, protocol) as fast, client(resolvers.ws_url, protocol) as slow:
            baseline = await subscriptions_gauge(compiled.url)  # one process: both servers
            await _subscribe_all(fast, order_id)
            await _subscribe_all(slow, order_id)
            await until_subscribed(compiled.url, baseline + 2 * len(DOCUMENTS))
            before = await renders(compiled.url)
            got: dict[str, list[Any]] = {"fast": [], "slow": []}
            for event_type in LIFECYCLE:
                payload = payload_for(event_type, customer_id)
                if "amount" in payload:
                    payload["amount"] = "28.00"  # with the added item
                await append(pool, order_id, event_type, payload)
                # each event reaches every subscription before the next changes the order
                for name, ws in (("fast", fast), ("slow", slow)):
                    got[name] += [await ws.data(f"d{i}") for i, (_, _, delivers)
                                  in enumerate(DOCUMENTS) if event_type in delivers]
            assert await renders(compiled.url) > before, "the compiled path rendered them"
    finally:
        await pool.close()
    # same values, same order of keys
    assert [json.dumps(p) for p in got["fast"]] == [json.dumps(p) for p in got["slow"]]
    assert len(got["fast"]) == sum(len(delivers) for _, _, delivers in DOCUMENTS)


async def test_a_ring_renders_with_one_statement_per_shared_selection(database_url: str) -> None:
    """Six subscribers of two selections; three events committed behind a running transaction
    reach the hub in one read: two statements render them for all six."""
    other = "subscription($o: UUID) { orderEvents(orderId: $o) { streamVersion order { version } } }"
    pool = await create_pool(database_url, min_size=2, max_size=4)
    try:
        customer_id = await customer(pool)
        orders = [uuid.uuid4() for _ in range(3)]
        for order_id in orders:
            await append(pool, order_id, EventType.ORDER_PLACED,
                         payload_for(EventType.ORDER_PLACED, customer_id))
        async with serving(database_url) as server:
            baseline = await subscriptions_gauge(server.url)
            async with contextlib.AsyncExitStack() as stack:
                sockets = [await stack.enter_async_context(
                    client(server.ws_url, TRANSPORT if i % 2 else LEGACY)) for i in range(6)]
                for i, ws in enumerate(sockets):
                    if i < 4:
                        await ws.subscribe(ORDER_EVENTS, orderId=str(orders[i % 3]))
                    else:
                        await ws.subscribe(other)
                await until_subscribed(server.url, baseline + 6)
                before = await renders(server.url)
                async with pool.acquire() as blocker:
                    holding = blocker.transaction()
                    await holding.start()
                    await blocker.fetchval("select pg_current_xact_id()")  # holds back the log
                    for order_id in orders:
                        await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                     payload_for(EventType.ITEM_ADDED_TO_ORDER))
                    await asyncio.sleep(0.2)
                    await holding.rollback()
                got = [await ws.collect(1 if i < 4 else 3) for i, ws in enumerate(sockets)]
                statements = await renders(server.url) - before
    finally:
        await pool.close()
    assert statements == 2
    assert [[e["orderEvents"]["orderId"] for e in g] for g in got[:4]] == [
        [str(orders[i % 3])] for i in range(4)]
    assert [[e["orderEvents"]["streamVersion"] for e in g] for g in got[4:]] == [[2, 2, 2]] * 2
    assert got[4] == got[5]


async def test_replay_then_live_has_no_gap_and_no_duplicate(database_url: str,
                                                            live_path_pages: None) -> None:
    """Replayed in pages (one statement each) while a writer appends, then live."""
    pool = await create_pool(database_url, min_size=2, max_size=4)
    try:
        customer_id, order_id = await customer(pool), uuid.uuid4()
        await append(pool, order_id, EventType.ORDER_PLACED,
                     payload_for(EventType.ORDER_PLACED, customer_id))
        for _ in range(11):
            await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                         payload_for(EventType.ITEM_ADDED_TO_ORDER))
        async with serving(database_url) as server, client(server.ws_url) as ws:
            before = await renders(server.url, "replay")
            await ws.subscribe(ORDER_EVENTS, orderId=str(order_id), after=Position(0, 0).encode())

            async def write() -> None:
                for _ in range(10):
                    await append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                 payload_for(EventType.ITEM_ADDED_TO_ORDER))

            writer = asyncio.create_task(write())
            seen = [e["orderEvents"]["streamVersion"] for e in await ws.collect(22)]
            await writer
            pages = await renders(server.url, "replay") - before
    finally:
        await pool.close()
    assert seen == list(range(1, 23))
    assert pages >= 3  # 12 stored events, 5 to a page


@pytest.fixture
def live_path_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    from gql import live

    monkeypatch.setattr(live, "REPLAY_PAGE", 5)


async def test_a_failing_render_falls_back_to_the_resolvers(
        live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the database went away")

    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        customer_id, order_id = await customer(pool), uuid.uuid4()
        async with client(live_server.ws_url) as ws:
            await ws.subscribe(ORDER_EVENTS, orderId=str(order_id))
            await until_subscribed(live_server.url, 1)
            monkeypatch.setattr("gql.schema.livepath.render_events", broken)
            await append(pool, order_id, EventType.ORDER_PLACED,
                         payload_for(EventType.ORDER_PLACED, customer_id))
            [event] = await ws.collect(1)
    finally:
        await pool.close()
    assert event["orderEvents"]["orderId"] == str(order_id)
    assert event["orderEvents"]["type"] == "ORDER_PLACED"


def test_every_document_here_compiles_and_only_subscriptions_do() -> None:
    """The payload tests above compare the two paths only if the compiler renders them."""
    schema = build_schema()._schema
    settings = Settings(database_url="")
    for document, variables, _ in DOCUMENTS:
        parsed = parse(document)
        [operation] = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
        coerced = get_variable_values(schema, operation.variable_definitions or [],
                                      {"o": None, **variables})
        plan = compile_subscription(Compiler(schema, parsed, operation,
                                             with_viewer(coerced, None), settings))
        assert "og_sees" in plan.sql and "og_event" in plan.sql
    query = parse("query { event(id: \"00000000-0000-0000-0000-000000000000\") { id } }")
    with pytest.raises(Unsupported):
        compile_subscription(Compiler(schema, query, query.definitions[0],  # type: ignore[arg-type]
                                      with_viewer({}, None), settings))
