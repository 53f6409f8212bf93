"""A fleet of real processes (gql/fleet.py): HAProxy, two servers, a primary and its streaming
replica. Reads see their writes with the position token, and only with it; a lagging or stopped
replica costs no failed request; a subscription on one server hears appends through the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from gql.fleet import Fleet, fleet
from tests.ws import ORDER_EVENTS, client, until_subscribed

pytestmark = pytest.mark.fleet

WAIT = 0.3  # ORDERGRAPH_REPLICA_WAIT of the fleet's servers
MAX_LAG = 2.0  # ORDERGRAPH_REPLICA_MAX_LAG
POSITION, SERVED_BY = "x-ordergraph-position", "x-ordergraph-served-by"
PLACE = """mutation($order: UUID!, $customer: UUID!) {
  placeOrder(input: {orderId: $order, customerId: $customer, currency: "EUR", items: []}) {
    order { id version }
  }
}"""
ADD = """mutation($order: UUID!, $sku: String!) {
  addItemToOrder(input: {orderId: $order, sku: $sku, quantity: 1, unitPrice: "1.00"}) {
    event { id }
  }
}"""
READ = "query($order: UUID!) { order(id: $order) { id version } }"
REGISTER = """mutation($id: UUID!) {
  registerCustomer(input: {customerId: $id, name: "Ada", email: "ada@example.com"}) { id }
}"""


@pytest.fixture(scope="module")
def running() -> Iterator[Fleet]:
    env = {"ORDERGRAPH_REPLICA_WAIT": str(WAIT), "ORDERGRAPH_REPLICA_MAX_LAG": str(MAX_LAG),
           "ORDERGRAPH_REPLICA_CHECK_INTERVAL": "0.2"}
    with fleet(servers=2, env=env) as started:
        yield started


@pytest.fixture(scope="module")
def customer(running: Fleet) -> str:
    customer_id = str(uuid.uuid4())
    with httpx.Client(base_url=running.url) as http:
        assert "errors" not in post(http, REGISTER, id=customer_id)[0]
    return customer_id


def post(http: httpx.Client, query: str, headers: dict[str, str] | None = None,
         **variables: Any) -> tuple[dict[str, Any], httpx.Response]:
    response = http.post("/graphql", json={"query": query, "variables": variables},
                         headers=headers or {}, timeout=15)
    assert response.status_code == 200, response.text
    return response.json(), response


def place(http: httpx.Client, customer: str) -> tuple[str, str]:
    """A new order's id and the position token of its placement."""
    order = str(uuid.uuid4())
    body, response = post(http, PLACE, order=order, customer=customer)
    assert "errors" not in body, body
    assert body["extensions"]["position"] == response.headers[POSITION]
    return order, response.headers[POSITION]


