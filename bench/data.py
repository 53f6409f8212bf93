"""Deterministic bench data (~8 events per order) and a fast loader that the database still checks.

    python -m bench.data --orders 20000 [--seed 7]      # load into a fresh embedded database, time it
    python -m bench.data --smoke                        # 200 orders: checks it works, measures nothing

The loader COPYs customers (sealed as the store seals them) and a staging table of events in
one round trip each, then moves the events into `order_events` with one `INSERT … SELECT` per
stream version: the log's triggers still run for every row (state machine, amounts,
projection into `orders_current`), so a row the domain would refuse aborts the load. Only the
NOTIFY trigger is off while loading (nobody listens yet, and 160,000 notifications in one
transaction are pure waste). A VACUUM ANALYZE ends it, as autovacuum would on a live system.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from gql.seed import CARRIERS, CATALOG, CURRENCIES, FIRST, LAST, PROVIDERS
from gql.store import personal
from gql.store.customers import SECRET, sealed

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
EVENT_FIELDS = ("event_id", "order_id", "event_type", "occurred_at", "correlation_id", "causation_id",
                "actor_type", "actor_id", "customer_id", "payload")


@dataclass(frozen=True)
class Customer:
    customer_id: uuid.UUID
    name: str
    email: str


@dataclass(frozen=True)
class Event:
    event_id: uuid.UUID
    order_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    actor_type: str
    actor_id: str
    customer_id: uuid.UUID
    payload: dict[str, Any]


@dataclass(frozen=True)
class Dataset:
    customers: list[Customer]
    streams: list[list[Event]]

    @property
    def events(self) -> int:
        return sum(len(s) for s in self.streams)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


class _Stream:
    def __init__(self, rng: random.Random, customer: uuid.UUID) -> None:
        self.rng, self.customer = rng, customer
        self.order_id, self.correlation = _uuid(rng), _uuid(rng)
        self.clock = ANCHOR - timedelta(minutes=rng.randint(0, 60 * 24 * 90))
        self.items: dict[str, tuple[int, Decimal]] = {}
        self.events: list[Event] = []

    def add(self, event_type: str, payload: dict[str, Any], actor: tuple[str, str]) -> None:
        self.clock += timedelta(minutes=self.rng.randint(1, 240), seconds=self.rng.randint(0, 59))
        self.events.append(Event(
            _uuid(self.rng), self.order_id, event_type, self.clock, self.correlation,
            self.events[-1].event_id if self.events else None, actor[0], actor[1], self.customer,
            payload))

    def add_item(self, sku: str, price: str, quantity: int) -> None:
        held = self.items.get(sku)
        price = str(held[1]) if held else price
        self.items[sku] = ((held[0] if held else 0) + quantity, Decimal(price))
        self.add("ItemAddedToOrder", {"sku": sku, "quantity": quantity, "unitPrice": price},
                 ("customer", str(self.customer)))

    @property
    def total(self) -> str:
        return str(sum((q * p for q, p in self.items.values()), Decimal("0")))


def plan_order(rng: random.Random, customer: uuid.UUID) -> list[Event]:
    """One order's life; ~8 events on average, every one allowed by the state machine."""
    s = _Stream(rng, customer)
    buyer = ("customer", str(customer))
    lines = []
    for sku, price in rng.sample(CATALOG, rng.randint(1, 3)):
        quantity = rng.randint(1, 3)
        s.items[sku] = (quantity, Decimal(price))
        lines.append({"sku": sku, "quantity": quantity, "unitPrice": price})
    s.add("OrderPlaced", {"customerId": str(customer), "currency": rng.choice(CURRENCIES),
                          "items": lines}, buyer)
    for _ in range(rng.randint(3, 6)):
        sku, price = rng.choice(CATALOG)
        held = s.items.get(sku)
        if held and rng.random() < 0.3:
            quantity = rng.randint(1, held[0])
            s.items[sku] = (held[0] - quantity, held[1])
            if s.items[sku][0] == 0:
                del s.items[sku]
            s.add("ItemRemovedFromOrder", {"sku": sku, "quantity": quantity}, buyer)
        else:
            s.add_item(sku, price, rng.randint(1, 2))
    fate = rng.random()
    if not s.items:
        s.add_item(*rng.choice(CATALOG), 1)
    if fate < 0.08:
        s.add("OrderCancelled", {"reason": "customer changed their mind"}, buyer)
        return s.events
    if fate < 0.16:
        return s.events  # still PLACED
    payments = ("service", rng.choice(PROVIDERS))
    amount = s.total
    s.add("PaymentAuthorized", {"amount": amount, "paymentProvider": payments[1],
                                "authorizationId": f"auth_{_uuid(rng).hex[:20]}"}, payments)
    if fate < 0.24:
        return s.events  # PAYMENT_AUTHORIZED
    s.add("PaymentCaptured", {"amount": amount}, payments)
    if fate < 0.30:
        s.add("PaymentCaptureReversed", {"amount": amount, "reason": "duplicate capture detected"},
              payments)
        s.add("OrderCancelled", {"reason": "refunded at customer request"}, ("user", "support"))
        return s.events
    if fate < 0.40:
        return s.events  # PAID
    s.add("OrderShipped", {"carrier": rng.choice(CARRIERS),
                           "trackingNumber": f"TRK{rng.randint(10**9, 10**10 - 1)}"},
          ("user", f"warehouse-{rng.randint(1, 4)}"))
    return s.events


