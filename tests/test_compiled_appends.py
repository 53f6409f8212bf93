"""Compiled append mutations answer exactly what the resolvers answer, errors included."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gql.config import Settings
from gql.http.app import create_app
from gql.store.connection import create_pool
from tests.factories import customer

EVENT = """__typename id streamVersion type occurredAt correlationId causationId schemaVersion
  payload actor { type id }
  ... on OrderPlaced { customerId currency items { sku quantity unitPrice lineTotal } }
  ... on ItemAddedToOrder { sku quantity unitPrice }
  ... on OrderCancelled { reason }"""
ORDER = """id status currency totalAmount authorizedAmount capturedAmount version placedAt
  lastEventAt items { sku quantity unitPrice lineTotal }"""
TWO = """mutation($order: UUID!, $customer: UUID!, $e1: UUID, $e2: UUID, $at: DateTime,
                  $expected: Int, $with: Boolean!) {
  placed: placeOrder(input: {orderId: $order, customerId: $customer, currency: "EUR",
      eventId: $e1, occurredAt: $at, actor: {type: "user", id: "u-1"},
      items: [{sku: "MUG", quantity: 1, unitPrice: "14.5"}]}) {
    deduplicated event { %s } order { %s } }
  added: addItemToOrder(input: {orderId: $order, sku: "TEA", quantity: 2, unitPrice: "8.90",
      eventId: $e2, occurredAt: $at, expectedVersion: $expected}) {
    __typename deduplicated event { id ... on ItemAddedToOrder { sku } } order {
      version totalAmount status @include(if: $with) } } }""" % (EVENT, ORDER)
CANCEL = """mutation($order: UUID!, $e: UUID) { cancelOrder(input: {orderId: $order, reason: "r",
    occurredAt: "2026-03-02T00:00:00Z",
    eventId: $e}) { event { %s } order { %s } } }""" % (EVENT, ORDER)
NESTED = """mutation($order: UUID!, $customer: UUID!) { placeOrder(input: {orderId: $order,
    customerId: $customer, currency: "EUR"}) { order { id customer { name } events {
    nodes { type } } } } }"""
AT = "2026-03-01T10:00:00+00:00"


async def _run(database_url: str, compiled: bool) -> tuple[list[str], list[list[str]]]:
    """The scenario's responses, with this run's ids replaced by names, and the statements
    each request ran."""
    ids: dict[str, str] = {}

    def new(name: str) -> str:
        ids[name] = str(uuid.uuid4())
        return ids[name]

    statements: list[str] = []

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool = await create_pool(database_url, min_size=1, max_size=2, on_connect=log_queries)
    try:
        ids["customer"] = str(await customer(pool, name="Grace Hopper"))
        app = create_app(Settings(database_url=database_url, compiled_reads=compiled), pool=pool)
        two = {"customer": ids["customer"], "at": AT, "with": True}
        requests: list[tuple[str, dict[str, Any]]] = [
            # the resolvers answer; the path learns
            (TWO, {**two, "order": new("teach"), "e1": new("t1"), "e2": new("t2")}),
            (TWO, {**two, "order": new("o1"), "e1": new("e1"), "e2": new("e2")}),
            (TWO, {**two, "order": ids["o1"], "e1": ids["e1"], "e2": ids["e2"]}),  # retried
            (TWO, {**two, "order": new("o2"), "e1": new("e4"), "e2": new("e5"), "expected": 7,
                   "with": False}),  # the second field fails
            (TWO, {**two, "order": new("o3"), "e1": new("e6"), "e2": new("e7"),
                   "customer": str(uuid.uuid4())}),  # the first field fails
            (CANCEL, {"order": ids["o1"], "e": new("e8")}),
            (CANCEL, {"order": ids["o1"], "e": new("e3")}),  # INVALID_TRANSITION
            (CANCEL, {"order": new("o4"), "e": new("e9")}),  # ORDER_NOT_FOUND
            (NESTED, {"order": new("o5"), "customer": ids["customer"]}),
            (NESTED, {"order": new("o6"), "customer": ids["customer"]}),
        ]
        answers, ran = [], []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            for query, variables in requests:
                statements.clear()
                response = await client.post("/graphql", json={"query": query,
                                                               "variables": variables})
                assert response.status_code == 200
                body = response.json()  # no replica: no position token, no round trip for one
                assert "extensions" not in body and "x-ordergraph-position" not in response.headers
                text = json.dumps(body)
                for name, value in ids.items():
                    text = text.replace(value, name)
                answers.append(text)
                ran.append(list(statements))
            # over GET a known mutation is still refused, and appends nothing
            before = await pool.fetchval("select count(*) from order_events")
            refused = await client.get("/graphql", params={"query": CANCEL, "variables": json.dumps(
                {"order": ids["o2"]})})
            assert refused.status_code == 405
            assert await pool.fetchval("select count(*) from order_events") == before
        log = await pool.fetch("select order_id::text, stream_version, event_type, payload "
                               "from order_events where order_id = any($1::uuid[])",
                               [ids[k] for k in ("o1", "o2", "o3", "o4")])
        names = {value: name for name, value in ids.items()}
        text = json.dumps(sorted([names[r["order_id"]], r["stream_version"], r["event_type"],
                                  r["payload"]] for r in log))
        answers.append(text.replace(ids["customer"], "customer"))
        return answers, ran
    finally:
        await pool.close()


async def test_compiled_appends_answer_like_the_resolvers(database_url: str) -> None:
    reference, _ = await _run(database_url, compiled=False)
    answers, ran = await _run(database_url, compiled=True)
    assert answers == reference
    first = json.loads(answers[1])
    assert first["data"]["placed"]["order"]["totalAmount"] == "14.50"
    assert first["data"]["added"]["order"] == {"version": 2, "totalAmount": "32.30", "status": "PLACED"}
    assert json.loads(answers[2])["data"]["added"]["deduplicated"] is True
    failed_second = json.loads(answers[3])
    assert failed_second["data"] is None
    assert failed_second["errors"][0]["path"] == ["added"]
    assert failed_second["errors"][0]["extensions"]["code"] == "WRONG_EXPECTED_VERSION"
    assert json.loads(answers[4])["errors"][0]["extensions"]["code"] == "CUSTOMER_NOT_FOUND"
    assert json.loads(answers[6])["errors"][0]["extensions"]["code"] == "INVALID_TRANSITION"
    assert json.loads(answers[7])["errors"][0]["extensions"]["code"] == "ORDER_NOT_FOUND"
    # o2 kept its placement, o3 and o4 have nothing
    assert [row[:3] for row in json.loads(answers[-1])] == [
        ["o1", 1, "OrderPlaced"], ["o1", 2, "ItemAddedToOrder"], ["o1", 3, "OrderCancelled"],
        ["o2", 1, "OrderPlaced"]]
    # the compiled path: one statement per mutation field, nothing else
    for n in (1, 2, 3):
        assert len(ran[n]) == 2 and all("og_append" in s and "convert_to" in s for s in ran[n])
    assert len(ran[6]) == 1 and "convert_to" in ran[6][0]
    # an order's customer or timeline after an append is left to the resolvers
    assert not any("convert_to" in s for s in ran[9])


@pytest.mark.parametrize("bad", [{"order": "not-a-uuid"}, {"order": None}])
async def test_bad_variables_on_a_known_mutation_append_nothing(
    database_url: str, pool: asyncpg.Pool, bad: dict[str, Any],
) -> None:
    app = create_app(Settings(database_url=database_url), pool=pool)
    order = str(uuid.uuid4())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        placed = await client.post("/graphql", json={"query": NESTED.replace(
            " customer { name } events {\n    nodes { type } }", ""), "variables": {
            "order": order, "customer": str(await customer(pool))}})
        assert "errors" not in placed.json()
        before = await pool.fetchval("select count(*) from order_events")
        response = await client.post("/graphql", json={"query": CANCEL, "variables": bad})
        again = await client.post("/graphql", json={"query": CANCEL, "variables": bad})
    for answer in (response.json(), again.json()):
        assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await pool.fetchval("select count(*) from order_events") == before


async def test_appends_are_counted_by_type_and_outcome(
    database_url: str, pool: asyncpg.Pool,
) -> None:
    from prometheus_client import REGISTRY

    def count(event_type: str, outcome: str) -> float:
        return REGISTRY.get_sample_value("ordergraph_appends_total",
                                         {"type": event_type, "outcome": outcome}) or 0

    before = {key: count(*key) for key in [("OrderPlaced", "appended"),
                                           ("OrderPlaced", "deduplicated"),
                                           ("OrderCancelled", "ORDER_NOT_FOUND")]}
    app = create_app(Settings(database_url=database_url), pool=pool)
    variables = {"order": str(uuid.uuid4()), "customer": str(await customer(pool)),
                 "e1": str(uuid.uuid4()), "e2": str(uuid.uuid4()), "with": True}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        for _ in range(2):  # the second time through the compiled path, deduplicated
            await client.post("/graphql", json={"query": TWO, "variables": variables})
        await client.post("/graphql", json={"query": CANCEL, "variables": {
            "order": str(uuid.uuid4())}})
    assert count("OrderPlaced", "appended") == before[("OrderPlaced", "appended")] + 1
    assert count("OrderPlaced", "deduplicated") == before[("OrderPlaced", "deduplicated")] + 1
    assert count("OrderCancelled", "ORDER_NOT_FOUND") == before[("OrderCancelled", "ORDER_NOT_FOUND")] + 1


FULFIL = """mutation($order: UUID!, $customer: UUID!, $e0: UUID, $e1: UUID, $e2: UUID,
                     $e3: UUID, $e4: UUID, $at: DateTime!, $correlation: String!) {
  p: placeOrder(input: {orderId: $order, customerId: $customer, currency: "EUR",
      eventId: $e0, occurredAt: $at,
      items: [{sku: "A", quantity: 2, unitPrice: "3.3"}, {sku: "B", quantity: 1, unitPrice: "10"}]}) {
    event { %s } }
  r: removeItemFromOrder(input: {orderId: $order, sku: "A", quantity: 1, eventId: $e1,
      occurredAt: $at}) {
    order { totalAmount items { sku quantity unitPrice lineTotal } } }
  a: authorizePayment(input: {orderId: $order, amount: "13.3", paymentProvider: "card",
      authorizationId: $correlation, eventId: $e2, occurredAt: $at}) {
    event { ... on PaymentAuthorized { amount paymentProvider authorizationId } }
    order { status authorizedAmount } }
  c: capturePayment(input: {orderId: $order, amount: "13.30", eventId: $e3, occurredAt: $at}) {
    event { __typename ... on PaymentCaptured { amount } } order { status capturedAmount } }
  s: shipOrder(input: {orderId: $order, carrier: "DHL", trackingNumber: "T-1", eventId: $e4,
      occurredAt: $at}) {
    deduplicated event { %s ... on OrderShipped { carrier trackingNumber
      shippedItems { sku quantity } } } order { status version } } }""" % (EVENT, EVENT)


async def test_a_whole_fulfilment_answers_like_the_resolvers(
    database_url: str, pool: asyncpg.Pool,
) -> None:
    """Every append mutation but cancel (covered above), typed data and defaults included."""
    from prometheus_client import REGISTRY

    def compiled_runs() -> float:
        return REGISTRY.get_sample_value("ordergraph_compiled_operations_total",
                                         {"operation": "append", "outcome": "ran"}) or 0

    customer_id = str(await customer(pool))
    answers: dict[bool, list[str]] = {}
    runs = {}
    for compiled in (False, True):
        runs[compiled] = compiled_runs()
        app = create_app(Settings(database_url=database_url, compiled_reads=compiled), pool=pool)
        answers[compiled] = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as client:
            for _ in range(2):  # the first run teaches the compiled path
                ids = {"order": str(uuid.uuid4()), "correlation": str(uuid.uuid4()),
                       **{f"e{n}": str(uuid.uuid4()) for n in range(5)}}
                response = await client.post("/graphql", json={"query": FULFIL, "variables": {
                    "order": ids["order"], "customer": customer_id, "at": AT,
                    "correlation": ids["correlation"], **{f"e{n}": ids[f"e{n}"] for n in range(5)}}})
                text = json.dumps(response.json())
                for name, value in ids.items():
                    text = text.replace(value, name)
                answers[compiled].append(text.replace(customer_id, "customer"))
        runs[compiled] = compiled_runs() - runs[compiled]
    assert runs == {False: 0, True: 1}  # the second compiled request took the compiled path
    assert answers[True] == answers[False]
    assert "errors" not in answers[True][0], answers[True][0]
    shipped = json.loads(answers[True][1])["data"]
    assert shipped["s"]["order"] == {"status": "SHIPPED", "version": 5}
    assert shipped["s"]["event"]["shippedItems"] == [{"sku": "A", "quantity": 1},
                                                     {"sku": "B", "quantity": 1}]
    assert shipped["r"]["order"]["totalAmount"] == "13.30"
