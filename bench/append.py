"""Appends per second: ordergraph's append path, the raw og_append, and the minimal append.

    python -m bench.append [--seconds 4] [--rounds 3] [--smoke]

Contenders, one at a time, rounds alternating, all on one server in one run:

- **ours**: gql.store.append.append_event (event building, error mapping, retries);
- **raw**: the same og_append statement sent with pre-built arguments;
- **minimal**: the least a durable append does, without rules: one statement that bumps a
  stream head's version and inserts the event into a copy of the log (same columns and
  indexes, no triggers). raw / minimal is what the rules cost (the state machine, the data's
  checks, the grants, idempotency, the read model's fold).

The doorbell (the NOTIFY trigger) is off while these run. Its cost is measured on its own,
last, with a connection LISTENing as a server's listener does: raw appends with the doorbell
(schema.sql's: one notifying transaction at a time, the others skip), with a NOTIFY from every
append transaction (what the doorbell replaced, as a bench-only trigger), and with neither.
Best of the rounds. `--smoke` runs every contender once for a fraction of a second: it checks that the
bench still runs, it measures nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bench.common import SMOKE, fresh_database, machine, place_orders, postgres, server_version
from gql.events import EventType, NewEvent
from gql.identity import SYSTEM
from gql.store.append import APPEND, append_event
from gql.store.connection import create_pool

ITEM = {"sku": "BENCH-1", "quantity": 1, "unitPrice": "1.00"}
Append = Callable[[uuid.UUID], Awaitable[object]]

# The minimal append's tables: the log's copy keeps its columns and indexes, not its rules.
MINIMAL_TABLES = """
create table bench_heads (order_id uuid primary key, version bigint not null);
create table bench_events (like order_events including defaults including indexes);
create sequence bench_position_seq;
insert into bench_heads select order_id, version from orders_current;
"""
MINIMAL = """
with head as (
    update bench_heads set version = version + 1 where order_id = $2 returning version
)
insert into bench_events (event_id, order_id, stream_version, global_position, log_xid,
                          event_type, payload, customer_id, status, schema_version)
select $1, $2, head.version, nextval('bench_position_seq'), pg_current_xact_id(),
       $3, $4, $5, 'PLACED', 1
from head
"""


def ours(pool: asyncpg.Pool) -> Append:
    async def one(order_id: uuid.UUID) -> object:
        return await append_event(pool, NewEvent(order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM),
                                  SYSTEM.claims())
    return one


def raw(pool: asyncpg.Pool) -> Append:
    async def one(order_id: uuid.UUID) -> object:
        return await pool.fetchrow(APPEND, uuid.uuid4(), order_id, "ItemAddedToOrder", ITEM,
                                   None, None, None, None, None, None, None, *SYSTEM.claims(),
                                   None)  # no traceparent: the bench is not traced
    return one


def minimal(pool: asyncpg.Pool, customer: uuid.UUID) -> Append:
    async def one(order_id: uuid.UUID) -> object:
        return await pool.execute(MINIMAL, uuid.uuid4(), order_id, "ItemAddedToOrder", ITEM,
                                  customer)
    return one


async def measure(append: Append, streams: list[uuid.UUID], concurrency: int,
                  seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        order_id = streams[n % len(streams)]
        while time.perf_counter() < deadline:
            await append(order_id)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - started)


async def best(contenders: dict[str, Append], streams: list[uuid.UUID], concurrency: int,
               seconds: float, rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, append in contenders.items():
            results[name].append(await measure(append, streams, concurrency, seconds))
    return {name: max(rates) for name, rates in results.items()}


# The doorbell before the try-lock: every append transaction NOTIFYs (bench database only).
EVERY_APPEND_NOTIFIES = """
create function bench_notify_every() returns trigger language plpgsql as $$
begin
    perform pg_notify('ordergraph_events', json_build_object(
        'position', new.global_position, 'orderId', new.order_id, 'type', new.event_type)::text);
    return null;
end $$;
create trigger bench_notify_every after insert on order_events
    for each row execute function bench_notify_every();
