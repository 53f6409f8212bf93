"""A database outage as clients and operators see it: 503 SERVICE_UNAVAILABLE with
Retry-After, one try per request, one log line when it starts and one when it ends."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import pytest

from gql.metrics import COMPILED
from gql.store.connection import create_pool
from tests.conftest import LiveServer
from tests.factories import customer, settled_end
from tests.outages import cut_off
from tests.ws import ORDER_EVENTS, client

QUERY = "{ orders(first: 3) { nodes { id status } } }"
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { id } } }"""


async def _asks(http: httpx.AsyncClient, customer_id: uuid.UUID) -> list[httpx.Response]:
    """A compiled read, a GET through the resolvers, and an append."""
    place = {"customerId": str(customer_id), "currency": "EUR", "items": [],
             "eventId": str(uuid.uuid4())}
    return [await http.post("/graphql", json={"query": QUERY}),
            await http.get("/graphql", params={"query": "{ orders(first: 2) { nodes { id } } }"}),
            await http.post("/graphql", json={"query": PLACE, "variables": {"input": place}},
                            headers={"accept": "application/graphql-response+json"})]


def _compiled_failures() -> float:
    return COMPILED.labels("read", "failed")._value.get()  # the server runs in this process


async def test_an_outage_answers_503_with_retry_after_and_logs_once(
        live_server: LiveServer, server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    seeding = await create_pool(live_server.database_url, min_size=1, max_size=2)
    customer_id = await customer(seeding)
    after = (await settled_end(seeding)).encode()
    await seeding.close()
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        assert all(r.status_code == 200 for r in await _asks(http, customer_id))  # known now
        failures_before = _compiled_failures()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            async with cut_off(server_url, live_server.database_url):
                answers = [r for _ in range(5) for r in await _asks(http, customer_id)]
                async with client(live_server.ws_url) as ws:  # a replay needs the log
                    await ws.subscribe(ORDER_EVENTS, after=after)
                    refused = await ws.message()
                ready = await http.get("/readyz")
            for response in answers:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                errors: list[dict[str, Any]] = response.json()["errors"]
                assert [e["extensions"]["code"] for e in errors] == ["SERVICE_UNAVAILABLE"]
            assert refused["type"] in ("error", "next")
            assert "SERVICE_UNAVAILABLE" in str(refused["payload"])
            assert ready.status_code == 503
            for _ in range(100):  # the server recovers by itself
                if all(r.status_code == 200 for r in await _asks(http, customer_id)):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server did not recover")
            for _ in range(50):
                if "available again" in caplog.text:
                    break
                await asyncio.sleep(0.1)
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks during an outage"
    assert caplog.text.count("the database is unavailable") == 1
    assert caplog.text.count("the database is available again") == 1
    records = [r.getMessage() for r in caplog.records if r.name.startswith("ordergraph")]
    assert len(records) <= 4, records  # the database and the listener: down once, up once
    # a compiled read that met the outage was not tried again through the resolvers
    assert _compiled_failures() == failures_before
