"""A hostile client over WebSocket: malformed frames close with 4400, frames are capped like
HTTP bodies, the subscription cap answers one way, cost and origins are checked as over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import LiveServer, serving
from tests.ws import LEGACY, ORDER_EVENTS, TRANSPORT, WAIT, client

PROTOCOLS = [TRANSPORT, LEGACY]
HEAVY = """subscription { orderEvents { order { customer { orders(first: 100) { nodes {
  customer { orders(first: 100) { nodes { events(first: 100) { nodes { id } } } } } } } } } } }"""


def _errors(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors of a next/data/error message, whatever its shape."""
    payload = message.get("payload")
    if message["type"] == "error":
        return payload if isinstance(payload, list) else [payload]
    return payload.get("errors", [])


async def _closed_with(ws: Any) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    return ws.close_code


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("frame", ["[1,2,3]", "42", '"subscribe"', "not json",
                                   '{"type": "subscribe", "id": 1, "payload": {"query": "{a}"}}',
                                   '{"type": 7}', '{"type": "subscribe", "id": "1", "payload": []}'])
async def test_malformed_frames_close_with_4400(live_server: LiveServer, protocol: str,
                                                frame: str) -> None:
    if protocol == LEGACY and frame.startswith('{"type": "subscribe"'):
        frame = frame.replace('"subscribe"', '"start"')
    async with client(live_server.ws_url, protocol) as ws:
        await ws.ws.send(frame)
        assert await _closed_with(ws.ws) == 4400


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_frames_are_capped_like_http_bodies(live_server: LiveServer, protocol: str) -> None:
    async with client(live_server.ws_url, protocol) as ws:
        await ws.ws.send(json.dumps({"type": "ping", "payload": {"pad": "x" * 300_000}}))
        assert await _closed_with(ws.ws) == 1009  # message too big


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_subscription_cap_answers_with_its_code(database_url: str, live_server: LiveServer,
                                                          protocol: str) -> None:
    async with serving(database_url, max_subscriptions_per_connection=2) as server, \
            client(server.ws_url, protocol) as ws:
        for op in ("1", "2"):
            await ws.subscribe(ORDER_EVENTS, op)
        for op in ("3", "4", "5"):  # every refusal the same shape, with the code
            await ws.subscribe(ORDER_EVENTS, op)
            message = await ws.message(op)
            assert message["type"] in ("next", "data"), message
            assert [e["extensions"]["code"] for e in _errors(message)] == ["TOO_MANY_SUBSCRIPTIONS"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cost_limit_applies_to_subscriptions_and_queries(live_server: LiveServer,
                                                              protocol: str) -> None:
    async with client(live_server.ws_url, protocol) as ws:
        await ws.subscribe(HEAVY, "1")
        message = await ws.message("1")
        assert [e["extensions"]["code"] for e in _errors(message)] == ["QUERY_TOO_COMPLEX"]
        await ws.subscribe("{ %s }" % " ".join(
            f"a{n}: orders(first: 100) {{ nodes {{ events(first: 100) {{ nodes {{ id }} }} }} }}"
            for n in range(20)), "2")
        message = await ws.message("2")
        # graphql-ws carries subscriptions only: a query is refused there, with a code too
        expected = "QUERY_TOO_COMPLEX" if protocol == TRANSPORT else "BAD_REQUEST"
        assert [e["extensions"]["code"] for e in _errors(message)] == [expected]


async def _handshake(url: str, origin: str | None, host: str | None = None) -> None:
    target = url
    kwargs: dict[str, Any] = {}
    if host is not None:  # connect to the server, but name another host in the request
        parts = urlsplit(url)
        target = url.replace(parts.netloc, f"{host}:{parts.port}")
        kwargs = {"host": parts.hostname, "port": parts.port}
    async with connect(target, subprotocols=[TRANSPORT], origin=origin,  # type: ignore[list-item, arg-type]
                       open_timeout=WAIT, **kwargs) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_websockets_from_other_sites_are_refused(live_server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await _handshake(live_server.ws_url, "http://evil.example")
    assert refused.value.response.status_code == 403
    await _handshake(live_server.ws_url, live_server.url)  # the server's own pages
    await _handshake(live_server.ws_url, None)  # not a browser


async def test_dns_rebinding_is_refused(live_server: LiveServer) -> None:
    # a page on evil.example whose name now points at 127.0.0.1: Origin and Host agree
    with pytest.raises(InvalidStatus) as refused:
        await _handshake(live_server.ws_url, "http://evil.example", host="evil.example")
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await _handshake(live_server.ws_url, None, host="evil.example")
