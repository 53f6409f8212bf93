"""Clients that append over HTTP as a careful producer does: every append carries its own
eventId, and an append that got no answer (the server died, the database was out) is sent
again, unchanged, until one comes. What the server acknowledged is recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

PLACE = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { event { id } } }"
ADD = "mutation($input: AddItemToOrderInput!) { addItemToOrder(input: $input) { event { id } } }"


@dataclass
class Outcomes:
    acknowledged: list[uuid.UUID] = field(default_factory=list)  # eventIds answered with data
    statuses: Counter[int | str] = field(default_factory=Counter)  # HTTP status, or "no answer"
    codes: Counter[str] = field(default_factory=Counter)  # extensions.code of every error seen


def _body(order_id: uuid.UUID, customer_id: uuid.UUID, event_id: uuid.UUID, first: bool) -> dict[str, Any]:
    if first:
        return {"query": PLACE, "variables": {"input": {
            "eventId": str(event_id), "orderId": str(order_id), "customerId": str(customer_id),
            "currency": "EUR", "items": []}}}
    return {"query": ADD, "variables": {"input": {
        "eventId": str(event_id), "orderId": str(order_id), "sku": "SKU-F", "quantity": 1,
        "unitPrice": "1.00"}}}


async def write(base_url: str, customer_id: uuid.UUID, stop: asyncio.Event, outcomes: Outcomes,
                pause: float = 0.0) -> None:
    """Place an order, then add items to it until `stop`; an append in flight when `stop` is
    set is still sent until answered."""
    order_id, first = uuid.uuid4(), True
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        while not stop.is_set():
            event_id = uuid.uuid4()
            body = _body(order_id, customer_id, event_id, first)
            while True:  # the same request, until it is answered
                try:
                    response = await http.post("/graphql", json=body)
                except httpx.TransportError:
                    outcomes.statuses["no answer"] += 1
                    await asyncio.sleep(0.05)
                    continue
                outcomes.statuses[response.status_code] += 1
                payload = response.json()
                codes = [e.get("extensions", {}).get("code", "?") for e in payload.get("errors", [])]
                outcomes.codes.update(codes)
                if response.status_code == 503:
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 4)
                    continue
                if payload.get("data"):
                    outcomes.acknowledged.append(event_id)
                    first = False
                break
            await asyncio.sleep(pause)
