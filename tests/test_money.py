"""Money follows its currency: accepted with at most its minor units, written with exactly them."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import iso4217
import orjson
import pytest

from gql.config import Settings
from gql.events import ORIGIN
from gql.http.app import create_app
from gql.transfer import export_to
from tests.factories import customer, snapshot
from tests.graphql import PLACE, data, error, mutation

AUTHORIZE = mutation("authorizePayment", "AuthorizePaymentInput")
ADD = mutation("addItemToOrder", "AddItemToOrderInput")
READ = """query($id: UUID!) { order(id: $id) {
  totalAmount authorizedAmount capturedAmount items { unitPrice lineTotal }
  stateAt(version: 1) { totalAmount items { unitPrice lineTotal } }
  events { nodes { ... on OrderPlaced { items { unitPrice lineTotal } }
                   ... on ItemAddedToOrder { unitPrice }
                   ... on PaymentAuthorized { amount } } } } }"""

# (currency, unit price as sent, quantity, unit price as written, total as written, zero)
CASES = [
    ("JPY", "100", 3, "100", "300", "0"),
    ("KWD", "1.2", 3, "1.200", "3.600", "0.000"),
    ("EUR", "4.5", 1, "4.50", "4.50", "0.00"),
    ("CLF", "0.5", 2, "0.5000", "1.0000", "0.0000"),
]


@pytest.fixture(params=[True, False], ids=["compiled", "resolvers"])
async def api(request: pytest.FixtureRequest, database_url: str,
              pool: asyncpg.Pool) -> Any:
    app = create_app(Settings(database_url=database_url, compiled_reads=request.param), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        yield client


@pytest.mark.parametrize(("currency", "sent", "quantity", "unit", "total", "zero"), CASES,
                         ids=[c[0] for c in CASES])
async def test_money_is_written_with_the_currency_minor_units(
        api: httpx.AsyncClient, pool: asyncpg.Pool, currency: str, sent: str, quantity: int,
        unit: str, total: str, zero: str) -> None:
    placed = await data(api, PLACE, input={
        "customerId": str(await customer(pool)), "currency": currency,
        "items": [{"sku": "A", "quantity": quantity, "unitPrice": sent}]})
    order = placed["placeOrder"]["order"]
    assert (order["totalAmount"], order["items"][0]["unitPrice"], order["items"][0]["lineTotal"]) \
        == (total, unit, total)
    assert order["authorizedAmount"] == order["capturedAmount"] == zero
    order_id = order["id"]
    await data(api, ADD, input={"orderId": order_id, "sku": "B", "quantity": 1, "unitPrice": sent})
    authorized = await data(api, AUTHORIZE, input={
        "orderId": order_id, "amount": str((quantity + 1) * Decimal(sent)),
        "paymentProvider": "p", "authorizationId": f"a-{uuid.uuid4()}"})
    assert authorized["authorizePayment"]["order"]["authorizedAmount"] == \
        authorized["authorizePayment"]["order"]["totalAmount"]
    read = (await data(api, READ, id=order_id))["order"]
    assert read["stateAt"] == {"totalAmount": total,
                               "items": [{"unitPrice": unit, "lineTotal": total}]}
    placed_event, added, payment = read["events"]["nodes"]
    assert placed_event["items"] == [{"unitPrice": unit, "lineTotal": total}]
    assert added["unitPrice"] == unit
    assert payment["amount"] == read["totalAmount"] == read["authorizedAmount"]
    # the log holds the amounts as written, and so does an export
    stored = await pool.fetchval("select payload from order_events where order_id = $1 "
                                 "and stream_version = 2", uuid.UUID(order_id))
    assert stored["unitPrice"] == unit
    out = io.BytesIO()
    async with pool.acquire() as conn:
        await export_to(conn, out, after=ORIGIN)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    exported = [line for line in lines if line["order_id"] == order_id]
    assert exported[0]["payload"]["items"][0]["unitPrice"] == unit


async def test_money_with_more_decimals_than_its_currency_is_refused(
        api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    customer_id = str(await customer(pool))
    before = await snapshot(pool)
    for currency, price in (("JPY", "100.5"), ("JPY", "100.00"), ("EUR", "1.005"), ("KWD", "1.0001")):
        refused = await error(api, PLACE, input={
            "customerId": customer_id, "currency": currency,
            "items": [{"sku": "A", "quantity": 1, "unitPrice": price}]})
        assert refused["extensions"]["code"] == "BAD_USER_INPUT"
        assert refused["extensions"]["field"] == "items[0].unitPrice"
    assert await snapshot(pool) == before


# Codes the table keeps on purpose beyond SIX's current list, and why.
KEPT = {
    "ANG": "withdrawn in 2025 (replaced by XCG): orders placed in it stay readable and refundable",
    "BGN": "replaced by the euro in 2026: orders placed in it stay readable and refundable",
}


async def test_currencies_are_the_iso_4217_list_with_its_minor_units(pool: asyncpg.Pool) -> None:
    """The `currencies` table against SIX's ISO 4217 list (the `iso4217` package): every
    code with minor units there is here with the same units."""
    table = {r["code"]: r["minor_units"] for r in await pool.fetch("select * from currencies")}
    listed = {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}
    missing = sorted(set(listed) - set(table))
    extra = sorted(set(table) - set(listed) - set(KEPT))
    differing = {code: (table[code], listed[code]) for code in set(table) & set(listed)
                 if table[code] != listed[code]}
    assert (missing, extra, differing) == ([], [], {})