alter table order_events disable trigger bench_notify_every;
"""
DOORBELLS = {"doorbell": "order_events_notify", "every append": "bench_notify_every"}


async def notify(pool: asyncpg.Pool, on: bool, doorbell: str = "doorbell") -> None:
    """Turn the doorbell on or off; turning one on turns the other off."""
    for name, trigger in DOORBELLS.items():
        toggle = "enable always" if on and name == doorbell else "disable"
        await pool.execute(f"alter table order_events {toggle} trigger {trigger}")


async def notify_cost(pool: asyncpg.Pool, url: str, streams: list[uuid.UUID],
                      levels: tuple[int, ...], seconds: float, rounds: int) -> None:
    """Raw appends/s with the doorbell, with a NOTIFY from every append, and with neither."""
    heard = 0

    def hear(*_: object) -> None:
        nonlocal heard
        heard += 1

    listening = await asyncpg.connect(url)
    await listening.add_listener("ordergraph_events", hear)
    print("\n# NOTIFY cost (raw appends/s, distinct streams, one connection LISTENing)")
    print("| writers | doorbell | NOTIFY every append | without | doorbell/without "
          "| every/without | NOTIFYs per append (doorbell) |")
    print("|---|---|---|---|---|---|---|")
    for concurrency in levels:
        rates: dict[str, list[float]] = {"doorbell": [], "every append": [], "off": []}
        heard_by_doorbell = appended_by_doorbell = 0
        for _ in range(rounds):
            for state in rates:
                await notify(pool, state != "off", state)
                before = heard
                rate = await measure(raw(pool), streams, concurrency, seconds)
                rates[state].append(rate)
                if state == "doorbell":
                    await asyncio.sleep(0.05)  # the last notifications arrive
                    heard_by_doorbell += heard - before
                    appended_by_doorbell += round(rate * seconds)
        best_of = {state: max(values) for state, values in rates.items()}
        off = best_of["off"]
        print(f"| {concurrency} | {best_of['doorbell']:,.0f} | {best_of['every append']:,.0f} | "
              f"{off:,.0f} | {best_of['doorbell'] / off:.2f} | {best_of['every append'] / off:.2f} | "
              f"{heard_by_doorbell / max(appended_by_doorbell, 1):.2f} |")
    await listening.close()


async def main(server: str, seconds: float, rounds: int, levels: tuple[int, ...],
               smoke: bool = False) -> None:
    async with fresh_database(server) as url:
        pool = await create_pool(url, min_size=max(levels), max_size=max(levels))
        version = await server_version(url)
        distinct = await place_orders(pool, max(levels))
        hot = (await place_orders(pool, 1)) * max(levels)
        customer = await pool.fetchval("select customer_id from orders_current limit 1")
        await pool.execute(MINIMAL_TABLES)
        await pool.execute(EVERY_APPEND_NOTIFIES)
        contenders = {"ours": ours(pool), "raw": raw(pool), "minimal": minimal(pool, customer)}
        print(f"# appends/s, PostgreSQL {version}, {machine()}, {datetime.now(UTC):%Y-%m-%d}, "
              f"best of {rounds} rounds of {seconds:g} s, NOTIFY off")
        if smoke:
            print(f"# {SMOKE}")
        print("| workload | writers | ours/s | raw/s | minimal/s | ours/raw | raw/minimal |")
        print("|---|---|---|---|---|---|---|")
        await notify(pool, False)
        for name, streams in (("distinct streams", distinct), ("one hot stream", hot)):
            for concurrency in levels:
                rate = await best(contenders, streams, concurrency, seconds, rounds)
                print(f"| {name} | {concurrency} | {rate['ours']:,.0f} | {rate['raw']:,.0f} | "
                      f"{rate['minimal']:,.0f} | {rate['ours'] / rate['raw']:.2f} | "
                      f"{rate['raw'] / rate['minimal']:.2f} |")
        await notify_cost(pool, url, distinct, levels, seconds, rounds)
        await notify(pool, True)
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="per contender and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="run once, briefly: checks, measures nothing")
    args = parser.parse_args()
    with postgres() as server:
        if args.smoke:
            asyncio.run(main(server, 0.2, 1, (1, 2), smoke=True))
        else:
            asyncio.run(main(server, args.seconds, args.rounds, (1, 8, 32)))
