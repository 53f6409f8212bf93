"""The ASGI front: compiled reads answered before starlette, everything else passed on intact."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from prometheus_client import REGISTRY
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from gql.config import Settings
from gql.events import OrderStatus
from gql.http.access import Access, Authenticate
from gql.http.gate import Gate
from gql.http.graphql import CompiledFront, read_body
from gql.schema import build_schema
from gql.schema.fastpath import FastPath
from gql.store.lane import ReadLane
from gql.tokens import Verifier
from tests.conftest import LiveServer
from tests.factories import order_in

QUERY = "query($id: UUID!) { order(id: $id) { id status totalAmount events { nodes { type } } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _answered() -> float:
    return REGISTRY.get_sample_value("ordergraph_compiled_operations_total",
                                     {"operation": "read", "outcome": "answered"}) or 0


def _timed() -> float:
    return REGISTRY.get_sample_value("ordergraph_http_request_seconds_count", {
        "method": "POST", "route": "/graphql", "status": "200"}) or 0


async def test_a_known_document_is_answered_by_one_statement_in_front(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    order_id = str(await order_in(pool, OrderStatus.PAID))
    body = {"query": QUERY, "variables": {"id": order_id}}
    first = await client.post("/graphql", json=body)  # the resolvers answer, the front learns
    answered, timed = _answered(), _timed()
    second = await client.post("/graphql", json=body)
    assert _answered() == answered + 1
    assert _timed() == timed + 1  # counted like every other request
    assert second.status_code == 200
    assert second.headers["content-type"] == "application/json; charset=utf-8"
    assert int(second.headers["content-length"]) == len(second.content)
    assert second.json() == first.json()
    assert second.json()["data"]["order"]["status"] == "PAID"
    asked = await client.post("/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE})
    assert asked.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert asked.json() == first.json()


async def test_the_front_answers_known_documents_and_replays_the_rest(
    settings: Settings, pool: asyncpg.Pool,
) -> None:
    """In front of an app that only echoes what reached it."""
    reached: list[dict[str, Any]] = []

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        assert body is not None
        reached.append(json.loads(body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"echo"})

    schema = build_schema(settings)
    fast = FastPath(schema, settings)
    state = State({"reads": ReadLane(pool, 2), "pool": pool})
    state.access = Access(settings, Verifier(settings), state)  # open mode: loopback is admin
    state.gate = Gate.of(settings, schema)  # no trusted documents, no rate limits
    front = Authenticate(CompiledFront(echo, fast=fast, settings=settings, state=state),
                         state.access)
    order_id = str(await order_in(pool, OrderStatus.SHIPPED))
    body = {"query": QUERY, "variables": {"id": order_id}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front),
                                 base_url="http://localhost") as client:
        unknown = await client.post("/graphql", json=body)
        assert (unknown.status_code, reached) == (299, [body])  # passed on, body intact
        fast.remember(QUERY, None)
        known = await client.post("/graphql", json=body)
        assert known.status_code == 200
        assert known.json()["data"]["order"]["status"] == "SHIPPED"
        assert reached == [body]  # answered in front
        elsewhere = await client.post("/other", json=body)
        assert (elsewhere.status_code, len(reached)) == (299, 2)


async def test_what_the_front_does_not_take_reaches_the_app_intact(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    order_id = str(await order_in(pool, OrderStatus.PLACED))
    body = {"query": QUERY, "variables": {"id": order_id}}
    expected = (await client.post("/graphql", json=body)).json()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed to the app
        payload = httpx.Request("POST", "/", json=body).content
        yield payload[:10]
        yield payload[10:]

    streamed = await client.post("/graphql", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert streamed.json() == expected

    wrong_type = await client.post("/graphql", content=httpx.Request("POST", "/", json=body).content,
                                   headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    broken = await client.post("/graphql", content=b'{"query": "{', headers={
        "content-type": "application/json", "accept": GRAPHQL_RESPONSE})
    assert broken.status_code == 400

    bad_id = await client.post("/graphql", json={"query": QUERY, "variables": {"id": "nope"}})
    assert bad_id.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "data" not in bad_id.json() or bad_id.json()["data"] is None

    answered = _answered()
    missing = await client.post("/graphql", json={"query": QUERY, "variables": {
        "id": "00000000-0000-4000-8000-000000000000"}})
    assert missing.json() == {"data": {"order": None}}
    assert _answered() == answered + 1


async def test_the_front_over_a_real_server(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        orders = (await client.post("/graphql", json={
            "query": "{ orders(first: 3) { nodes { id } } }"})).json()["data"]["orders"]["nodes"]
        answers = []
        for order in orders * 2:
            response = await client.post("/graphql", json={"query": QUERY,
                                                           "variables": {"id": order["id"]}})
            assert response.status_code == 200
            answers.append(response.json())
        assert answers[:3] == answers[3:]
        assert [a["data"]["order"]["id"] for a in answers[:3]] == [o["id"] for o in orders]
        assert (await client.get("/healthz")).json() == {"status": "ok"}


def _timed_as(status: str) -> float:
    return REGISTRY.get_sample_value("ordergraph_http_request_seconds_count", {
        "method": "POST", "route": "/graphql", "status": status}) or 0


async def test_a_refusal_in_front_is_timed_with_its_status(client: httpx.AsyncClient) -> None:
    document = """query($n: Int!) { orders(first: $n) { nodes { id customer {
      orders(first: $n) { nodes { id events(first: $n) { nodes { id } } } } } } } }"""
    learnt = await client.post("/graphql", json={"query": document, "variables": {"n": 1}})
    assert "errors" not in learnt.json()
    ok, refused = _timed_as("200"), _timed_as("400")
    response = await client.post("/graphql", json={"query": document, "variables": {"n": 100}},
                                 headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert (_timed_as("200"), _timed_as("400")) == (ok, refused + 1)
