"""GraphQL over HTTP: status codes, content types, limits, and what clients never see."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from gql.config import Settings
from gql.events import OrderStatus
from gql.http.app import create_app
from tests.factories import customer, order_in, snapshot

GRAPHQL_RESPONSE = "application/graphql-response+json"
LEAKS = ("Traceback", "asyncpg", "select ", "order_events", "File \"", "psycopg", "plpgsql")


def _no_leaks(response: httpx.Response) -> None:
    for word in LEAKS:
        assert word not in response.text, (word, response.text)


async def test_get_query_works(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ orders { nodes { id } } }"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"orders": {"nodes": []}}}


async def test_get_with_variables(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = str(await order_in(pool, OrderStatus.PLACED))
    response = await client.get("/graphql", params={
        "query": "query($id: UUID!) { order(id: $id) { id } }",
        "variables": json.dumps({"id": order_id})})
    assert response.json() == {"data": {"order": {"id": order_id}}}


async def test_mutation_over_get_is_405_and_appends_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    order_id = str(await order_in(pool, OrderStatus.PLACED))
    before = await snapshot(pool)
    response = await client.get("/graphql", params={
        "query": 'mutation { cancelOrder(input: {orderId: "%s", reason: "x"}) { deduplicated } }'
        % order_id})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert await snapshot(pool) == before


async def test_graphql_response_content_type_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ orders { nodes { id } } }"},
                                 headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)


@pytest.mark.parametrize(("body", "status_new", "code"), [
    ('{"query": ', 400, "BAD_REQUEST"),
    ('["not", "an", "object"]', 400, "BAD_REQUEST"),
    ('{"variables": {}}', 400, "BAD_REQUEST"),
    ('{"query": "{ orders { nodes { id } "}', 400, "GRAPHQL_PARSE_FAILED"),
    ('{"query": "{ orders { nodes { nope } } }"}', 400, "GRAPHQL_VALIDATION_FAILED"),
    ('{"query": "{ order(id: \\"abc\\") { id } }"}', 400, "BAD_USER_INPUT"),
    ('{"query": "query($id: UUID!) { order(id: $id) { id } }", "variables": {"id": "abc"}}',
     400, "BAD_USER_INPUT"),
])
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_refused_requests(client: httpx.AsyncClient, body: str, status_new: int, code: str,
                                accept: str) -> None:
    response = await client.post("/graphql", content=body,
                                 headers={"content-type": "application/json", "accept": accept})
    legacy_status = 400 if code == "BAD_REQUEST" else 200
    assert response.status_code == (status_new if accept == GRAPHQL_RESPONSE else legacy_status)
    assert response.headers["content-type"].startswith(accept)
    payload = response.json()
    assert "data" not in payload
    assert payload["errors"][0]["extensions"]["code"] == code
    _no_leaks(response)


PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { id } } }"""


@pytest.mark.parametrize(("change", "message"), [
    ({"customerId": "not-a-uuid"}, "not a UUID"),
    ({"items": [{"sku": "A", "quantity": 1, "unitPrice": 12.5}]}, "never numbers"),
    ({"occurredAt": "2026-01-01T10:00:00"}, "no UTC offset"),
    ({"items": [{"sku": "A", "quantity": 1, "unitPrice": "1", "colour": "red"}]}, "colour"),
])
async def test_wrong_scalars_and_unknown_fields_are_bad_user_input(
    client: httpx.AsyncClient, pool: asyncpg.Pool, change: dict[str, Any], message: str,
) -> None:
    customer_id = str(await customer(pool))
    before = await snapshot(pool)
    variables = {"input": {"customerId": customer_id, "currency": "EUR", **change}}
    response = await client.post("/graphql", json={"query": PLACE, "variables": variables})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert await snapshot(pool) == before


async def test_deep_query_is_refused(client: httpx.AsyncClient) -> None:
    deep = "{ orders { nodes { " + "customer { orders { nodes { " * 6 + "id" + " } } }" * 6 + " } } }"
    response = await client.post("/graphql", json={"query": deep})
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]


async def test_many_aliases_and_huge_queries_are_refused(client: httpx.AsyncClient) -> None:
    aliases = "{ " + " ".join(f"a{n}: orders {{ nodes {{ id }} }}" for n in range(40)) + " }"
    assert "aliases" in (await client.post("/graphql", json={"query": aliases})).text
    huge = "{ orders { nodes { " + " ".join(["id"] * 6000) + " } } }"
    response = await client.post("/graphql", json={"query": huge})
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    body = {"query": "{ orders { nodes { id } } }", "variables": {"pad": "x" * 300_000}}
    response = await client.post("/graphql", json=body)
    assert response.status_code == 413
    assert (await client.get("/healthz")).status_code == 200


async def test_internal_errors_are_masked_and_logged(
    client: httpx.AsyncClient, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture,
) -> None:
    await pool.execute("alter table orders_current rename to orders_current_gone")
    try:
        response = await client.post("/graphql", json={"query": "{ orders { nodes { id } } }"})
    finally:
        await pool.execute("alter table orders_current_gone rename to orders_current")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["errorId"] in error["message"]
    _no_leaks(response)
    assert error["extensions"]["errorId"] in caplog.text and "orders_current" in caplog.text
    assert (await client.post("/graphql", json={"query": "{ orders { nodes { id } } }"})).json() \
        == {"data": {"orders": {"nodes": []}}}


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    await client.post("/graphql", json={"query": "{ orders { nodes { id } } }"})
    metrics = (await client.get("/metrics")).text
    assert 'ordergraph_http_request_seconds_count{method="POST",route="/graphql",status="200"}' in metrics


async def test_introspection_and_ide_can_be_switched_off(
    database_url: str, pool: asyncpg.Pool,
) -> None:
    app = create_app(Settings(database_url=database_url, introspection=False, ide=False), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
        response = await c.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        assert "introspection" in response.json()["errors"][0]["message"].lower()
        page = await c.get("/graphql", headers={"accept": "text/html"})
        assert "graphiql" not in page.text.lower()


async def test_ide_is_served_to_browsers(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "graphiql" in page.text.lower()
    assert "https://" not in page.text and "http://" not in page.text  # no CDN


@pytest.mark.parametrize("query_string", ["query={__typename}", "%71uery={__typename}",
                                          "qu%65ry={__typename}", "x=1&query={__typename}"])
async def test_a_get_query_needs_a_token_however_its_name_is_encoded(
        settings: Settings, pool: asyncpg.Pool, query_string: str) -> None:
    secured = Settings(database_url=settings.database_url,
                       jwt_secret="a-secret-of-at-least-32-bytes-length")
    app = create_app(secured, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as http:
        response = await http.get(f"/graphql?{query_string}")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