def plan_customers(rng: random.Random, orders: int) -> list[Customer]:
    """One customer per five orders."""
    customers = []
    for n in range(max(1, orders // 5)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}.{n}@example.com".lower().replace(" ", "")
        customers.append(Customer(_uuid(rng), f"{first} {last}", email))
    return customers


def generate(orders: int, seed: int = 7) -> Dataset:
    rng = random.Random(seed)
    customers = plan_customers(rng, orders)
    streams = [plan_order(rng, rng.choice(customers).customer_id) for _ in range(orders)]
    return Dataset(customers, streams)


STAGE = """
create temp table og_bench_stage (
    version int not null, seq int not null, event_id uuid, order_id uuid, event_type text,
    occurred_at timestamptz, correlation_id uuid, causation_id uuid, actor_type text,
    actor_id text, customer_id uuid, payload text) on commit drop
"""
# whether the schema seals customers (releases before it held their name and e-mail in plain text)
SEALING = "select to_regclass('customer_keys') is not null"
MOVE = """
insert into order_events (event_id, order_id, event_type, occurred_at, correlation_id, causation_id,
                          actor_type, actor_id, customer_id, payload)
select event_id, order_id, event_type, occurred_at, correlation_id, causation_id, actor_type,
       actor_id, customer_id, payload::jsonb
from og_bench_stage where version = $1 order by seq
"""


async def load(url: str, data: Dataset) -> float:
    """Write `data` into the (migrated, empty) database at `url`; returns the seconds it took."""
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            if await conn.fetchval(SEALING):
                secret = await conn.fetchval(SECRET)
                keys = {c.customer_id: personal.new_key() for c in data.customers}
                await conn.copy_records_to_table(  # sealed as the store seals them, a key each
                    "customers", columns=["customer_id", "name", "email", "email_index"],
                    records=[(c.customer_id, *sealed(keys[c.customer_id], c.customer_id, c.name,
                                                     c.email, secret)) for c in data.customers])
                await conn.copy_records_to_table("customer_keys", columns=["customer_id", "key"],
                                                 records=list(keys.items()))
            else:  # a release from before sealing (bench.traces' "before"): plain text
                await conn.copy_records_to_table(
                    "customers", columns=["customer_id", "name", "email"],
                    records=[(c.customer_id, c.name, c.email) for c in data.customers])
            await conn.execute(STAGE)
            rows = [(version, seq, *(getattr(e, f) for f in EVENT_FIELDS[:-1]),
                     orjson.dumps(e.payload).decode())
                    for seq, stream in enumerate(data.streams)
                    for version, e in enumerate(stream, start=1)]
            await conn.copy_records_to_table("og_bench_stage", records=rows)
            await conn.execute("alter table order_events disable trigger order_events_notify")
            for version in range(1, max(len(s) for s in data.streams) + 1):
                await conn.execute(MOVE, version)
            await conn.execute("alter table order_events enable trigger order_events_notify")
        await conn.execute("vacuum analyze")  # every order row was rewritten ~8 times
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _main(server: str, orders: int, seed: int, smoke: bool) -> None:
    from bench.common import SMOKE, fresh_database, machine, server_version

    data = generate(orders, seed)
    async with fresh_database(server) as url:
        seconds = await load(url, data)
        conn = await asyncpg.connect(url)
        counts = await conn.fetch("select status, count(*) from orders_current group by 1 order by 1")
        events = await conn.fetchval("select count(*) from order_events")
        await conn.close()
        version = await server_version(url)
    print(f"# bench data set loaded through the log's rules; PostgreSQL {version}; {machine()}")
    if smoke:
        print(f"# {SMOKE}")
    print("| orders | events | per order | seconds | events/s | orders by status |")
    print("|---:|---:|---:|---:|---:|---|")
    statuses = ", ".join(f"{status} {count:,}" for status, count in counts)
    print(f"| {orders:,} | {data.events:,} | {data.events / orders:.1f} | {seconds:.1f} | "
          f"{data.events / seconds:,.0f} | {statuses} |")
    if sum(r["count"] for r in counts) != orders or events != data.events:
        raise SystemExit(f"loaded {sum(r['count'] for r in counts)} orders and {events} events "
                         f"of {orders} and {data.events}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders: checks that the bench works, measures nothing")
    args = parser.parse_args()
    from bench.common import postgres

    with postgres() as server:
        asyncio.run(_main(server, 200 if args.smoke else args.orders, args.seed, args.smoke))
