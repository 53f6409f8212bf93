"""Cost as the log grows: the same reads and writes on a small and a large database, one run.

    python -m bench.growth generate --orders 1000000 --output big.ndjson   # the data, as an export
    ordergraph import big.ndjson --database-url URL                         # loaded through the rules
    python -m bench.growth compare --small URL --large URL [--seconds 10] [--rounds 2]
    python -m bench.growth --smoke      # all three on 100 and 300 orders: checks, measures nothing

`generate` streams the bench data set (bench/data.py: ~8 events per order, one customer per
five orders) as an `ordergraph export` file: orders come in chunks of 1,000 whose events are
written version by version, cancellations with the first OrderCancelled schema_version (so the
large log holds old events that every read upcasts). `compare` serves each database with
`ordergraph serve` (one worker, pinned to one core) and drives Q1, Q3, W1, E1 (the
`events(after:)` page at the head of the log) and S1 (the dashboard's `orderStatistics`, every
order counted and summed) with wrk from the other core, the two databases
alternating within every round; then times `rebuild-projections` on both and measures bytes
per event on disk. Figures go to bench/RESULTS.md by hand, with the command.

`--smoke` does the whole recipe in one process: generates exports of 100 and 300 orders,
imports each with `ordergraph import` into a fresh database of an embedded PostgreSQL (or
DATABASE_URL's server), and compares them with 1 s cells, no warm-up and one round on free
ports, rebuild included; it fails when a request failed or a rebuild changed a row. It shows
that the bench works; its figures measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import asyncpg
import orjson

from bench import peers
from bench.common import SMOKE, empty_database, free_ports, postgres
from bench.compare import ensure_wrk, wrk
from bench.data import Customer, plan_customers, plan_order
from bench.workloads import OURS, STATUSES, request_bodies

CHUNK = 1000
E1 = """query E1($after: String) { events(first: 50, after: $after) {
    nodes { id type orderId streamVersion occurredAt payload } pageInfo { endCursor } } }"""
S1 = """query S1 { orderStatistics { count byStatus { status count }
    byCurrency { currency count totalAmount capturedAmount refundedAmount } } }"""
WORKLOADS = ("Q1", "Q3", "W1", "E1", "S1")


def generate(orders: int, seed: int, out: IO[bytes]) -> int:
    rng = random.Random(seed)
    customers = plan_customers(rng, orders)
    written = 0
    for start in range(0, orders, CHUNK):
        streams = []
        for _ in range(min(CHUNK, orders - start)):
            customer = rng.choice(customers)
            streams.append((customer, plan_order(rng, customer.customer_id)))
        for version in range(max(len(s) for _, s in streams)):
            for customer, stream in streams:
                if version < len(stream):
                    out.write(_line(stream[version], version + 1, customer))
                    written += 1
    return written


def _line(e: Any, version: int, customer: Customer) -> bytes:
    line: dict[str, Any] = {
        "event_id": e.event_id, "order_id": e.order_id, "stream_version": version,
        "event_type": e.event_type, "occurred_at": e.occurred_at.isoformat(),
        "correlation_id": e.correlation_id, "causation_id": e.causation_id,
        "actor_type": e.actor_type, "actor_id": e.actor_id, "customer_id": e.customer_id,
        "schema_version": 1, "payload": e.payload,
    }
    if e.event_type == "OrderPlaced":
        line["customer"] = {"name": customer.name, "email": customer.email}
    return orjson.dumps(line) + b"\n"


async def _facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("""
            select (select count(*) from order_events) as events,
                   (select count(*) from orders_current) as orders,
                   pg_total_relation_size('order_events') as log_bytes,
                   pg_relation_size('order_events') as heap_bytes,
                   pg_database_size(current_database()) as database_bytes""")
        orders = [r[0] for r in await conn.fetch(
            "select order_id from orders_current tablesample system (1) limit 4000")]
        if len(orders) < 100:  # a small table has few pages to sample from
            orders = [r[0] for r in await conn.fetch("select order_id from orders_current limit 4000")]
        customers = [r[0] for r in await conn.fetch("select customer_id from customers limit 500")]
        head = await conn.fetchval("""
            select og_position(log_xid, global_position) from order_events
            order by log_xid desc, global_position desc offset 200 limit 1""")
    finally:
        await conn.close()
    return {**dict(row), "order_ids": orders, "customer_ids": customers, "head": head}


def _bodies(work: Path, name: str, facts: dict[str, Any]) -> dict[str, Path]:
    paths = {}
    for workload in WORKLOADS:
        if workload == "E1":
            query = " ".join(E1.split())
            lines = [orjson.dumps({"query": query, "variables": {"after": facts["head"]}}).decode()]
        elif workload == "S1":
            lines = [orjson.dumps({"query": " ".join(S1.split())}).decode()]
        else:
            lines = request_bodies("ours", workload, facts["order_ids"], facts["customer_ids"])
        paths[workload] = work / f"{name}-{workload}.txt"
        paths[workload].write_text("\n".join(lines) + "\n")
    return paths


def _rebuild(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gql", "rebuild-projections", "--database-url", url],
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout.strip()


def _ratio(large: float, small: float) -> str:
    return f"{large / small:.2f}" if small else "n/a"


def compare(args: argparse.Namespace) -> None:
    ensure_wrk()
    assert set(OURS) >= {"Q1", "Q3", "W1"} and STATUSES
    with tempfile.TemporaryDirectory(prefix="ordergraph-growth-") as tmp:
        work = Path(tmp)
        sizes = {"small": args.small, "large": args.large}
        facts = {name: asyncio.run(_facts(url)) for name, url in sizes.items()}
        bodies = {name: _bodies(work, name, facts[name]) for name in sizes}
        for name in sizes:
            f = facts[name]
            print(f"{name}: {f['orders']:,} orders, {f['events']:,} events, "
                  f"{f['log_bytes'] / f['events']:.0f} bytes/event in order_events with its indexes "
                  f"({f['heap_bytes'] / f['events']:.0f} heap), database {f['database_bytes'] / 1e9:.2f} GB",
                  flush=True)
        ports = free_ports(2) if args.port is None else [args.port, args.port + 1]
        servers = {name: peers.ours(url, port, args.pool, args.server_cpu, work / f"{name}.log")
                   for port, (name, url) in zip(ports, sizes.items(), strict=True)}
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        try:
            for server in servers.values():  # both boot at once, then each must answer
                server.spawn()
            for server in servers.values():
                server.start()
            for workload in WORKLOADS:
                for round_ in range(1, args.rounds + 1):
                    order = list(sizes) if round_ % 2 else list(reversed(sizes))
                    for name in order:
                        url = servers[name].url
                        if args.warmup > 0:
                            wrk(url, bodies[name][workload], concurrency=args.concurrency,
                                seconds=args.warmup, cpu=args.loadgen_cpu)
                        r = wrk(url, bodies[name][workload], concurrency=args.concurrency,
                                seconds=args.seconds, cpu=args.loadgen_cpu)
                        results.setdefault((workload, name), []).append(r)
                        print(f"  {workload} round {round_} {name:>5}: {r['rps']:8,.1f} req/s  "
                              f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms"
                              + (f"  BAD {r['bad']}" if r["bad"] else ""), flush=True)
        finally:
            for server in servers.values():
                server.stop()
        if args.smoke:
            print(f"\n# {SMOKE}")
        print("\n| workload | small req/s | large req/s | large/small | small p99 ms | large p99 ms "
              "| p99 ratio |")
        print("|---|---|---|---|---|---|---|")
        for workload in WORKLOADS:
            small = max(results[(workload, "small")], key=lambda r: r["rps"])
            large = max(results[(workload, "large")], key=lambda r: r["rps"])
            print(f"| {workload} | {small['rps']:,.0f} | {large['rps']:,.0f} | "
                  f"{_ratio(large['rps'], small['rps'])} | {small['p99_ms']:.1f} | "
                  f"{large['p99_ms']:.1f} | {_ratio(large['p99_ms'], small['p99_ms'])} |")
        changed = False
        if args.rebuild:
            for name, url in sizes.items():
                seconds, said = _rebuild(url)
                changed = changed or " 0 rows differed" not in said
                print(f"rebuild-projections {name}: {seconds:.1f} s for the command: {said}", flush=True)
        failed = sum(r["bad"] for rounds in results.values() for r in rounds)
        if args.smoke and (failed or changed):
            raise SystemExit(f"{failed} requests failed; a rebuild changed rows: {changed}")


def _generate_and_import(work: Path, orders: int, url: str) -> None:
    export = work / f"{orders}.ndjson"
    with export.open("wb") as out:
        count = generate(orders, 7, out)
    said = subprocess.run([sys.executable, "-m", "gql", "import", str(export), "--database-url", url],
                          capture_output=True, text=True, check=True).stdout.strip()
    print(f"generated {count:,} events of {orders} orders; ordergraph import: {said}", flush=True)


def smoke(args: argparse.Namespace) -> None:
    """generate, `ordergraph import` and compare, on two tiny databases."""
    with tempfile.TemporaryDirectory(prefix="ordergraph-growth-") as tmp, postgres() as server:
        async def run() -> None:
            async with empty_database(server) as small, empty_database(server) as large:
                for url, orders in ((small, 100), (large, 300)):
                    await asyncio.to_thread(_generate_and_import, Path(tmp), orders, url)
                args.small, args.large = small, large
                await asyncio.to_thread(compare, args)

        asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="generate, import and compare 100 and 300 orders: checks, measures nothing")
    sub = parser.add_subparsers(dest="command")
    gen = sub.add_parser("generate")
    gen.add_argument("--orders", type=int, default=20_000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--output", type=Path, required=True)
    cmp = sub.add_parser("compare")
    cmp.add_argument("--small", required=True)
    cmp.add_argument("--large", required=True)
    cmp.add_argument("--seconds", type=float, default=10)
    cmp.add_argument("--warmup", type=float, default=2)
    cmp.add_argument("--rounds", type=int, default=2)
    cmp.add_argument("--concurrency", type=int, default=32)
    cmp.add_argument("--pool", type=int, default=10)
    cmp.add_argument("--port", type=int, default=18300, help="the small one's; the large one's is next")
    cmp.add_argument("--server-cpu", type=int, default=0)
    cmp.add_argument("--loadgen-cpu", type=int, default=1)
    cmp.add_argument("--no-rebuild", dest="rebuild", action="store_false")
    args = parser.parse_args(argv)
    if args.smoke:
        if args.command is not None:
            parser.error("--smoke runs generate, import and compare itself: give no command")
        args = cmp.parse_args(["--small", "", "--large", "", "--seconds", "1", "--warmup", "0",
                               "--rounds", "1", "--concurrency", "8", "--pool", "4"])
        args.port, args.smoke = None, True
        smoke(args)
    elif args.command is None:
        parser.error("give a command: generate or compare (or --smoke)")
    elif args.command == "generate":
        started = time.perf_counter()
        with args.output.open("wb") as out:
            count = generate(args.orders, args.seed, out)
        print(f"{count:,} events of {args.orders:,} orders in {time.perf_counter() - started:.0f} s")
    else:
        args.smoke = False
        compare(args)


if __name__ == "__main__":
    main()
