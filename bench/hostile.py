"""The cost limit under attack, in one run: Q1 at 32 connections alone, and again while 4
clients send the nested 10-alias query in a loop; the server's RSS before and after.

    python -m bench.hostile                 # 5,000 orders, 20 s per phase, 2 rounds (~3 min)
    python -m bench.hostile --seconds 5     # a quick look
    python -m bench.hostile --smoke         # 200 orders, 1 s phases, 1 round: checks, measures nothing
    python -m bench.hostile --micro [--smoke]

One PostgreSQL (embedded, or DATABASE_URL's server) gets a fresh database with the data of
bench/data.py. `ordergraph serve` runs as the server's role (ordergraph_app), pinned to one
core; wrk (Q1, ids varying per request, bench/wrk.lua) and the attackers are pinned to the
other. Phases alternate: quiet, attacked, quiet, attacked. Every attack must be refused by the
cost limit (QUERY_TOO_COMPLEX), else the run fails. `--smoke` runs one round of 1 s phases on 200
orders on a free port, and also fails if a Q1 request failed; `--micro --smoke` times the check
1,000 times instead of 100,000. Smoke runs show that the bench works; they measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import data, peers
from bench.common import (
    SMOKE,
    free_ports,
    fresh_database,
    machine,
    percentile,
    postgres,
    server_version,
    write_report,
)
from bench.compare import BENCH, _git, _ids, ensure_wrk, wrk
from bench.workloads import request_bodies
from gql.store.connection import APP_ROLE, as_role

NESTED = ("orders(first:100){nodes{id customer{orders(first:100){nodes{id customer{orders(first:100)"
          "{nodes{id events(first:100){nodes{id}}}}}}}}}}")
ATTACK = "{ %s }" % " ".join(f"a{n}: {NESTED}" for n in range(10))


async def _attack(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` loops posting ATTACK for `seconds`: answers by code, and their latency."""
    codes: Counter[str] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await http.post(url, json={"query": ATTACK})
            latencies.append(time.perf_counter() - started)
            errors = response.json().get("errors") or [{}]
            codes[f"{response.status_code} {errors[0].get('extensions', {}).get('code')}"] += 1

    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(loop(http) for _ in range(clients)))
    return {"requests": len(latencies), "codes": dict(codes),
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def micro(repeat: int = 100_000) -> str:
    """What the cost check adds to a request whose document's shape is cached."""
    from graphql import parse

    from bench.workloads import OURS
    from gql.config import Settings
    from gql.errors import QueryTooComplex
    from gql.schema import build_schema
    from gql.schema.cost import CostModel, select_operation

    settings = Settings(database_url="")
    model = CostModel(build_schema()._schema, settings.max_cost, settings.max_page_size)
    lines = []
    for name, query, variables in (("Q1", OURS["Q1"], {"id": "7f0e2c1a-0000-4000-8000-000000000000"}),
                                   ("Q2", OURS["Q2"], {}), ("10-alias attack", ATTACK, {})):
        document = parse(query)
        operation = select_operation(document, None)
        started = time.perf_counter()
        for _ in range(repeat):
            try:
                cost = model.check(document, operation, variables)
            except QueryTooComplex as exc:
                cost = exc.extensions["cost"]
        lines.append(f"| {name} | {cost:,} | {(time.perf_counter() - started) / repeat * 1e6:.2f} µs |")
    return "\n".join(["| document | estimated cost | check per request |", "|---|---|---|", *lines])


def rss_mb(pid: int | None) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20 if pid else float("nan")


def run(args: argparse.Namespace, url: str, work: Path) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    server = peers.ours(as_role(url, APP_ROLE), args.port, args.pool, args.server_cpu,
                        work / "hostile-ours.log")
    server.start()
    rows: list[str] = []
    try:
        bodies = work / "ours-Q1.txt"
        wrk(server.url, bodies, concurrency=32, seconds=args.warmup, cpu=args.loadgen_cpu)
        rss_before = rss_mb(server.pid)
        results: dict[str, list[dict[str, Any]]] = {"quiet": [], "attacked": []}
        for round_ in range(1, args.rounds + 1):
            for phase in ("quiet", "attacked"):
                attackers = None
                if phase == "attacked":
                    attackers = subprocess.Popen(peers.pinned(args.loadgen_cpu, [
                        sys.executable, "-m", "bench.hostile", "--attack", server.url,
                        "--seconds", str(args.seconds)]), stdout=subprocess.PIPE, text=True,
                        cwd=BENCH.parent)
                q1 = wrk(server.url, bodies, concurrency=32, seconds=args.seconds,
                         cpu=args.loadgen_cpu)
                if attackers is not None:
                    q1["attack"] = json.loads(attackers.communicate(timeout=args.seconds + 60)[0])
                results[phase].append(q1)
                print(f"  round {round_} {phase:>8}: Q1 {q1['rps']:8,.1f} req/s  p99 "
                      f"{q1['p99_ms']:6.1f} ms" + (f"  attack {q1['attack']}" if attackers else ""),
                      flush=True)
        rss_after = rss_mb(server.pid)
    finally:
        server.stop()
    for round_, (quiet, attacked) in enumerate(zip(results["quiet"], results["attacked"],
                                                   strict=True), 1):
        attack = attacked["attack"]
        rows.append(f"| {round_} | {quiet['rps']:,.0f} | {quiet['p99_ms']:.1f} | {attacked['rps']:,.0f} | "
                    f"{attacked['p99_ms']:.1f} | **{attacked['rps'] / quiet['rps']:.2f}** | "
                    f"**{attacked['p99_ms'] / quiet['p99_ms']:.2f}** | {attack['requests']:,} "
                    f"({', '.join(f'{k}: {v:,}' for k, v in attack['codes'].items())}), p99 "
                    f"{attack['p99_ms']:.1f} ms | {quiet['bad'] + attacked['bad']} |")
    return "\n".join([
        "| round | Q1 alone req/s | p99 ms | Q1 attacked req/s | p99 ms | req/s ratio (goal ≥ 0.9) "
        "| p99 ratio (goal ≤ 1.5) | attack requests (answers), their p99 | failed Q1 |",
        "|---|---|---|---|---|---|---|---|---|", *rows, "",
        f"Server RSS: {rss_before:.0f} MB after warm-up, {rss_after:.0f} MB after every phase."]), results


async def prepare(server: str, args: argparse.Namespace, work: Path) -> None:
    dataset = data.generate(args.orders, args.seed)
    async with fresh_database(server) as url:
        await data.load(url, dataset)
        orders, customers, _ = await _ids(url)
        (work / "ours-Q1.txt").write_text("\n".join(request_bodies("ours", "Q1", orders, customers)) + "\n")
        version = await server_version(url)
        table, results = await asyncio.to_thread(run, args, url, work)
    header = (f"# cost limit under attack, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
              f"{args.orders:,} orders; PostgreSQL {version}; {machine()}\n"
              f"# ordergraph {_git()}; {args.seconds:g}s per phase after {args.warmup:g}s warm-up, "
              f"{args.rounds} rounds; server on cpu {args.server_cpu}, wrk and the 4 attackers on "
              f"cpu {args.loadgen_cpu}" + (f"\n# {SMOKE}" if args.smoke else ""))
    print(f"\n{header}\n\n{table}")
    write_report(Path(args.out), "hostile", f"{header}\n\n{table}\n")
    answered = Counter[str]()
    for attacked in results["attacked"]:
        answered.update(attacked["attack"]["codes"])
    if not answered or any(not code.endswith(" QUERY_TOO_COMPLEX") for code in answered):
        raise SystemExit(f"the cost limit did not refuse every attack: {dict(answered)}")
    failed = sum(r["bad"] for phase in results.values() for r in phase)
    if args.smoke and failed:
        raise SystemExit(f"{failed} Q1 requests failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--port", type=int, help="default 8850, a free one with --smoke")
    parser.add_argument("--out", help="default bench/out, bench/out/smoke with --smoke")
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders, 1 s phases, 1 round: checks, measures nothing")
    parser.add_argument("--attack", metavar="URL", help=argparse.SUPPRESS)  # the attackers' process
    parser.add_argument("--micro", action="store_true", help="only time the cost check itself")
    args = parser.parse_args()
    if args.micro:
        if args.smoke:
            print(f"# {SMOKE}")
        print(micro(1_000 if args.smoke else 100_000))
        return
    if args.attack:
        print(json.dumps(asyncio.run(_attack(args.attack, 4, args.seconds))))
        return
    smoke = args.smoke
    args.orders = args.orders or (200 if smoke else 5_000)
    args.seconds = args.seconds or (1.0 if smoke else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if smoke else 3.0)
    args.rounds = args.rounds or (1 if smoke else 2)
    args.port = args.port or (free_ports(1)[0] if smoke else 8850)
    args.out = args.out or str(BENCH / "out" / ("smoke" if smoke else ""))
    two = (psutil.cpu_count() or 1) >= 2
    args.server_cpu, args.loadgen_cpu = (0, 1) if two else (None, None)
    ensure_wrk()
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    with postgres() as server:
        asyncio.run(prepare(server, args, work))


if __name__ == "__main__":
    main()
