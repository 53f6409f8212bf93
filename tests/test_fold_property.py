"""Random valid event sequences, through GraphQL and through plain SQL: the read model stays
the fold of the log, a rebuild changes nothing, and stateAt(version: v) is the order as the
read model held it after its v-th event.

Which events may come next is the declared state machine (tests/factories.py's ALLOWED and
each type's further condition); only the data of each type is written here.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from gql.catalogue import CATALOGUE
from gql.config import Settings
from gql.events import EventType, OrderStatus
from gql.http.app import create_app
from gql.identity import SYSTEM
from gql.store.append import register_customer
from gql.store.connection import create_pool
from gql.store.projections import rebuild_projections
from gql.store.tallies import compact_tallies
from tests.factories import ALLOWED

STEPS = 25
EXAMPLES = 15
CURRENCIES = {"EUR": 2, "JPY": 0, "KWD": 3}
SKUS = ("A", "B", "C")
FOLD_DIFFERS = """
select count(*) from (
    (select * from orders_current except
     select (og_fold(e order by e.stream_version)).* from order_events e group by e.order_id)
    union all
    (select (og_fold(e order by e.stream_version)).* from order_events e group by e.order_id
     except select * from orders_current)) d
"""
STATE = """query($id: UUID!, $v: Int) { order(id: $id) { stateAt(version: $v) {
  status version totalAmount authorizedAmount capturedAmount refundedAmount
  items { sku quantity unitPrice } } } }"""
# the tallies (og_order_statistics, og_log_count) against the read model and the log
TALLIED = """
select status, currency, orders, total_amount, authorized_amount, captured_amount, refunded_amount
from og_order_statistics(p_statuses => null, p_customer => null, p_placed_after => null,
                         p_placed_before => null, p_viewer => null)
"""
COUNTED = """
select status, currency, count(*), sum(total_amount), sum(authorized_amount), sum(captured_amount),
       sum(refunded_amount)
from orders_current group by status, currency
"""
EVENTS_BY_TYPE = """
select t.event_type,
       og_log_count(p_types => array[t.event_type], p_stream => null, p_correlation => null,
                    p_occurred_after => null, p_occurred_before => null, p_viewer => null) kept,
       (select count(*) from order_events e where e.event_type = t.event_type) counted
from order_transitions t group by t.event_type
"""
RAW_INSERT = ("insert into order_events (event_id, order_id, event_type, payload, customer_id) "
              "values ($1, $2, $3, $4, $5)")


def _amount(draw: Any, currency: str, low: Decimal, high: Decimal) -> str:
    """An amount in [low, high] with the currency's minor units at most."""
    step = Decimal(1).scaleb(-CURRENCIES[currency])
    units = draw(st.integers(int(low / step), int(high / step)))
    return str(units * step)


def data_for(draw: Any, event_type: EventType, order: asyncpg.Record | None,
             customer_id: uuid.UUID) -> dict[str, Any]:
    """Valid data for `event_type` on `order` (None: a new stream)."""
    currency = order["currency"] if order else draw(st.sampled_from(sorted(CURRENCIES)))
    held = {i["sku"]: i for i in order["items"]} if order else {}

    def price() -> str:
        return _amount(draw, currency, Decimal(1), Decimal(50))

    match event_type.value:
        case "OrderPlaced":
            skus = draw(st.lists(st.sampled_from(SKUS), max_size=2, unique=True))
            return {"customerId": str(customer_id), "currency": currency,
                    "items": [{"sku": s, "quantity": draw(st.integers(1, 3)), "unitPrice": price()}
                              for s in skus]}
        case "ItemAddedToOrder":
            sku = draw(st.sampled_from(SKUS))
            return {"sku": sku, "quantity": draw(st.integers(1, 3)),
                    "unitPrice": held[sku]["unitPrice"] if sku in held else price()}
        case "ItemRemovedFromOrder":
            sku = draw(st.sampled_from(sorted(held)))
            return {"sku": sku, "quantity": draw(st.integers(1, held[sku]["quantity"]))}
        case "PaymentAuthorized":
            return {"amount": str(order["total_amount"]), "paymentProvider": "p",
                    "authorizationId": str(uuid.uuid4())}
        case "PaymentCaptured":
            return {"amount": str(order["authorized_amount"])}
        case "PaymentCaptureReversed":
            return {"amount": str(order["captured_amount"] - order["refunded_amount"]),
                    "reason": "chargeback"}
        case "OrderShipped":
            return {"carrier": "DHL", "trackingNumber": draw(st.text("ABC123", min_size=1, max_size=8))}
        case "OrderCancelled":
            return {"reason": "changed mind", "reasonCode": "CUSTOMER_REQUEST"}
        case "RefundIssued":
            left = order["captured_amount"] - order["refunded_amount"]
            return {"amount": _amount(draw, currency, Decimal(1).scaleb(-CURRENCIES[currency]), left),
                    "reason": "broken"}
        case "CustomerForgotten":  # allowed only after forgetCustomer: never drawn here
            return {}
    raise AssertionError(f"write the data of {event_type.value} in data_for")