async def on_replica(running: Fleet, sql: str) -> None:
    conn = await asyncpg.connect(running.replica_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def rotation(running: Fleet) -> list[bool]:
    """Whether each server has the replica in its rotation (from /readyz)."""
    states = []
    for name in running.server_ports:
        ready = httpx.get(f"{running.server_url(name)}/readyz", timeout=5).json()
        (replica,) = ready["replicas"].values()
        states.append(replica["in_rotation"])
    return states


def until(check: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_fleet_reads_its_writes_with_the_token(running: Fleet, customer: str) -> None:
    stale, served = 0, {"replica": 0, "primary": 0}
    with httpx.Client(base_url=running.url) as http:
        for _ in range(500):
            order, token = place(http, customer)
            body, response = post(http, READ, {POSITION: token}, order=order)
            stale += body["data"]["order"] is None
            served[response.headers[SERVED_BY]] += 1
    assert stale == 0
    assert served["replica"] > 400, served  # the replica answered, not the primary for safety


def test_fleet_reads_without_the_token_can_be_stale_and_with_it_wait_then_go_to_the_primary(
        running: Fleet, customer: str) -> None:
    asyncio.run(on_replica(running, "select pg_wal_replay_pause()"))
    try:
        with httpx.Client(base_url=running.url) as http:
            order, token = place(http, customer)
            body, response = post(http, READ, order=order)
            assert response.headers[SERVED_BY] == "replica"
            assert body["data"]["order"] is None  # stale: the test can fail
            started = time.monotonic()
            body, response = post(http, READ, {POSITION: token}, order=order)
            waited = time.monotonic() - started
        assert body["data"]["order"] == {"id": order, "version": 1}
        assert response.headers[SERVED_BY] == "primary"
        assert WAIT <= waited < WAIT + 1.0
    finally:
        asyncio.run(on_replica(running, "select pg_wal_replay_resume()"))


def test_fleet_a_replica_lagging_past_the_bound_leaves_the_rotation_and_returns(
        running: Fleet, customer: str) -> None:
    asyncio.run(on_replica(running, "select pg_wal_replay_pause()"))
    try:
        with httpx.Client(base_url=running.url) as http:
            order, _ = place(http, customer)
            until(lambda: not any(rotation(running)), MAX_LAG + 5)
            lag = httpx.get(f"{running.server_url('a')}/metrics").text
            assert 'ordergraph_replica_in_rotation{replica="127.0.0.1:' in lag
            for _ in range(4):  # no token, yet fresh: the replica is out
                body, response = post(http, READ, order=order)
                assert response.headers[SERVED_BY] == "primary"
                assert body["data"]["order"] == {"id": order, "version": 1}
    finally:
        asyncio.run(on_replica(running, "select pg_wal_replay_resume()"))
    until(lambda: all(rotation(running)))


def test_fleet_a_stopped_replica_fails_no_request(running: Fleet, customer: str) -> None:
    with httpx.Client(base_url=running.url) as http:
        orders = [place(http, customer)[0] for _ in range(5)]
        running.stop_process("replica")
        try:
            served = set()
            for n in range(200):
                body, response = post(http, READ, order=orders[n % 5])
                assert "errors" not in body, body
                assert body["data"]["order"]["id"] == orders[n % 5]
                served.add(response.headers[SERVED_BY])
            assert served == {"primary"}
            ready = httpx.get(f"{running.server_url('b')}/readyz").json()
            assert ready["status"] == "ready"
            (replica,) = ready["replicas"].values()
            assert not replica["in_rotation"] and replica["error"]
        finally:
            running.start_replica()
    until(lambda: all(rotation(running)))


async def _hear_appends_through_the_other_server(running: Fleet, customer: str,
                                                 listen: str, append: str, count: int) -> None:
    with httpx.Client(base_url=append) as http:
        order, _ = place(http, customer)
        ws_url = listen.replace("http://", "ws://") + "/graphql"
        async with client(ws_url) as subscriber:
            await subscriber.subscribe(ORDER_EVENTS, orderId=order)
            if listen != running.url:
                await until_subscribed(listen, 1)
            else:
                await asyncio.sleep(0.5)  # behind HAProxy: whichever server took the socket
            appended = [post(http, ADD, order=order, sku=f"SKU-{n}")[0]["data"]["addItemToOrder"]
                        ["event"]["id"] for n in range(count)]
            heard = [e["orderEvents"] for e in await subscriber.collect(count)]
            assert [e["id"] for e in heard] == appended
            assert [e["streamVersion"] for e in heard] == list(range(2, count + 2))
            with pytest.raises(TimeoutError):  # exactly once: nothing more comes
                await subscriber.message(within=0.5)


def test_fleet_a_subscription_on_one_server_hears_appends_through_the_other(
        running: Fleet, customer: str) -> None:
    asyncio.run(_hear_appends_through_the_other_server(
        running, customer, running.server_url("a"), running.server_url("b"), 30))


def test_fleet_websockets_pass_through_haproxy(running: Fleet, customer: str) -> None:
    asyncio.run(_hear_appends_through_the_other_server(
        running, customer, running.url, running.url, 10))


def test_fleet_a_malformed_token_is_refused(running: Fleet) -> None:
    response = httpx.post(f"{running.url}/graphql", json={"query": "{ __typename }"},
                          headers={POSITION: "yesterday"})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "X-Ordergraph-Position" in error["message"]


async def _resume_after_a_kill(running: Fleet, customer: str) -> None:
    def add(http: httpx.Client, order: str, count: int) -> list[str]:
        return [post(http, ADD, order=order, sku=f"SKU-{n}")[0]["data"]["addItemToOrder"]["event"]["id"]
                for n in range(count)]

    ws_a = running.server_url("a").replace("http://", "ws://") + "/graphql"
    with httpx.Client(base_url=running.server_url("b")) as via_b:
        order, _ = place(via_b, customer)
        with contextlib.suppress(ConnectionClosed):  # the socket dies with its server
            async with client(ws_a) as subscriber:
                await subscriber.subscribe(ORDER_EVENTS, orderId=order)
                await until_subscribed(running.server_url("a"), 1)
                before = add(via_b, order, 5)
                heard = [e["orderEvents"] for e in await subscriber.collect(5)]
                os.kill(running.pid("server-a"), signal.SIGKILL)
        assert [e["id"] for e in heard] == before
        missed = add(via_b, order, 5)  # while the subscriber is away
        async with client(running.url.replace("http://", "ws://") + "/graphql") as again:
            await again.subscribe(ORDER_EVENTS, orderId=order, after=heard[-1]["globalPosition"])
            await asyncio.sleep(0.5)
            live = add(via_b, order, 5)
            resumed = [e["orderEvents"] for e in await again.collect(10)]
            assert [e["id"] for e in resumed] == missed + live  # no gap, no duplicate
            with pytest.raises(TimeoutError):
                await again.message(within=0.5)


def test_fleet_a_subscriber_whose_server_is_killed_resumes_through_haproxy(
        running: Fleet, customer: str) -> None:
    try:
        asyncio.run(_resume_after_a_kill(running, customer))
    finally:
        running.processes.pop("server-a").wait()
        running.start_server("a")
        running.wait_server("a")
