"""A small simulated shop for `serve --demo`: orders placed, paid, shipped, cancelled and
refunded as you watch, through the real append path, each step by the role that takes it.

A few new orders a second (`--demo-rate`); each lives for half a minute or so, its steps
seconds apart, at business time now. One process of a server runs it (an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

from gql.events import EventType, NewEvent
from gql.identity import Identity
from gql.seed import CARRIERS, CATALOG, CURRENCIES, PROVIDERS
from gql.store import Pool
from gql.store.append import append_event
from gql.store.demo import DEMO_LOCK, demo_customers, try_hold

log = logging.getLogger("ordergraph.demo")
PAYMENTS = Identity("service", "demo-payments", scope="payments")
WAREHOUSE = Identity("service", "demo-warehouse", scope="fulfilment")
STAFF = Identity("staff", "demo-support")
LIVES_AT_ONCE = 200  # orders in flight at most, whatever the rate

Step = Callable[[], Awaitable[object]]


class Shop:
    """Plans each new order's life and plays it out."""

    def __init__(self, pool: Pool, customers: list[uuid.UUID], rng: random.Random,
                 pace: float = 1.0) -> None:
        self.pool, self.customers, self.rng, self.pace = pool, customers, rng, pace
        self.lives: set[asyncio.Task[None]] = set()

    async def _append(self, who: Identity, order_id: uuid.UUID, type: EventType,
                      payload: dict[str, object]) -> None:
        await append_event(self.pool, NewEvent(order_id, type, payload, actor=who.actor),
                           who.claims())

    async def _pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high) * self.pace)

    async def life(self) -> None:
        """One order from placement to its end (shipped, cancelled, refunded)."""
        rng = self.rng
        customer = rng.choice(self.customers)
        buyer = Identity("customer", f"demo-{customer.hex[:8]}", customer_id=customer)
        order_id = uuid.uuid4()
        items = {sku: (rng.randint(1, 3), Decimal(price))
                 for sku, price in rng.sample(CATALOG, rng.randint(1, 3))}
        await self._append(buyer, order_id, EventType.ORDER_PLACED, {
            "customerId": str(customer), "currency": rng.choice(CURRENCIES),
            "items": [{"sku": s, "quantity": q, "unitPrice": str(p)} for s, (q, p) in items.items()]})
        if rng.random() < 0.4:
            await self._pause(1, 4)
            sku, price = rng.choice(CATALOG)
            held = items.get(sku)
            price_held = held[1] if held else Decimal(price)
            items[sku] = ((held[0] if held else 0) + 1, price_held)
            await self._append(buyer, order_id, EventType.ITEM_ADDED_TO_ORDER,
                               {"sku": sku, "quantity": 1, "unitPrice": str(price_held)})
        await self._pause(2, 6)
        if rng.random() < 0.1:
            await self._append(buyer, order_id, EventType.ORDER_CANCELLED,
                               {"reason": "changed my mind", "reasonCode": "CUSTOMER_REQUEST"})
            return
        amount = str(sum(q * p for q, p in items.values()))
        await self._append(PAYMENTS, order_id, EventType.PAYMENT_AUTHORIZED, {
            "amount": amount, "paymentProvider": rng.choice(PROVIDERS),
            "authorizationId": f"demo_{uuid.uuid4().hex[:20]}"})
        await self._pause(2, 6)
        if rng.random() < 0.08:
            await self._append(STAFF, order_id, EventType.ORDER_CANCELLED,
                               {"reason": "payment review failed", "reasonCode": "PAYMENT_FAILED"})
            return
        await self._append(PAYMENTS, order_id, EventType.PAYMENT_CAPTURED, {"amount": amount})
        await self._pause(3, 8)
        if rng.random() < 0.08:
            await self._append(STAFF, order_id, EventType.ORDER_CANCELLED,
                               {"reason": "out of stock", "reasonCode": "OUT_OF_STOCK"})
            await self._pause(2, 5)
            await self._append(PAYMENTS, order_id, EventType.REFUND_ISSUED,
                               {"amount": amount, "reason": "cancelled: out of stock"})
            return
        await self._append(WAREHOUSE, order_id, EventType.ORDER_SHIPPED, {
            "carrier": rng.choice(CARRIERS), "trackingNumber": f"DEMO{rng.randint(10**8, 10**9)}"})
        if rng.random() < 0.15:
            await self._pause(3, 8)
            part = (Decimal(amount) / 2).quantize(Decimal("0.01"))
            await self._append(PAYMENTS, order_id, EventType.REFUND_ISSUED,
                               {"amount": str(part), "reason": "one item arrived broken"})

    async def _live(self) -> None:
        try:
            await self.life()
        except Exception as exc:  # one order's trouble (the database away) is not the shop's
            log.warning("a demo order stopped: %s", exc)

    def open_one(self) -> None:
        if len(self.lives) < LIVES_AT_ONCE:
            task = asyncio.create_task(self._live())
            self.lives.add(task)
            task.add_done_callback(self.lives.discard)

    async def run(self, rate: float) -> None:
        """New orders at `rate` a second, until cancelled."""
        try:
            while True:
                self.open_one()
                await asyncio.sleep(self.rng.expovariate(rate))
        finally:
            for task in list(self.lives):
                task.cancel()
            await asyncio.gather(*self.lives, return_exceptions=True)


async def run_demo(pool: Pool, rate: float, pace: float = 1.0) -> None:
    """The shop, if no other process of this server runs it already; returns when cancelled."""
    async with contextlib.AsyncExitStack() as stack:
        if not await stack.enter_async_context(try_hold(pool, DEMO_LOCK)):
            return
        customers = await demo_customers(pool)
        if not customers:
            log.warning("the demo shop has no customers to sell to: seed some first")
            return
        await Shop(pool, customers, random.Random(), pace).run(rate)
