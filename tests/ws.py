"""A tiny GraphQL-over-WebSocket client for tests: both subprotocols, a timeout on every wait."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"
WAIT = 15.0  # seconds; generous for a loaded CI machine, short enough to fail instead of hang

ORDER_EVENTS = """subscription($orderId: UUID, $types: [EventType!], $after: String) {
  orderEvents(orderId: $orderId, types: $types, after: $after) {
    id orderId type streamVersion globalPosition
  }
}"""

STATUS_CHANGED = """subscription($orderId: UUID, $statuses: [OrderStatus!], $after: String) {
  orderStatusChanged(orderId: $orderId, statuses: $statuses, after: $after) {
    previousStatus status event { id type globalPosition } order { id status version }
  }
}"""


class Client:
    """One WebSocket connection; messages of all its operations, read in arrival order."""

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._pending: dict[str, list[dict[str, Any]]] = {}

    async def subscribe(self, query: str, op: str = "1", **variables: Any) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT else "start"
        self._pending.setdefault(op, [])
        await self.ws.send(json.dumps({"id": op, "type": kind,
                                       "payload": {"query": query, "variables": variables}}))

    async def stop(self, op: str = "1") -> None:
        kind = "complete" if self.protocol == TRANSPORT else "stop"
        await self.ws.send(json.dumps({"id": op, "type": kind}))

    async def message(self, op: str = "1", within: float = WAIT) -> dict[str, Any]:
        """The next next/data/error/complete message of operation `op`."""
        async with asyncio.timeout(within):
            while not self._pending.get(op):
                raw = json.loads(await self.ws.recv())
                if raw.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                if "id" in raw:
                    self._pending.setdefault(raw["id"], []).append(raw)
            return self._pending[op].pop(0)

    async def result(self, op: str = "1", within: float = WAIT) -> dict[str, Any]:
        """The payload of the next result; fails on complete or a protocol error."""
        msg = await self.message(op, within)
        assert msg["type"] in ("next", "data"), msg
        return msg["payload"]

    async def data(self, op: str = "1", within: float = WAIT) -> dict[str, Any]:
        payload = await self.result(op, within)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    async def collect(self, count: int, op: str = "1", within: float = WAIT) -> list[dict[str, Any]]:
        """The next `count` data payloads, all within `within` seconds."""
        async with asyncio.timeout(within):
            return [await self.data(op, within) for _ in range(count)]


@contextlib.asynccontextmanager
async def client(url: str, protocol: str = TRANSPORT,
                 payload: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    """A connection acknowledged after `connection_init` with `payload` (e.g. a token);
    `headers` go with the upgrade request."""
    async with connect(url, subprotocols=[protocol], open_timeout=WAIT,  # type: ignore[list-item]
                       close_timeout=2, max_size=None, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        async with asyncio.timeout(WAIT):
            while (msg := json.loads(await ws.recv()))["type"] != "connection_ack":
                assert msg["type"] == "ka", msg
        yield Client(ws, protocol)


async def subscriptions_gauge(base_url: str) -> int:
    """The `ordergraph_subscriptions` gauge of the process that answers this request."""
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT) as http:
        text = (await http.get("/metrics")).text
    match = re.search(r"^ordergraph_subscriptions ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, "no ordergraph_subscriptions gauge in /metrics"
    return int(float(match[1]))


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Poll `check` until it holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def until_subscribed(base_url: str, count: int, within: float = WAIT) -> None:
    """Wait until the server (one process) holds `count` subscriptions."""

    async def check() -> bool:
        return await subscriptions_gauge(base_url) == count

    await eventually(check, within)
