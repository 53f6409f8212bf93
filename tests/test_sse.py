"""GraphQL over SSE (graphql-sse, distinct connections) on /graphql: a raw HTTP client and the
npm `graphql-sse` client, reconnecting with Last-Event-ID while writers append."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from gql.events import OrderStatus, Position
from gql.store.connection import APP_ROLE, as_role
from tests import factories
from tests.conftest import LiveServer, _run_server
from tests.outbound import writer
from tests.test_access import Keys, auth_settings

ROOT = Path(__file__).resolve().parent.parent
GRAPHQL_SSE = ROOT / "web" / "node_modules" / "graphql-sse" / "lib" / "client.mjs"
ORDER_EVENTS = "subscription($after: String) { orderEvents(after: $after) { id globalPosition type } }"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture
async def auth_url(database_url: str, keys: Keys) -> AsyncIterator[str]:
    """A real server that requires tokens (leeway 1 s); yields its http:// URL."""
    server, thread, url = await asyncio.to_thread(
        _run_server, auth_settings(as_role(database_url, APP_ROLE), keys))
    try:
        yield url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


async def sse(client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> AsyncIterator[dict[str, str]]:
    """The SSE messages of one request: {"event", "data", "id"?} each."""
    async with client.stream("POST", url + "/graphql", json={"query": query, "variables": variables},
                             headers={"accept": "text/event-stream", **(headers or {})}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        async for line in response.aiter_lines():
            if not line:
                if message:
                    yield message
                message = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                message[field] = value.removeprefix(" ")


async def logged_positions(pool: asyncpg.Pool, customer_id: uuid.UUID | None = None) -> list[str]:
    await factories.settled_end(pool)
    rows = await pool.fetch("select log_xid, global_position from order_events "
                            "where $1::uuid is null or customer_id = $1 "
                            "order by log_xid, global_position", customer_id)
    return [Position(r["log_xid"], r["global_position"]).encode() for r in rows]


async def test_sse_reconnect_with_last_event_id_resumes_without_gap_or_duplicate(
        live_server: LiveServer, pool: asyncpg.Pool) -> None:
    """A raw HTTP client reads orderEvents from the start, drops its connection twice while
    8 writers append, and reconnects with Last-Event-ID: every event once, in log order,
    each SSE id its globalPosition."""
    customer_id = await factories.customer(pool)
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(pool, customer_id, stop)) for _ in range(8)]
    seen: list[str] = []
    last: str | None = None
    async with httpx.AsyncClient(timeout=30) as client:
        for connection in range(3):
            headers = {"last-event-id": last} if last else {}
            async for message in sse(client, live_server.url, ORDER_EVENTS, {"after": None} if last
                                     else {"after": Position(0, 0).encode()}, headers):
                assert message["event"] == "next", message
                data = orjson.loads(message["data"])["data"]["orderEvents"]
                assert message["id"] == data["globalPosition"]
                seen.append(last := message["id"])
                if connection < 2 and len(seen) >= 40 * (connection + 1):
                    break  # drops the connection mid-stream
                if connection == 2 and stop.is_set() and seen[-1] == (await logged_positions(pool))[-1]:
                    break
                if connection == 2 and len(seen) > 150 and not stop.is_set():
                    stop.set()
                    await asyncio.gather(*writers)
    assert seen == await logged_positions(pool)


async def test_sse_customer_sees_only_its_own_orders_and_bad_requests_get_errors(
        pool: asyncpg.Pool, auth_url: str, keys: Keys) -> None:
    mine, theirs = await factories.customer(pool), await factories.customer(pool)
    server = LiveServer(auth_url, "")
    async with httpx.AsyncClient(timeout=30) as client:
        auth = {"authorization": f"Bearer {keys.token(role='customer', customer_id=str(mine))}"}
        refused = await client.post(server.url + "/graphql", json={"query": ORDER_EVENTS},
                                    headers={"accept": "text/event-stream"})
        assert refused.status_code == 401
        got: list[dict[str, Any]] = []

        async def follow() -> None:
            async for message in sse(client, server.url, ORDER_EVENTS,
                                     {"after": Position(0, 0).encode()}, auth):
                got.append(orjson.loads(message["data"]))
                if len(got) == 2:
                    return

        task = asyncio.create_task(follow())
        await factories.order_in(pool, OrderStatus.PLACED, customer_id=theirs)
        await factories.order_in(pool, OrderStatus.PAYMENT_AUTHORIZED, customer_id=mine)
        async with asyncio.timeout(10):
            await task
        assert [g["data"]["orderEvents"]["globalPosition"] for g in got] == \
            await logged_positions(pool, mine)
        costly = "subscription { orderEvents { id order { events(first: 100) { nodes { " + \
                 " ".join(f"a{i}: order {{ events(first: 100) {{ nodes {{ id }} }} }}" for i in range(20)) + \
                 " } } } } }"
        bad = [m async for m in sse(client, server.url, costly, None, auth)]
        assert [m["event"] for m in bad] == ["next", "complete"]
        assert orjson.loads(bad[0]["data"])["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        wrong = [m async for m in sse(client, server.url, ORDER_EVENTS, None,
                                      {**auth, "last-event-id": "nope"})]
        assert orjson.loads(wrong[0]["data"])["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        query = [m async for m in sse(client, server.url, "{ orders(first: 5) { nodes { id } } }",
                                      None, auth)]
        assert [m["event"] for m in query] == ["next", "complete"]
        assert len(orjson.loads(query[0]["data"])["data"]["orders"]["nodes"]) == 1  # its own


