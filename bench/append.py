"""Appends per second: ordergraph's append path vs the same SQL sent straight with asyncpg.

    python -m bench.append [--seconds 4] [--rounds 2]

Both contenders call `og_append` (schema.sql) with the same arguments; "ours" goes through
gql.store.append.append_event (event building, error mapping, retries), "raw" sends the
prepared statement with pre-built arguments. Rounds alternate contenders in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bench.common import fresh_database, machine, place_orders, postgres, server_version
from gql.events import EventType, NewEvent
from gql.identity import SYSTEM
from gql.store.append import APPEND, append_event
from gql.store.connection import create_pool

ITEM = {"sku": "BENCH-1", "quantity": 1, "unitPrice": "1.00"}


def ours(pool: asyncpg.Pool) -> Callable[[uuid.UUID], Awaitable[object]]:
    async def one(order_id: uuid.UUID) -> object:
        return await append_event(pool, NewEvent(order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM),
                                  SYSTEM.claims())
    return one


def raw(pool: asyncpg.Pool) -> Callable[[uuid.UUID], Awaitable[object]]:
    async def one(order_id: uuid.UUID) -> object:
        return await pool.fetchrow(APPEND, uuid.uuid4(), order_id, "ItemAddedToOrder", ITEM, None,
                                   None, None, None, None, None, 1)
    return one


async def measure(append: Callable[[uuid.UUID], Awaitable[object]], streams: list[uuid.UUID],
                  concurrency: int, seconds: float) -> float:
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


async def main(server: str, seconds: float, rounds: int) -> None:
    async with fresh_database(server) as url:
        pool = await create_pool(url, min_size=32, max_size=32)
        version = await server_version(url)
        distinct = await place_orders(pool, 32)
        hot = (await place_orders(pool, 1)) * 32
        print(f"# appends/s, PostgreSQL {version}, {machine()}, {datetime.now(UTC):%Y-%m-%d}")
        print("| workload | concurrency | ours/s | raw/s | ours/raw |")
        print("|---|---|---|---|---|")
        for name, streams in (("distinct streams", distinct), ("one hot stream", hot)):
            for concurrency in (1, 8, 32):
                results: dict[str, list[float]] = {"ours": [], "raw": []}
                for _ in range(rounds):
                    for contender, factory in (("ours", ours), ("raw", raw)):
                        results[contender].append(
                            await measure(factory(pool), streams, concurrency, seconds))
                o, r = max(results["ours"]), max(results["raw"])
                print(f"| {name} | {concurrency} | {o:,.0f} | {r:,.0f} | {o / r:.2f} |")
        print("\n# NOTIFY cost (raw appends/s, distinct streams)")
        print("| concurrency | with NOTIFY | without | with/without |")
        print("|---|---|---|---|")
        for concurrency in (1, 8, 32):
            results = {"on": [], "off": []}
            for _ in range(rounds):
                for state in ("on", "off"):
                    toggle = "enable" if state == "on" else "disable"
                    await pool.execute(f"alter table order_events {toggle} trigger order_events_notify")
                    results[state].append(await measure(raw(pool), distinct, concurrency, seconds))
            await pool.execute("alter table order_events enable trigger order_events_notify")
            on, off = max(results["on"]), max(results["off"])
            print(f"| {concurrency} | {on:,.0f} | {off:,.0f} | {on / off:.2f} |")
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="per contender and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with postgres() as server:
        asyncio.run(main(server, args.seconds, args.rounds))
