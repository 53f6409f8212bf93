"""Reads through HAProxy: one server on the primary vs two servers on a streaming replica, with the
CPU each process spent per request, and the extra latency of a read that sends a position token.

    python -m bench.fleet [--orders 20000] [--seconds 10] [--rounds 2] [--concurrency 32]
    python -m bench.fleet --smoke        # 200 orders, 1 s cells, one round: measures nothing

One fleet (gql/fleet.py) runs it all: a primary and its replica, server "p" on the primary
alone behind its own HAProxy port, servers "a" and "b" reading from the replica behind the
fleet's port. `wrk` sends Q1 and Q3 (bench/workloads.py) to each setup in turn, alternating
which goes first per round. CPU time per request is read from /proc/<pid>/stat before and
after each cell (utime + stime; for PostgreSQL the postmaster, its live backends and the
children it reaped), divided by the requests wrk completed. The token's cost: a client
appends, then reads that order through HAProxy with the token, or with none, alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench.common import SMOKE, machine, percentile
from bench.compare import ensure_wrk, wrk
from bench.data import generate, load
from bench.workloads import request_bodies
from gql.fleet import Fleet, fleet

TICK = os.sysconf("SC_CLK_TCK")
WORKLOADS = ("Q1", "Q3")
SETUPS = {"1 server on the primary": ("p",), "2 servers on the replica": ("a", "b")}
PLACE = ('mutation($o: UUID!, $c: UUID!) { placeOrder(input: {orderId: $o, customerId: $c, '
         'currency: "EUR", items: []}) { order { id } } }')
READ = "query($o: UUID!) { order(id: $o) { id version } }"
POSITION, SERVED_BY = "X-Ordergraph-Position", "X-Ordergraph-Served-By"


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """CPU seconds a process spent (and, with `with_children`, its live and reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the name: state is field 3; utime, stime, cutime, cstime are fields 14-17
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    total = utime + stime + (cutime + cstime if with_children else 0)
    if with_children:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                total += sum(int(v) for v in Path(f"/proc/{child.pid}/stat").read_text()
                             .rsplit(")", 1)[1].split()[11:13])
            except (OSError, ValueError):
                continue  # gone between the listing and the read: counted once reaped
    return total / TICK


def processes(running: Fleet, servers: tuple[str, ...]) -> dict[str, list[tuple[int, bool]]]:
    """The pids behind each column of the CPU table (with_children for PostgreSQL)."""
    return {"servers": [(running.pid(f"server-{n}"), False) for n in servers],
            "HAProxy": [(running.pid("haproxy"), False)],
            "primary": [(running.pid("primary"), True)],
            "replica": [(running.pid("replica"), True)]}


def cpu_of(pids: dict[str, list[tuple[int, bool]]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid, kids) for pid, kids in group) for name, group in pids.items()}


