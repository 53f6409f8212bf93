"""A hostile client over real HTTP: bounded cost, one operation per request, every mistake a
coded error, and nothing changes in the database when a request fails."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

import asyncpg
import httpx
import pytest

from gql.config import Settings
from tests.conftest import LiveServer, serving
from tests.ws import eventually

GRAPHQL_RESPONSE = "application/graphql-response+json"
NESTED = ("orders(first:100){nodes{id customer{orders(first:100){nodes{id customer{orders(first:100)"
          "{nodes{id events(first:100){nodes{id}}}}}}}}}}")
ATTACK = "{ %s }" % " ".join(f"a{n}: {NESTED}" for n in range(10))
BY_VARIABLE = """query Pages($n: Int) { orders(first: $n) { nodes { id customer {
  orders(first: $n) { nodes { id events(first: $n) { nodes { id type } } } } } } } }"""
EDGE = "9999-12-31T23:59:59-14:00"  # still 9999 where it was written, 10000 in UTC
STATE = """select (select count(*) from order_events),
  (select md5(coalesce(string_agg(e::text, '|' order by global_position), '')) from order_events e),
  (select md5(coalesce(string_agg(o::text, '|' order by order_id), '')) from orders_current o),
  (select md5(coalesce(string_agg(c::text, '|' order by customer_id), '')) from customers c)"""


async def db_state(server: LiveServer) -> tuple[Any, ...]:
    """Everything a request could change: the log, the read model and the customers."""
    conn = await asyncpg.connect(server.database_url)
    try:
        return tuple(await conn.fetchrow(STATE))
    finally:
        await conn.close()


async def post(server: LiveServer, query: str, variables: dict[str, Any] | None = None,
               **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await http.post("/graphql", json={"query": query, "variables": variables}, **kwargs)


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


async def placed_order(server: LiveServer) -> dict[str, str]:
    """A new customer with a PLACED EUR order of 2 x 12.50 of sku MUG, through the API."""
    customer = await post(server, 'mutation { registerCustomer(input: {name: "Eve", '
                          'email: "eve@example.com"}) { id } }')
    customer_id = customer.json()["data"]["registerCustomer"]["id"]
    placed = await post(server, """mutation($c: UUID!) { placeOrder(input: {customerId: $c,
        currency: "EUR", items: [{sku: "MUG", quantity: 2, unitPrice: "12.50"}]}) {
        order { id } } }""", {"c": customer_id})
    return {"customer": customer_id, "order": placed.json()["data"]["placeOrder"]["order"]["id"]}


async def test_cost_refuses_the_nested_alias_query_before_it_runs(live_server: LiveServer) -> None:
    """Refused by its estimated cost, before any SQL (how long the check takes is measured by
    `python -m bench.hostile --micro`, not asserted by a clock here)."""
    before = await db_state(live_server)
    response = await post(live_server, ATTACK)
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["maxCost"] == Settings(database_url="").max_cost
    assert error["extensions"]["cost"] > error["extensions"]["maxCost"]
    assert "data" not in response.json()
    strict = await post(live_server, ATTACK, headers={"accept": GRAPHQL_RESPONSE})
    assert strict.status_code == 400 and codes(strict) == ["QUERY_TOO_COMPLEX"]
    assert await db_state(live_server) == before


async def test_cost_follows_page_sizes_given_as_variables(live_server: LiveServer) -> None:
    # small pages run (and the document is then compiled); the same document with large
    # pages is refused by the compiled path too
    for _ in range(3):
        small = await post(live_server, BY_VARIABLE, {"n": 2})
        assert "errors" not in small.json(), small.json()
    large = await post(live_server, BY_VARIABLE, {"n": 100})
    assert codes(large) == ["QUERY_TOO_COMPLEX"]
    assert large.json()["errors"][0]["extensions"]["cost"] > 100 * 100 * 100


async def test_cost_ceiling_is_a_setting(database_url: str, live_server: LiveServer) -> None:
    async with serving(database_url, max_cost=20) as server:
        refused = await post(server, "{ orders(first: 10) { nodes { id status } } }")
        assert codes(refused) == ["QUERY_TOO_COMPLEX"]
        # orders, nodes, and id and status on each of 10 rows
        assert refused.json()["errors"][0]["extensions"] == {
            "code": "QUERY_TOO_COMPLEX", "cost": 1 + 1 + 10 * 2, "maxCost": 20}
        assert "errors" not in (await post(server, "{ orders(first: 5) { nodes { id } } }")).json()


async def test_a_slow_request_ends_at_its_time_budget(database_url: str, live_server: LiveServer) -> None:
    blocker = await asyncpg.connect(database_url)
    async with serving(database_url, request_timeout=1.0) as server:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("lock table orders_current in access exclusive mode")
        try:
            started = time.perf_counter()
            response = await post(server, "{ orders { nodes { id } } }")
            elapsed = time.perf_counter() - started
        finally:
            await transaction.rollback()
            await blocker.close()
    assert response.status_code in (200, 503)
    assert "REQUEST_TIMEOUT" in codes(response), response.text
    assert elapsed < 5, elapsed


async def test_work_stops_when_the_client_goes_away(live_server: LiveServer) -> None:
    blocker = await asyncpg.connect(live_server.database_url)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("lock table orders_current in access exclusive mode")
    waiting = """select count(*) from pg_stat_activity where datname = current_database()
                 and pid <> pg_backend_pid() and wait_event_type = 'Lock'"""

    async def blocked(count: int) -> bool:
        return await blocker.fetchval(waiting) == count

    try:
        request = asyncio.create_task(post(live_server, "{ orders { nodes { id } } }"))
        await eventually(lambda: blocked(1))  # the server's statement waits for the lock
        request.cancel()  # the client goes away
        with contextlib.suppress(asyncio.CancelledError):
            await request
        await eventually(lambda: blocked(0))  # ...and so does the statement, the lock still held
    finally:
        await transaction.rollback()
        await blocker.close()


async def test_several_operations_without_operation_name_run_nothing(live_server: LiveServer) -> None:
    before = await db_state(live_server)
    document = ('mutation Register { registerCustomer(input: {name: "Mallory", '
                'email: "mallory@example.com"}) { id } } query Orders { orders { nodes { id } } }')
    response = await post(live_server, document)
    assert codes(response) == ["BAD_REQUEST"]
    assert "operationName" in response.json()["errors"][0]["message"]
    strict = await post(live_server, document, headers={"accept": GRAPHQL_RESPONSE})
    assert 400 <= strict.status_code < 500 and codes(strict) == ["BAD_REQUEST"]
    assert await db_state(live_server) == before


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_unknown_operation_name_is_a_coded_400(live_server: LiveServer, method: str) -> None:
    params = {"query": "query Orders { orders { nodes { id } } }", "operationName": "Nope"}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        response = await (http.post("/graphql", json=params) if method == "POST"
                          else http.get("/graphql", params=params))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert codes(response) == ["BAD_REQUEST"]


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


READ_MISTAKES = [
    ('{ events(after: "ffffffffffffffff-ffffffffffffffff") { nodes { id } } }', None),
    ('query($a: String) { events(after: $a) { nodes { id } } }',
     {"a": "ffffffffffffffff-ffffffffffffffff"}),
    ('query($a: String) { orders(after: $a) { nodes { id } } }',
     {"a": _cursor(f"o|{EDGE}|7f0e2c1a-0000-4000-8000-000000000000")}),
    ('query($a: String) { orders(first: 1) { nodes { events(after: $a) { nodes { id } } } } }',
     {"a": _cursor("v|99999999999999999999999")}),
    ('query($t: DateTime) { orders(placedBefore: $t) { nodes { id } } }', {"t": EDGE}),
    ('{ orders(placedBefore: "%s") { nodes { id } } }' % EDGE, None),
    ('query($t: DateTime) { events(occurredAfter: $t) { nodes { id } } }', {"t": EDGE}),
    ('query($t: DateTime) { events(occurredAfter: $t) { nodes { id } } }',
     {"t": "0001-01-01T00:00:00Z"}),
    ('query($t: DateTime) { orders(first: 1) { nodes { stateAt(asOf: $t) { status } } } }',
     {"t": EDGE}),
]


@pytest.mark.parametrize(("query", "variables"), READ_MISTAKES)
async def test_read_mistakes_are_bad_user_input(live_server: LiveServer, query: str,
                                                variables: dict[str, Any] | None) -> None:
    response = await post(live_server, query, variables)
    assert response.status_code == 200
    assert codes(response) == ["BAD_USER_INPUT"], response.json()


ADD = """mutation($input: AddItemToOrderInput!) { addItemToOrder(input: $input) {
  event { id } } }"""
CANCEL = "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) { event { id } } }"
PLACE = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { event { id } } }"
ITEM = {"sku": "TEA", "quantity": 1, "unitPrice": "4.50"}
# (mutation, input changes, the field named in the error or None, words the message has)
WRITE_MISTAKES: list[tuple[str, dict[str, Any], str | None, str]] = [
    (ADD, {"unitPrice": "1e999"}, "unitPrice", "decimal amount"),
    (ADD, {"unitPrice": "1e2"}, "unitPrice", "decimal amount"),
    (ADD, {"unitPrice": " 1.00"}, "unitPrice", "decimal amount"),
    (ADD, {"unitPrice": "12.345"}, "unitPrice", "EUR amounts have at most 2"),
    (ADD, {"unitPrice": "123456789012345678901234567"}, "unitPrice", "15 before"),
    (ADD, {"quantity": 2147483647}, "quantity", "at most"),
    (ADD, {"sku": "MU\x00G"}, "sku", "NUL"),
    (ADD, {"actor": {"type": "us\x00er", "id": "u-1"}}, "actor.type", "NUL"),
    (ADD, {"occurredAt": EDGE}, "occurredAt", "1970"),
    (ADD, {"occurredAt": "0001-01-01T00:00:00Z"}, "occurredAt", "1970"),
    (CANCEL, {"reason": "no\x00pe"}, "reason", "NUL"),
]


@pytest.mark.parametrize(("mutation", "change", "field", "words"), WRITE_MISTAKES)
async def test_write_mistakes_are_bad_user_input_and_append_nothing(
    live_server: LiveServer, mutation: str, change: dict[str, Any], field: str | None, words: str,
) -> None:
    ids = await placed_order(live_server)
    before = await db_state(live_server)
    base = {"orderId": ids["order"], **(ITEM if mutation == ADD else {"reason": "changed mind"})}
    response = await post(live_server, mutation, {"input": {**base, **change}})
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    if field is not None:
        assert error["extensions"]["field"] == field, error
    assert words in error["message"], error
    assert await db_state(live_server) == before


@pytest.mark.parametrize(("change", "field"), [
    ({"currency": "ZZZ"}, "currency"),
    ({"currency": "eur"}, "currency"),
    ({"items": [{"sku": "A", "quantity": 1, "unitPrice": "1.5"}], "currency": "JPY"},
     "items[0].unitPrice"),
    ({"items": [{"sku": "A", "quantity": 1, "unitPrice": "1.0001"}], "currency": "KWD"},
     "items[0].unitPrice"),
])
async def test_money_follows_the_currency(live_server: LiveServer, change: dict[str, Any],
                                          field: str) -> None:
    ids = await placed_order(live_server)
    before = await db_state(live_server)
    response = await post(live_server, PLACE, {"input": {"customerId": ids["customer"],
                                                         "currency": "EUR", **change}})
    (error,) = response.json()["errors"]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert await db_state(live_server) == before
    fine = await post(live_server, PLACE, {"input": {"customerId": ids["customer"], "currency": "KWD",
        "items": [{"sku": "A", "quantity": 1, "unitPrice": "1.125"}]}})
    assert "errors" not in fine.json(), fine.json()


async def test_head_answers_as_get_without_a_body(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        got = await http.get("/graphql", params={"query": "{__typename}"})
        head = await http.head("/graphql", params={"query": "{__typename}"})
    assert got.status_code == head.status_code == 200
    assert got.json() == {"data": {"__typename": "Query"}}
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
async def test_post_needs_a_json_content_type(live_server: LiveServer, content_type: str | None) -> None:
    ids = await placed_order(live_server)
    before = await db_state(live_server)
    body = ('{"query": "mutation { cancelOrder(input: {orderId: \\"%s\\", reason: \\"csrf\\"}) '
            '{ event { id } } }"}' % ids["order"])
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        response = await http.post("/graphql", content=body.encode(), headers=headers)
    assert response.status_code == 415
    assert codes(response) == ["BAD_REQUEST"]
    assert await db_state(live_server) == before


async def test_browser_requests_from_other_sites_are_refused(live_server: LiveServer) -> None:
    ids = await placed_order(live_server)
    before = await db_state(live_server)
    cancel = 'mutation { cancelOrder(input: {orderId: "%s", reason: "csrf"}) { event { id } } }'
    refused = await post(live_server, cancel % ids["order"],
                         headers={"origin": "http://evil.example"})
    assert refused.status_code == 403 and codes(refused) == ["FORBIDDEN"]
    assert await db_state(live_server) == before
    own = await post(live_server, "{ __typename }", headers={"origin": live_server.url})
    assert own.json() == {"data": {"__typename": "Query"}}


async def test_allowed_origins_and_hosts_are_settings(database_url: str, live_server: LiveServer) -> None:
    async with serving(database_url, allowed_origins="http://app.example",
                       allowed_hosts="api.example") as server:
        ok = await post(server, "{ __typename }",
                        headers={"origin": "http://app.example", "host": "api.example"})
        assert ok.json() == {"data": {"__typename": "Query"}}
        loopback = await post(server, "{ __typename }")  # 127.0.0.1 is no longer listed
        assert loopback.status_code == 421


async def test_unknown_hosts_are_refused(live_server: LiveServer) -> None:
    before = await db_state(live_server)
    response = await post(live_server, 'mutation { registerCustomer(input: {name: "R", '
                          'email: "r@example.com"}) { id } }',
                          headers={"host": "evil.example", "origin": "http://evil.example"})
    assert response.status_code == 421
    assert codes(response) == ["MISDIRECTED_REQUEST"]
    assert await db_state(live_server) == before


async def test_no_suggestions_when_introspection_is_off(database_url: str, live_server: LiveServer) -> None:
    query = "{ ordrs { nodes { id } } }"
    assert "Did you mean" in (await post(live_server, query)).text
    async with serving(database_url, introspection=False) as server:
        response = await post(server, query)
        assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
        assert "Did you mean" not in response.text
        assert "orders" not in response.text
