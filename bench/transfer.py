"""Import rate: `ordergraph import` of an export vs COPY of the same rows into a bare table.

    python -m bench.transfer [--orders 20000] [--seed 7] [--batch-size 1000] [--smoke]

Loads the bench data set (bench/data.py) into one fresh database, exports it with
`ordergraph export`, then in the same run times (a) `ordergraph import` of that file into a
second fresh database, through every rule of the append path, and (b) COPY of the same lines'
columns into an unconstrained, unindexed table there. Prints events/s of both and the ratio,
and checks that the imported log is the exported one. `--smoke` does it with 200 orders: it
checks that the bench works, its figures measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import orjson

from bench.common import SMOKE, fresh_database, machine, postgres, server_version
from bench.data import generate, load

BARE = """
create unlogged table if not exists bare_events (
    event_id uuid, order_id uuid, stream_version bigint, event_type text, occurred_at timestamptz,
    correlation_id uuid, causation_id uuid, actor_type text, actor_id text, customer_id uuid,
    payload jsonb, schema_version int)
"""
COLUMNS = ("event_id", "order_id", "stream_version", "event_type", "occurred_at", "correlation_id",
           "causation_id", "actor_type", "actor_id", "customer_id", "payload", "schema_version")
LOG_CHECKSUM = """
select md5(string_agg(concat_ws('|', event_id, order_id, stream_version, event_type, occurred_at,
                                correlation_id, causation_id, actor_type, actor_id, customer_id,
                                payload, schema_version), ',' order by log_xid, global_position))
from order_events
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gql", *args], capture_output=True, text=True,
                          check=True)


async def copy_bare(url: str, path: Path) -> float:
    """Seconds to COPY the file's rows into an unconstrained table (parsing included)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(BARE)
        started = time.perf_counter()
        with path.open("rb") as source:
            records = []
            for raw in source:
                e = orjson.loads(raw)
                records.append(tuple(orjson.dumps(e[c]).decode() if c == "payload" else e[c]
                                     for c in COLUMNS))
        await conn.copy_records_to_table("bare_events", records=_typed(records), columns=COLUMNS)
        return time.perf_counter() - started
    finally:
        await conn.close()


def _typed(records: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    import uuid
    from datetime import datetime

    out = []
    for r in records:
        out.append((uuid.UUID(r[0]), uuid.UUID(r[1]), r[2], r[3], datetime.fromisoformat(r[4]),
                    uuid.UUID(r[5]) if r[5] else None, uuid.UUID(r[6]) if r[6] else None,
                    r[7], r[8], uuid.UUID(r[9]), r[10], r[11]))
    return out


async def checksum(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(LOG_CHECKSUM)
    finally:
        await conn.close()


async def _main(server: str, orders: int, seed: int, batch_size: int, smoke: bool) -> None:
    data = generate(orders, seed)
    with tempfile.TemporaryDirectory(prefix="ordergraph-transfer-") as tmp:
        path = Path(tmp) / "log.ndjson"
        async with fresh_database(server) as source:
            await load(source, data)
            version = await server_version(source)
            started = time.perf_counter()
            cli("export", "--database-url", source, "--output", str(path))
            exported = time.perf_counter() - started
            expected = await checksum(source)
        async with fresh_database(server) as target:
            started = time.perf_counter()
            result = cli("import", str(path), "--batch-size", str(batch_size), "--database-url", target)
            imported = time.perf_counter() - started
            same = await checksum(target) == expected
            copied = await copy_bare(target, path)
        size = path.stat().st_size
    events = data.events
    print(f"# {orders:,} orders, {events:,} events, export {size / 1e6:.1f} MB; PostgreSQL {version}; "
          f"{machine()}")
    if smoke:
        print(f"# {SMOKE}")
    print("| step | seconds | events/s | outcome |")
    print("|---|---:|---:|---|")
    print(f"| ordergraph export | {exported:.2f} | {events / exported:,.0f} | {size:,} bytes |")
    print(f"| ordergraph import | {imported:.2f} | {events / imported:,.0f} | "
          f"{result.stdout.strip()}; same log: {same} |")
    print(f"| COPY into a bare table | {copied:.2f} | {events / copied:,.0f} | |")
    print(f"\nimport / COPY: {copied / imported:.2f}")
    if not same:
        raise SystemExit("the imported log differs from the exported one")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders: checks that the bench works, measures nothing")
    args = parser.parse_args()
    with postgres() as server:
        asyncio.run(_main(server, 200 if args.smoke else args.orders, args.seed, args.batch_size,
                          args.smoke))
