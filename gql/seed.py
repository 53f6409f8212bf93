"""Deterministic, realistic demo data, written through the real append path.

The same `--seed` gives the same customers, orders, events, ids and times; only the
interleaving of streams in the global log depends on timing.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gql.events import Actor, EventType, NewEvent
from gql.identity import SYSTEM
from gql.store import Pool
from gql.store.append import append_event, register_customer

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
CATALOG = [
    ("TEA-SENCHA-100G", "8.90"), ("TEA-ASSAM-250G", "12.50"), ("MUG-STONEWARE", "14.00"),
    ("KETTLE-GOOSENECK", "64.99"), ("FILTER-PAPER-100", "4.25"), ("GRINDER-BURR", "129.00"),
    ("BEANS-ETHIOPIA-1KG", "31.40"), ("BEANS-COLOMBIA-1KG", "28.75"), ("SCALE-0.1G", "39.95"),
    ("CUP-ESPRESSO-2PK", "18.00"), ("TAMPER-58MM", "22.50"), ("CARAFE-600ML", "26.00"),
]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia",
         "Tim", "Margaret", "Linus", "Guido", "Anita", "Leslie", "Sophie", "Niklaus", "Joan"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
        "Perlman", "Berners-Lee", "Hamilton", "Torvalds", "van Rossum", "Borg", "Lamport",
        "Wilson", "Wirth", "Clarke"]
CARRIERS = ["DHL", "UPS", "FedEx", "PostNL", "La Poste"]
PROVIDERS = ["stripe", "adyen", "paypal"]
CURRENCIES = ["EUR", "EUR", "EUR", "USD", "GBP"]



def _cancelled(reason: str, code: str) -> dict[str, str]:
    return {"reason": reason, "reasonCode": code}

def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass(frozen=True)
class Seeded:
    customers: int
    orders: int
    events: int


class _Stream:
    """Builds one order's events, each caused by the one before, at increasing times."""

    def __init__(self, rng: random.Random, customer: uuid.UUID, placed_at: datetime) -> None:
        self.rng = rng
        self.order_id = _uuid(rng)
        self.customer = customer
        self.correlation = _uuid(rng)
        self.clock = placed_at
        self.previous: uuid.UUID | None = None
        self.events: list[NewEvent] = []
        self.items: dict[str, tuple[int, Decimal]] = {}

    def add(self, type: EventType, payload: dict[str, object], actor: Actor, *,
            late: bool = False, minutes: int | None = None) -> None:
        self.clock += timedelta(minutes=self.rng.randint(2, 600) if minutes is None else minutes)
        occurred = self.clock
        if late and len(self.events) >= 2:
            # reported late: it happened between the placement and the previous event
            first, previous = self.events[0].occurred_at, self.events[-1].occurred_at
            assert first is not None and previous is not None
            span = int((previous - first).total_seconds() // 60)
            occurred = first + timedelta(minutes=self.rng.randint(1, max(1, span - 1)))
        event = NewEvent(
            order_id=self.order_id, type=type, payload=payload, event_id=_uuid(self.rng),
            occurred_at=occurred, correlation_id=self.correlation, causation_id=self.previous,
            actor=actor,
        )
        self.events.append(event)
        self.previous = event.event_id

    @property
    def total(self) -> Decimal:
        return sum((q * p for q, p in self.items.values()), Decimal("0"))


def plan_order(rng: random.Random, customer: uuid.UUID) -> list[NewEvent]:
    """One order's life: placement, item changes, payment, shipment or cancellation."""
    placed_at = ANCHOR - timedelta(minutes=rng.randint(0, 60 * 24 * 60))
    stream = _Stream(rng, customer, placed_at)
    buyer = Actor("customer", str(customer))
    lines = []
    for sku, price in rng.sample(CATALOG, rng.randint(1, 3)):
        quantity = rng.randint(1, 3)
        stream.items[sku] = (quantity, Decimal(price))
        lines.append({"sku": sku, "quantity": quantity, "unitPrice": price})
    stream.clock -= timedelta(minutes=2)
    stream.add(EventType.ORDER_PLACED, {"customerId": str(customer),
               "currency": rng.choice(CURRENCIES), "items": lines}, buyer)
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        sku, price = rng.choice(CATALOG)
        held = stream.items.get(sku)
        if held and rng.random() < 0.5:
            quantity = rng.randint(1, held[0])
            stream.items[sku] = (held[0] - quantity, held[1])
            if stream.items[sku][0] == 0:
                del stream.items[sku]
            stream.add(EventType.ITEM_REMOVED_FROM_ORDER, {"sku": sku, "quantity": quantity}, buyer)
        else:
            quantity = rng.randint(1, 2)
            price = str(held[1]) if held else price
            stream.items[sku] = ((held[0] if held else 0) + quantity, Decimal(price))
            stream.add(EventType.ITEM_ADDED_TO_ORDER,
                       {"sku": sku, "quantity": quantity, "unitPrice": price}, buyer,
                       late=rng.random() < 0.3)
    fate = rng.random()
    if stream.total == 0 or fate < 0.10:
        if stream.total == 0 or rng.random() < 0.5:
            stream.add(EventType.ORDER_CANCELLED,
                       _cancelled("customer changed their mind", "CUSTOMER_REQUEST"), buyer)
        return stream.events
    payments = Actor("service", rng.choice(PROVIDERS))
    amount = str(stream.total)
    stream.add(EventType.PAYMENT_AUTHORIZED, {"amount": amount, "paymentProvider": payments.id,
               "authorizationId": f"auth_{_uuid(rng).hex[:20]}"}, payments)
    if fate < 0.20:
        if rng.random() < 0.5:
            stream.add(EventType.ORDER_CANCELLED, _cancelled("payment review failed", "PAYMENT_FAILED"),
                       Actor("user", "risk-desk"))
        return stream.events
    stream.add(EventType.PAYMENT_CAPTURED, {"amount": amount}, payments, late=rng.random() < 0.15)
    if fate < 0.27:
        stream.add(EventType.PAYMENT_CAPTURE_REVERSED, {"amount": amount,
                   "reason": "duplicate capture detected"}, payments)
        if rng.random() < 0.5:
            stream.add(EventType.ORDER_CANCELLED,
                       _cancelled("refunded at customer request", "CUSTOMER_REQUEST"),
                       Actor("user", "support"))
            return stream.events
        stream.add(EventType.PAYMENT_CAPTURED, {"amount": amount}, payments)
    if fate < 0.35:
        if rng.random() < 0.3:
            stream.add(EventType.ORDER_CANCELLED, _cancelled("out of stock", "OUT_OF_STOCK"),
                       Actor("user", "warehouse"))
        return stream.events
    stream.add(EventType.ORDER_SHIPPED, {"carrier": rng.choice(CARRIERS),
               "trackingNumber": f"TRK{rng.randint(10**9, 10**10 - 1)}"},
               Actor("user", f"warehouse-{rng.randint(1, 4)}"))
    if fate > 0.93:  # a return, a week later (no draw of its own: every other order stays as it was)
        stream.add(EventType.REFUND_ISSUED, {"amount": amount, "reason": "returned unopened"},
                   payments, minutes=7 * 24 * 60)
    return stream.events


async def seed(
    pool: Pool,
    *,
    orders: int,
    customers: int | None = None,
    seed: int = 1,
    concurrency: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Seeded:
    """Write `orders` orders for `customers` customers; `progress` is told of each order."""
    rng = random.Random(seed)
    customer_count = customers or max(1, orders // 5)
    customer_ids = []
    for n in range(customer_count):
        customer_id = _uuid(rng)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}.{n}@example.com".lower().replace(" ", "")
        await register_customer(pool, customer_id, f"{first} {last}", email, SYSTEM.claims())
        customer_ids.append(customer_id)
    plans = [plan_order(rng, rng.choice(customer_ids)) for _ in range(orders)]
    queue: asyncio.Queue[list[NewEvent]] = asyncio.Queue()
    for plan in plans:
        queue.put_nowait(plan)

    async def work() -> None:
        while not queue.empty():
            for event in queue.get_nowait():
                await append_event(pool, event, SYSTEM.claims())
            if progress is not None:
                progress(1)

    await asyncio.gather(*(work() for _ in range(concurrency)))
    return Seeded(customer_count, orders, sum(len(p) for p in plans))
