"""Mutations over HTTP: the order lifecycle, each error code, and idempotency."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gql.events import OrderStatus
from tests.factories import customer, order_in, snapshot
from tests.graphql import PLACE, data, error, mutation

AUTHORIZE = mutation("authorizePayment", "AuthorizePaymentInput")
CAPTURE = mutation("capturePayment", "CapturePaymentInput")
REVERSE = mutation("reversePaymentCapture", "ReversePaymentCaptureInput")
SHIP = mutation("shipOrder", "ShipOrderInput")
CANCEL = mutation("cancelOrder", "CancelOrderInput")
ADD = mutation("addItemToOrder", "AddItemToOrderInput")
REMOVE = mutation("removeItemFromOrder", "RemoveItemFromOrderInput")


async def _place(client: httpx.AsyncClient, pool: asyncpg.Pool, **extra: Any) -> dict[str, Any]:
    customer_id = await customer(pool)
    placed = await data(client, PLACE, input={
        "customerId": str(customer_id), "currency": "EUR",
        "items": [{"sku": "MUG", "quantity": 2, "unitPrice": "12.50"}], **extra})
    return placed["placeOrder"]


async def test_happy_path_placed_to_shipped(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    placed = await _place(client, pool)
    order_id = placed["order"]["id"]
    assert placed["order"]["status"] == "PLACED" and placed["order"]["totalAmount"] == "25.00"
    added = await data(client, ADD, input={"orderId": order_id, "sku": "TEA", "quantity": 1,
                                           "unitPrice": "4.5"})
    assert added["addItemToOrder"]["order"]["totalAmount"] == "29.50"
    assert added["addItemToOrder"]["order"]["items"][1] == {
        "sku": "TEA", "quantity": 1, "unitPrice": "4.50", "lineTotal": "4.50"}
    auth = await data(client, AUTHORIZE, input={"orderId": order_id, "amount": "29.50",
                                                "paymentProvider": "stripe",
                                                "authorizationId": "pi_1"})
    assert auth["authorizePayment"]["order"]["status"] == "PAYMENT_AUTHORIZED"
    assert auth["authorizePayment"]["order"]["authorizedAmount"] == "29.50"
    paid = await data(client, CAPTURE, input={"orderId": order_id, "amount": "29.50",
                                              "expectedVersion": 3})
    assert paid["capturePayment"]["order"]["status"] == "PAID"
    assert paid["capturePayment"]["order"]["capturedAmount"] == "29.50"
    shipped = await data(client, SHIP, input={"orderId": order_id, "carrier": "DHL",
                                              "trackingNumber": "JD0001"})
    assert shipped["shipOrder"]["order"]["status"] == "SHIPPED"
    assert shipped["shipOrder"]["order"]["version"] == 5
    timeline = await data(client, """query($id: UUID!) { order(id: $id) { events {
        nodes { type streamVersion
          ... on OrderPlaced { currency items { sku } }
          ... on ItemAddedToOrder { sku unitPrice }
          ... on PaymentAuthorized { amount paymentProvider authorizationId }
          ... on PaymentCaptured { amount }
          ... on OrderShipped { carrier trackingNumber shippedItems { sku quantity } } } } } }""",
        id=order_id)
    nodes = timeline["order"]["events"]["nodes"]
    assert [n["type"] for n in nodes] == ["ORDER_PLACED", "ITEM_ADDED_TO_ORDER",
                                          "PAYMENT_AUTHORIZED", "PAYMENT_CAPTURED", "ORDER_SHIPPED"]
    assert [n["streamVersion"] for n in nodes] == [1, 2, 3, 4, 5]
    assert nodes[2]["amount"] == "29.50" and nodes[2]["authorizationId"] == "pi_1"
    assert nodes[4]["carrier"] == "DHL"
    assert nodes[4]["shippedItems"] == [{"sku": "MUG", "quantity": 2}, {"sku": "TEA", "quantity": 1}]


async def test_reversal_then_cancellation(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = str(await order_in(pool, OrderStatus.PAID))
    reversed_ = await data(client, REVERSE, input={"orderId": order_id, "amount": "25.00",
                                                   "reason": "chargeback"})
    order = reversed_["reversePaymentCapture"]["order"]
    assert (order["status"], order["capturedAmount"]) == ("PAYMENT_AUTHORIZED", "0.00")
    cancelled = await data(client, CANCEL, input={"orderId": order_id, "reason": "fraud"})
    assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
    assert cancelled["cancelOrder"]["event"]["type"] == "ORDER_CANCELLED"


async def test_remove_item_updates_total(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = str(await order_in(pool, OrderStatus.PLACED))
    removed = await data(client, REMOVE, input={"orderId": order_id, "sku": "SKU-1", "quantity": 1})
    assert removed["removeItemFromOrder"]["order"]["totalAmount"] == "12.50"


async def test_register_customer_and_retry(client: httpx.AsyncClient) -> None:
    query = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
        id name email orders { nodes { id } } } }"""
    customer_id = str(uuid.uuid4())
    first = await data(client, query, input={"customerId": customer_id, "name": "Grace Hopper",
                                             "email": "grace@example.com"})
    again = await data(client, query, input={"customerId": customer_id, "name": "Grace Hopper",
                                             "email": "grace@example.com"})
    assert first == again and first["registerCustomer"]["orders"]["nodes"] == []
    conflict = await error(client, query, input={"customerId": customer_id, "name": "Other",
                                                 "email": "grace@example.com"})
    assert conflict["extensions"]["code"] == "IDEMPOTENCY_CONFLICT"
    bad = await error(client, query, input={"name": "No Mail", "email": "not-an-address"})
    assert bad["extensions"] == {"code": "BAD_USER_INPUT", "field": "email"}


