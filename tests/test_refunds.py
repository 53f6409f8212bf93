"""RefundIssued: part or all of a capture given back, the status unchanged."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from gql.config import Settings
from gql.events import OrderStatus
from gql.http.app import create_app
from tests.factories import order_in, snapshot
from tests.graphql import data, error, mutation

REFUND = mutation("issueRefund", "IssueRefundInput")
REVERSE = mutation("reversePaymentCapture", "ReversePaymentCaptureInput")
CANCEL = mutation("cancelOrder", "CancelOrderInput")
READ = """query($id: UUID!) { order(id: $id) {
  status capturedAmount refundedAmount
  refunds: events(types: [REFUND_ISSUED]) { nodes { ... on RefundIssued { amount reason } } }
  before: stateAt(version: 3) { refundedAmount }
  now: stateAt { status capturedAmount refundedAmount } } }"""


@pytest.fixture(params=[True, False], ids=["compiled", "resolvers"])
async def api(request: pytest.FixtureRequest, database_url: str, pool: asyncpg.Pool) -> Any:
    app = create_app(Settings(database_url=database_url, compiled_reads=request.param), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        yield client


async def _refund(api: httpx.AsyncClient, order_id: Any, amount: str) -> dict[str, Any]:
    result = await data(api, REFUND, input={"orderId": str(order_id), "amount": amount,
                                            "reason": "a mug arrived broken"})
    return result["issueRefund"]


async def test_refunds_add_up_to_the_capture_and_keep_the_status(
        api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.SHIPPED)  # 25.00 captured
    first = await _refund(api, order_id, "5")
    assert (first["order"]["status"], first["order"]["capturedAmount"]) == ("SHIPPED", "25.00")
    assert first["event"]["type"] == "REFUND_ISSUED"
    await _refund(api, order_id, "20.00")
    order = (await data(api, READ, id=str(order_id)))["order"]
    assert (order["status"], order["capturedAmount"], order["refundedAmount"]) == (
        "SHIPPED", "25.00", "25.00")
    assert order["refunds"]["nodes"] == [{"amount": "5.00", "reason": "a mug arrived broken"},
                                         {"amount": "20.00", "reason": "a mug arrived broken"}]
    assert order["before"] == {"refundedAmount": "0.00"}
    assert order["now"] == {"status": "SHIPPED", "capturedAmount": "25.00", "refundedAmount": "25.00"}
    # nothing left to refund: the state machine says no
    refused = await error(api, REFUND, input={"orderId": str(order_id), "amount": "0.01",
                                              "reason": "again"})
    assert refused["extensions"]["code"] == "INVALID_TRANSITION"


@pytest.mark.parametrize(("amount", "field"), [("25.01", "amount"), ("0", "amount"),
                                              ("0.001", "amount")])
async def test_a_refund_beyond_the_capture_is_refused(
        api: httpx.AsyncClient, pool: asyncpg.Pool, amount: str, field: str) -> None:
    order_id = await order_in(pool, OrderStatus.PAID)
    before = await snapshot(pool)
    refused = await error(api, REFUND, input={"orderId": str(order_id), "amount": amount,
                                              "reason": "too much"})
    assert (refused["extensions"]["code"], refused["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert await snapshot(pool) == before


@pytest.mark.parametrize("status", [OrderStatus.PLACED, OrderStatus.PAYMENT_AUTHORIZED,
                                    OrderStatus.CANCELLED])
async def test_no_refund_without_a_capture(api: httpx.AsyncClient, pool: asyncpg.Pool,
                                           status: OrderStatus) -> None:
    order_id = await order_in(pool, status)
    before = await snapshot(pool)
    refused = await error(api, REFUND, input={"orderId": str(order_id), "amount": "1.00",
                                              "reason": "nothing was paid"})
    assert refused["extensions"]["code"] == "INVALID_TRANSITION"
    assert refused["extensions"]["status"] == status.name
    assert await snapshot(pool) == before


async def test_a_cancelled_order_refunds_what_it_captured(api: httpx.AsyncClient,
                                                          pool: asyncpg.Pool) -> None:
    order_id = await order_in(pool, OrderStatus.PAID)
    await data(api, CANCEL, input={"orderId": str(order_id), "reason": "out of stock"})
    await _refund(api, order_id, "25.00")
    order = (await data(api, READ, id=str(order_id)))["order"]
    assert (order["status"], order["refundedAmount"]) == ("CANCELLED", "25.00")


async def test_a_reversal_after_a_refund_reverses_the_rest(api: httpx.AsyncClient,
                                                           pool: asyncpg.Pool) -> None:
    order_id = str(await order_in(pool, OrderStatus.PAID))
    await _refund(api, order_id, "10.00")
    whole = await error(api, REVERSE, input={"orderId": order_id, "amount": "25.00",
                                             "reason": "chargeback"})
    assert (whole["extensions"]["code"], whole["extensions"]["field"]) == ("BAD_USER_INPUT", "amount")
    reversed_ = await data(api, REVERSE, input={"orderId": order_id, "amount": "15.00",
                                                "reason": "chargeback"})
    order = reversed_["reversePaymentCapture"]["order"]
    assert (order["status"], order["capturedAmount"]) == ("PAYMENT_AUTHORIZED", "10.00")
    read = (await data(api, READ, id=order_id))["order"]
    assert read["refundedAmount"] == "10.00"  # captured - refunded is 0: nothing more to refund
