"""The raw limit: the workloads' rows fetched (or appends made) straight through asyncpg.

    python -m bench.raw --url URL --workload Q1 --params ids.txt [--form rows|json]
                        [--concurrency 32] [--pool 10] [--seconds 10] [--warmup 3]

Run by bench/compare.py as its own process (pinned where the servers are pinned), with the
same concurrency and pool size as the HTTP contenders; prints one JSON line: requests, p50,
p99. No HTTP and no GraphQL: one statement per read, either rows decoded by asyncpg with
the same codecs as ordergraph (`rows`) or the whole response document built by PostgreSQL and
fetched as one string (`json`); for W1 the two `og_append` statements of our append path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench.common import percentile
from bench.workloads import ADDED_ITEM, BY_ORDER_ID, PLACED_ITEMS, RAW_JSON_SQL, RAW_SQL, READS
from gql.identity import SYSTEM
from gql.store.append import APPEND
from gql.store.connection import create_pool

Operation = Callable[[int], Awaitable[object]]


def operation(pool: asyncpg.Pool, workload: str, params: list[str], form: str = "rows") -> Operation:
    if workload == "W1":
        async def append_two(n: int) -> object:
            order_id, customer = uuid.uuid4(), params[n % len(params)]
            placed = {"customerId": customer, "currency": "EUR", "items": PLACED_ITEMS}
            await pool.fetchrow(APPEND, uuid.uuid4(), order_id, "OrderPlaced", placed,
                                None, None, None, None, None, None, 1, *SYSTEM.claims(), None)
            return await pool.fetchrow(APPEND, uuid.uuid4(), order_id, "ItemAddedToOrder",
                                       ADDED_ITEM, None, None, None, None, None, None, 1,
                                       *SYSTEM.claims(), None)  # no traceparent: not traced
        return append_two
    sql = (RAW_JSON_SQL if form == "json" else RAW_SQL)[workload]
    if workload in BY_ORDER_ID:
        ids = [uuid.UUID(p) for p in params]
        return lambda n: pool.fetch(sql, ids[n % len(ids)])
    if workload == "Q3":
        return lambda n: pool.fetch(sql, params[n % len(params)])
    return lambda n: pool.fetch(sql)


async def drive(op: Operation, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    """Runs `op` from `concurrency` tasks for `seconds`; returns elapsed time and latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = 0

    async def worker(offset: int) -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            started = time.perf_counter()
            await op(offset + counter)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n * 997) for n in range(concurrency)))
    return time.perf_counter() - started, latencies


async def main(args: argparse.Namespace, params: list[str]) -> dict[str, float]:
    pool = await create_pool(args.url, min_size=args.pool, max_size=args.pool)
    try:
        op = operation(pool, args.workload, params, args.form)
        if args.warmup > 0:
            await drive(op, args.concurrency, args.warmup)
        elapsed, latencies = await drive(op, args.concurrency, args.seconds)
    finally:
        await pool.close()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "bad": 0}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--workload", required=True, choices=[*READS, "W1"])
    parser.add_argument("--params", help="file: order ids (Q1), statuses (Q3) or customer ids (W1)")
    parser.add_argument("--form", choices=["rows", "json"], default="rows",
                        help="rows decoded by asyncpg, or the response document built by PostgreSQL")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    arguments = parser.parse_args()
    try:
        import uvloop  # the event loop uvicorn uses for our server

        uvloop.install()
    except ImportError:
        pass
    lines = Path(arguments.params).read_text().splitlines() if arguments.params else []
    print(json.dumps(asyncio.run(main(arguments, [line for line in lines if line]))))
