"""What upgrading a log of the bench data set costs: the status backfill (0003) alone, and the
whole upgrade from release 0.1 to this release.

    python -m bench.backfill [--orders 20000] [--seed 7] [--smoke]

Builds a database of release 0.1 (tests/fixtures/schema-0.1.sql) and loads the bench data set
into it with bench/data.py's loader, through release 0.1's own rules. A copy of it is made, then:

- **0003 alone**: steps 0001 and 0002 (tables only, no data) are applied untimed, then step
  0003 is timed in its own transaction with release 0.1's functions in place, as `migrate`
  runs it before it re-applies the definitions: one recursive walk of every stream over
  `order_transitions`, an UPDATE of every event, the NOT NULL and foreign-key checks;
- **the whole upgrade**: `migrate` on the copy, as `ordergraph migrate` runs it: every
  numbered step, every definition dropped and applied again, and the read model folded again
  from the log (the fold changed since release 0.1), in one transaction.

Both are checked: each stream's last event stores the read model's status, and after the
upgrade nothing is pending. `--smoke` runs it on 200 orders: it checks that the bench works,
its figures measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import asyncpg

from bench.common import SMOKE, empty_database, machine, server_version
from bench.data import generate, load
from gql.store.connection import connect
from gql.store.migrations import RECORD, available, migrate, pending

RELEASE_0_1 = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "schema-0.1.sql"
BACKFILL = 3  # the step that stores each event's status
LAST_STATUS_DIFFERS = """
select count(*) from orders_current o join order_events e
  on e.order_id = o.order_id and e.stream_version = o.version
where e.status is distinct from o.status
"""


async def _release_0_1(url: str, orders: int, seed: int) -> tuple[int, float]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(RELEASE_0_1.read_text())
    finally:
        await conn.close()
    data = generate(orders, seed)
    return data.events, await load(url, data)


async def _backfill_alone(url: str) -> tuple[float, int]:
    """Steps before 0003 untimed, then 0003 timed; returns its seconds and the check."""
    before, step = available()[:BACKFILL - 1], available()[BACKFILL - 1]
    conn = await connect(url)
    try:
        for m in before:
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(RECORD, m.version, m.name)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(step.sql)
            await conn.execute(RECORD, step.version, step.name)
        seconds = time.perf_counter() - started
        assert [m.label for m in await pending(conn) or []] == [m.label for m in available()[BACKFILL:]]
        return seconds, await conn.fetchval(LAST_STATUS_DIFFERS)
    finally:
        await conn.close()


async def _upgrade(url: str) -> tuple[float, str, int]:
    """`migrate` from release 0.1, timed; returns its seconds, what it did and the check."""
    conn = await connect(url)
    try:
        started = time.perf_counter()
        result = await migrate(conn)
        seconds = time.perf_counter() - started
        if await pending(conn) != [] or not result.redefined:
            raise SystemExit("the upgrade left the database behind this release")
        did = (f"{result.applied[0].label}…{result.applied[-1].label}, definitions, "
               f"read model folded again ({result.refolded or 0:,} orders)")
        return seconds, did, await conn.fetchval(LAST_STATUS_DIFFERS)
    finally:
        await conn.close()


async def _run(server: str, orders: int, seed: int, smoke: bool) -> None:
    async with empty_database(server) as original:
        events, loaded = await _release_0_1(original, orders, seed)
        version = await server_version(original)
        async with empty_database(server, template=original) as copy:
            alone, alone_differs = await _backfill_alone(original)
            upgrade, did, upgrade_differs = await _upgrade(copy)
    print(f"# upgrades of a release 0.1 log: {orders:,} orders, {events:,} events (loaded in "
          f"{loaded:.1f}s); PostgreSQL {version}; {machine()}")
    if smoke:
        print(f"# {SMOKE}")
    label = available()[BACKFILL - 1].label
    print("| upgrade | what it does | seconds | events/s | streams whose last event's status "
          "differs from the read model |")
    print("|---|---|---:|---:|---:|")
    print(f"| {label} alone | walks every stream over order_transitions, stores each event's "
          f"status | {alone:.2f} | {events / alone:,.0f} | {alone_differs} |")
    print(f"| migrate from release 0.1 | {did} | {upgrade:.2f} | {events / upgrade:,.0f} "
          f"| {upgrade_differs} |")
    if alone_differs or upgrade_differs:
        raise SystemExit("the stored statuses disagree with the read model")


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
        asyncio.run(_run(server, 200 if args.smoke else args.orders, args.seed, args.smoke))
