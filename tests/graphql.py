"""A tiny GraphQL client over the real HTTP app, for tests."""

from __future__ import annotations

from typing import Any

import httpx

ORDER_FIELDS = """
id status currency totalAmount authorizedAmount capturedAmount version placedAt lastEventAt
items { sku quantity unitPrice lineTotal }
"""


async def execute(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


async def data(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """The `data` of a request that must succeed."""
    body = await execute(client, query, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


async def error(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """The single error of a request that must fail."""
    body = await execute(client, query, **variables)
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]


PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  deduplicated event { id streamVersion globalPosition type ... on OrderPlaced { currency } }
  order { %s } } }""" % ORDER_FIELDS


def mutation(name: str, input_type: str) -> str:
    return """mutation($input: %s!) { %s(input: $input) {
      deduplicated event { id type streamVersion } order { %s } } }""" % (
        input_type, name, ORDER_FIELDS)