def possible(event_type: EventType, order: asyncpg.Record | None) -> bool:
    """Whether the declared state machine lets `event_type` follow, and valid data exists."""
    moves = ALLOWED[event_type]
    if order is None:
        return None in moves
    if OrderStatus(order["status"]) not in moves:
        return False
    if event_type.value == "ItemRemovedFromOrder" and not order["items"]:
        return False
    return not (event_type.value == "PaymentAuthorized" and order["total_amount"] <= 0)


class Orders(RuleBasedStateMachine):
    """Appends to a handful of orders, checking the fold after every step."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool = self.run(create_pool(self.url, min_size=1, max_size=4, generic_plans=True))
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
            Settings(database_url=self.url), pool=self.pool)), base_url="http://localhost")
        self.customer = uuid.uuid4()
        self.run(register_customer(self.pool, self.customer, "Prop", f"{self.customer}@x.test",
                                   SYSTEM.claims()))
        self.orders: list[uuid.UUID] = []
        self.states: dict[tuple[uuid.UUID, int], asyncpg.Record] = {}

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.http.aclose())
        self.run(self.pool.close())
        self.loop.close()

    async def _order(self, order_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow("select * from orders_current where order_id = $1", order_id)

    @rule(data=st.data(), graphql=st.booleans())
    def append(self, data: st.DataObject, graphql: bool) -> None:
        # mostly the orders there are, so that streams grow long enough to reach every status
        new = not self.orders or (len(self.orders) < 3 and data.draw(st.integers(0, 4)) == 0)
        order_id = uuid.uuid4() if new else data.draw(st.sampled_from(self.orders))
        order = self.run(self._order(order_id))
        choices = [t for t in EventType if possible(t, order)]
        allowed = [t for t in choices if order is None or self.run(self._allows(t, order_id))]
        if not allowed:
            return
        event_type = data.draw(st.sampled_from(allowed))
        payload = data_for(data.draw, event_type, order, self.customer)
        if graphql:
            self.run(self._mutate(event_type, order_id, payload))
        else:
            self.run(self.pool.execute(RAW_INSERT, uuid.uuid4(), order_id, event_type.value,
                                       payload, self.customer))
        if order is None:
            self.orders.append(order_id)
        after = self.run(self._order(order_id))
        self.states[(order_id, after["version"])] = after

    async def _allows(self, event_type: EventType, order_id: uuid.UUID) -> bool:
        condition = CATALOGUE.event(event_type.value).allowed_while
        if condition is None:
            return True
        return bool(await self.pool.fetchval(
            f"select {condition} from orders_current s where order_id = $1", order_id))

    async def _mutate(self, event_type: EventType, order_id: uuid.UUID,
                      payload: dict[str, Any]) -> None:
        declared = CATALOGUE.event(event_type.value)
        name = declared.mutation[0].upper() + declared.mutation[1:]
        query = (f"mutation($input: {name}Input!) {{ {declared.mutation}(input: $input) "
                 "{ deduplicated } }")
        data = {k: v for k, v in payload.items()}
        response = await self.http.post("/graphql", json={"query": query, "variables": {
            "input": {"orderId": str(order_id), **data}}})
        assert "errors" not in response.json(), (event_type, data, response.json())

    @invariant()
    def read_model_is_the_fold(self) -> None:
        assert self.run(self.pool.fetchval(FOLD_DIFFERS)) == 0

    @rule()
    def compact_the_tallies(self) -> None:
        self.run(compact_tallies(self.pool))

    @invariant()
    def tallies_count_what_the_database_holds(self) -> None:
        kept = self.run(self.pool.fetch(TALLIED))
        counted = self.run(self.pool.fetch(COUNTED))
        assert sorted(map(tuple, kept)) == sorted(map(tuple, counted))
        events = self.run(self.pool.fetch(EVENTS_BY_TYPE))
        assert all(row["kept"] == row["counted"] for row in events), [dict(r) for r in events]

    @invariant()
    def a_rebuild_changes_nothing(self) -> None:
        async def rebuild() -> int:
            async with self.pool.acquire() as conn:
                return (await rebuild_projections(conn)).changed_rows
        assert self.run(rebuild()) == 0

    @invariant()
    def state_at_each_version_is_the_read_model_then(self) -> None:
        for (order_id, version), row in list(self.states.items())[-4:]:
            response = self.run(self.http.post("/graphql", json={
                "query": STATE, "variables": {"id": str(order_id), "v": version}}))
            state = response.json()["data"]["order"]["stateAt"]
            assert state == {
                "status": row["status"], "version": version,
                "totalAmount": str(row["total_amount"]),
                "authorizedAmount": str(row["authorized_amount"]),
                "capturedAmount": str(row["captured_amount"]),
                "refundedAmount": str(row["refunded_amount"]),
                "items": [{"sku": i["sku"], "quantity": i["quantity"], "unitPrice": i["unitPrice"]}
                          for i in row["items"]],
            }, (order_id, version)


def test_random_event_sequences_keep_the_read_model_the_fold(database_url: str) -> None:
    Orders.url = database_url
    run_state_machine_as_test(Orders, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
