"""The upgrade that stores each event's status (0003) on a log of the bench data set.

    python -m bench.backfill [--orders 20000] [--seed 7]

Builds a database of the release before it (release 0.1's schema, then the migrations up to
0002), loads the bench data set into it with bench/data.py's loader, and times the pending
step in its own transaction, as `ordergraph migrate` runs it: the backfill folds every stream
once with og_evolve. Checks that each stream's last event stores the read model's status.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.data import generate, load
from gql.store.connection import connect
from gql.store.migrations import RECORD, available, pending

RELEASE_0_1 = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "schema-0.1.sql"
LAST_STATUS_DIFFERS = """
select count(*) from orders_current o join order_events e
  on e.order_id = o.order_id and e.stream_version = o.version
where e.status is distinct from o.status
"""


async def _run(server: str, orders: int, seed: int) -> None:
    name = f"og_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'create database "{name}"')
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        conn = await connect(url)
        await conn.execute(RELEASE_0_1.read_text())
        *before, last = available()
        for m in before:
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(RECORD, m.version, m.name)
        await conn.close()
        data = generate(orders, seed)
        loaded = await load(url, data)
        conn = await connect(url)
        assert await pending(conn) == [last]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(last.sql)
            await conn.execute(RECORD, last.version, last.name)
        seconds = time.perf_counter() - started
        events = await conn.fetchval("select count(*) from order_events")
        differing = await conn.fetchval(LAST_STATUS_DIFFERS)
        await conn.close()
        print(f"{orders} orders, {events} events (loaded in {loaded:.1f}s); {last.label} took "
              f"{seconds:.2f}s: {events / seconds:,.0f} events/s; {differing} streams whose last "
              f"event's status differs from the read model")
    finally:
        await admin.execute(f'drop database "{name}" with (force)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from bench.common import postgres

    with postgres() as server:
        asyncio.run(_run(server, args.orders, args.seed))