async def test_sse_order_status_changed_resumes_after_last_event_id(
        live_server: LiveServer, pool: asyncpg.Pool) -> None:
    """orderStatusChanged has no `after`: Last-Event-ID alone resumes it from the log."""
    start = await factories.settled_end(pool)
    await factories.order_in(pool, OrderStatus.PAID)
    query = "subscription { orderStatusChanged { previousStatus status event { globalPosition } } }"
    got = []
    async with httpx.AsyncClient(timeout=30) as client:
        async for message in sse(client, live_server.url, query, None,
                                 {"last-event-id": start.encode()}):
            got.append((message["id"], orjson.loads(message["data"])["data"]["orderStatusChanged"]))
            if len(got) == 3:
                break
    assert [g[1]["status"] for g in got] == ["PLACED", "PAYMENT_AUTHORIZED", "PAID"]
    assert [g[0] for g in got] == [g[1]["event"]["globalPosition"] for g in got]


async def test_sse_the_graphql_sse_client_reconnects_at_exp_and_resumes_without_loss(
        auth_url: str, pool: asyncpg.Pool, keys: Keys) -> None:
    """The npm graphql-sse client, as a front-end runs it: the server ends its stream when
    its token expires (no `complete`); it reconnects with the next token and the last
    globalPosition it saw as Last-Event-ID, and receives every event once, in order."""
    if not GRAPHQL_SSE.exists():
        pytest.fail("the web app's node modules are missing: run `npm --prefix web ci`")
    customer_id = await factories.customer(pool)
    start = await factories.settled_end(pool)
    tokens = [keys.token(ttl=4, role="staff"), keys.token(ttl=8, role="staff"),
              keys.token(role="staff")]
    node = await asyncio.create_subprocess_exec(
        "node", str(ROOT / "tests" / "clients" / "stream.mjs"), str(GRAPHQL_SSE),
        auth_url + "/graphql", start.encode(), *tokens,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict[str, Any]] = []

    async def read() -> None:
        assert node.stdout is not None
        while line := await node.stdout.readline():
            lines.append(json.loads(line))

    reader = asyncio.create_task(read())
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(pool, customer_id, stop)) for _ in range(4)]
    try:
        async with asyncio.timeout(60):
            while sum("connected" in line for line in lines) < 3:  # noqa: ASYNC110 (the client's output)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*writers)
            logged = [p for p in await logged_positions(pool) if p > start.encode()]
            while [line["event"] for line in lines if "event" in line] != logged:
                assert len([line for line in lines if "event" in line]) <= len(logged), lines[-5:]
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        node.kill()
        await node.wait()
        reader.cancel()
    assert not [line for line in lines if "error" in line], lines
    connects = [line["connected"] for line in lines if "connected" in line]
    assert len(connects) >= 3 and connects == sorted(connects)  # each with the next token


async def test_sse_a_mutation_over_get_is_refused_in_the_stream(client: httpx.AsyncClient) -> None:
    """A GET may run queries and subscriptions only; the refusal comes as a `next` with errors."""
    response = await client.get("/graphql", params={
        "query": 'mutation { registerCustomer(input: {name: "A", email: "a@example.com"}) '
                 "{ customer { id } } }"}, headers={"accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block.strip()]
    assert events[-1] == "event: complete\ndata:"
    error = orjson.loads(events[0].split("data: ", 1)[1])["errors"][0]
    assert error["extensions"]["code"] in ("BAD_REQUEST", "GRAPHQL_VALIDATION_FAILED"), error