def measure(running: Fleet, setup: str, workload: str, bodies: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    servers = SETUPS[setup]
    url = (running.primary_proxy_url if servers == ("p",) else running.url) + "/graphql"
    if args.warmup:
        wrk(url, bodies, concurrency=args.concurrency, seconds=args.warmup, cpu=None)
    pids = processes(running, servers)
    before = cpu_of(pids)
    result = wrk(url, bodies, concurrency=args.concurrency, seconds=args.seconds, cpu=None)
    after = cpu_of(pids)
    done = max(1, result["requests"])
    return {**result, "cpu_ms": {k: (after[k] - before[k]) * 1000 / done for k in before}}


def token_latency(running: Fleet, tries: int) -> dict[str, Any]:
    """Read-after-write latency through HAProxy with the token and without, alternately."""
    latencies: dict[bool, list[float]] = {True: [], False: []}
    served: dict[str, int] = {}
    stale = 0
    with httpx.Client(base_url=running.url, timeout=15) as http:
        customer = str(uuid.uuid4())
        http.post("/graphql", json={"query": 'mutation($c: UUID!) { registerCustomer(input: '
                                    '{customerId: $c, name: "Bench", email: "b@example.com"}) '
                                    '{ id } }', "variables": {"c": customer}}).raise_for_status()
        for n in range(tries * 2):
            with_token = n % 2 == 0
            order = str(uuid.uuid4())
            wrote = http.post("/graphql", json={"query": PLACE, "variables": {"o": order, "c": customer}})
            headers = {POSITION: wrote.headers[POSITION]} if with_token else {}
            started = time.perf_counter()
            read = http.post("/graphql", json={"query": READ, "variables": {"o": order}},
                             headers=headers)
            latencies[with_token].append((time.perf_counter() - started) * 1000)
            if with_token:
                by = read.headers[SERVED_BY]
                served[by] = served.get(by, 0) + 1
                stale += read.json()["data"]["order"] is None
            elif read.json()["data"]["order"] is None:
                served["stale without"] = served.get("stale without", 0) + 1
    return {"latencies": latencies, "served": served, "stale": stale}


async def seed(running: Fleet, orders: int) -> None:
    """The bench data on the primary, then wait until the replica has replayed all of it."""
    await load(running.primary_url, generate(orders, 7))
    primary = await asyncpg.connect(running.primary_url)
    replica = await asyncpg.connect(running.replica_url)
    try:
        target = await primary.fetchval("select pg_current_wal_insert_lsn()")
        for _ in range(600):  # a minute at most
            if await replica.fetchval("select pg_last_wal_replay_lsn() >= $1::pg_lsn", target):
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the replica did not replay the bench data within a minute")
        ids = [r[0] for r in await primary.fetch("select order_id from orders_current order by 1")]
        customers = [r[0] for r in await primary.fetch("select customer_id from customers order by 1")]
    finally:
        await primary.close()
        await replica.close()
    for workload in WORKLOADS:
        lines = request_bodies("ours", workload, ids, customers)
        (running.directory / f"{workload}.txt").write_text("\n".join(lines) + "\n")


def report(cells: list[tuple[str, str, int, dict[str, Any]]], token: dict[str, Any],
           args: argparse.Namespace) -> None:
    print(f"# bench.fleet: {args.orders:,} orders, {args.seconds:g} s cells, {args.rounds} round(s), "
          f"wrk -c{args.concurrency} through HAProxy; {machine()}; the machine was shared")
    if args.smoke:
        print(f"# {SMOKE}")
    print("| setup | workload | round | req/s | p50 ms | p99 ms | bad | server CPU ms/req | "
          "HAProxy ms/req | primary ms/req | replica ms/req |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for setup, workload, round_, r in cells:
        cpu = r["cpu_ms"]
        print(f"| {setup} | {workload} | {round_} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['bad']} | {cpu['servers']:.3f} | {cpu['HAProxy']:.3f} | "
              f"{cpu['primary']:.3f} | {cpu['replica']:.3f} |")
    with_token, without = token["latencies"][True], token["latencies"][False]
    print()
    print("| read after write | tries | p50 ms | p99 ms | extra p50 ms | extra p99 ms | served by | stale |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    p50, p99 = percentile(without, 50), percentile(without, 99)
    print(f"| without token | {len(without)} | {p50:.2f} | {p99:.2f} | | | "
          f"| {token['served'].get('stale without', 0)} |")
    served = ", ".join(f"{k} {v}" for k, v in sorted(token["served"].items()) if k != "stale without")
    print(f"| with token | {len(with_token)} | {percentile(with_token, 50):.2f} | "
          f"{percentile(with_token, 99):.2f} | {percentile(with_token, 50) - p50:.2f} | "
          f"{percentile(with_token, 99) - p99:.2f} | {served} | {token['stale']} |")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders, 1 s cells, no warm-up, 1 round: checks, measures nothing")
    parser.add_argument("--orders", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--tries", type=int, help="reads after writes with the token (and without)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.orders = args.orders or (200 if smoke else 20_000)
    args.seconds = args.seconds or (1.0 if smoke else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if smoke else 2.0)
    args.rounds = args.rounds or (1 if smoke else 2)
    args.concurrency = args.concurrency or (8 if smoke else 32)
    args.tries = args.tries or (50 if smoke else 1000)
    return args


def main() -> None:
    args = parse()
    ensure_wrk()
    with fleet(servers=2, primary_only_server=True) as running:
        asyncio.run(seed(running, args.orders))
        cells = []
        for round_ in range(1, args.rounds + 1):
            order = list(SETUPS) if round_ % 2 else list(reversed(SETUPS))
            for workload in WORKLOADS:
                for setup in order:
                    bodies = running.directory / f"{workload}.txt"
                    cells.append((setup, workload, round_, measure(running, setup, workload, bodies, args)))
        token = token_latency(running, args.tries)
    report(cells, token, args)


if __name__ == "__main__":
    main()