async def test_place_order_retry_is_deduplicated(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    event_id = str(uuid.uuid4())
    customer_id = str(await customer(pool))
    order = {"eventId": event_id, "customerId": customer_id, "currency": "USD", "items": []}
    first = await data(client, PLACE, input=order)
    before = await snapshot(pool)
    again = await data(client, PLACE, input=order)
    assert again["placeOrder"]["deduplicated"] and not first["placeOrder"]["deduplicated"]
    assert again["placeOrder"]["event"]["id"] == event_id
    assert again["placeOrder"]["order"]["id"] == first["placeOrder"]["order"]["id"]
    assert await snapshot(pool) == before


ERROR_CASES: list[tuple[str, OrderStatus | None, str, dict[str, Any], str, dict[str, Any]]] = [
    ("expected version", OrderStatus.PLACED, CANCEL, {"reason": "x", "expectedVersion": 7},
     "WRONG_EXPECTED_VERSION", {"currentVersion": 1}),
    ("transition", OrderStatus.PLACED, CAPTURE, {"amount": "25.00"},
     "INVALID_TRANSITION", {"status": "PLACED", "eventType": "PAYMENT_CAPTURED"}),
    ("final", OrderStatus.SHIPPED, CANCEL, {"reason": "late"},
     "INVALID_TRANSITION", {"status": "SHIPPED", "eventType": "ORDER_CANCELLED"}),
    ("transition beats amount", OrderStatus.PLACED, CAPTURE, {"amount": "1.00"},
     "INVALID_TRANSITION", {"status": "PLACED"}),
    ("unknown order", None, CANCEL, {"reason": "x"}, "ORDER_NOT_FOUND", {}),
    ("amount", OrderStatus.PLACED, AUTHORIZE,
     {"amount": "20.00", "paymentProvider": "p", "authorizationId": "a"},
     "BAD_USER_INPUT", {"field": "amount"}),
    ("quantity", OrderStatus.PLACED, ADD, {"sku": "A", "quantity": 0, "unitPrice": "1.00"},
     "BAD_USER_INPUT", {"field": "quantity"}),
]


@pytest.mark.parametrize(("name", "status", "query", "extra", "code", "extensions"), ERROR_CASES,
                         ids=[case[0] for case in ERROR_CASES])
async def test_mutation_errors_carry_codes_and_append_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, name: str, status: OrderStatus | None,
    query: str, extra: dict[str, Any], code: str, extensions: dict[str, Any],
) -> None:
    order_id = str(await order_in(pool, status) if status else uuid.uuid4())
    before = await snapshot(pool)
    failure = await error(client, query, input={"orderId": order_id, **extra})
    assert failure["extensions"]["code"] == code
    assert extensions.items() <= failure["extensions"].items()
    assert failure["path"]
    assert await snapshot(pool) == before


async def test_place_order_errors(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    existing = str(await order_in(pool, OrderStatus.PLACED))
    customer_id = str(await customer(pool))
    before = await snapshot(pool)
    cases = [
        ({"orderId": existing, "customerId": customer_id, "currency": "EUR"},
         "ORDER_ALREADY_EXISTS"),
        ({"customerId": str(uuid.uuid4()), "currency": "EUR"}, "CUSTOMER_NOT_FOUND"),
        ({"customerId": customer_id, "currency": "EURO"}, "BAD_USER_INPUT"),
    ]
    for order, code in cases:
        failure = await error(client, PLACE, input=order)
        assert failure["extensions"]["code"] == code, failure
    assert await snapshot(pool) == before


async def test_event_id_reused_with_other_content_conflicts(
    client: httpx.AsyncClient, pool: asyncpg.Pool,
) -> None:
    order_id = str(await order_in(pool, OrderStatus.PLACED))
    event_id = str(uuid.uuid4())
    await data(client, ADD, input={"orderId": order_id, "eventId": event_id, "sku": "A",
                                   "quantity": 1, "unitPrice": "1.00"})
    before = await snapshot(pool)
    failure = await error(client, ADD, input={"orderId": order_id, "eventId": event_id,
                                              "sku": "A", "quantity": 5, "unitPrice": "1.00"})
    assert failure["extensions"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert await snapshot(pool) == before


async def test_event_metadata_is_recorded(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = str(await order_in(pool, OrderStatus.PLACED))
    correlation, causation = str(uuid.uuid4()), str(uuid.uuid4())
    result = await data(client, """mutation($input: CancelOrderInput!) { cancelOrder(input: $input) {
        event { occurredAt recordedAt correlationId causationId actor { type id } schemaVersion
                payload } } }""", input={
        "orderId": order_id, "reason": "dup", "occurredAt": "2026-01-02T03:04:05+02:00",
        "correlationId": correlation, "causationId": causation,
        "actor": {"type": "user", "id": "support-7"}})
    event = result["cancelOrder"]["event"]
    assert event["occurredAt"] == "2026-01-02T01:04:05+00:00"
    assert event["recordedAt"] > event["occurredAt"]
    assert (event["correlationId"], event["causationId"]) == (correlation, causation)
    assert event["actor"] == {"type": "user", "id": "support-7"}
    assert event["payload"] == {"reason": "dup", "reasonCode": "OTHER"} and event["schemaVersion"] == 2
