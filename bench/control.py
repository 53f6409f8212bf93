"""What controlling the clients costs, in one run: Q1 sent as a trusted document's id vs as
its text, and Q1 with per-caller rate limits counted in memory and in Redis (and with a log
line per request) vs without.

    python -m bench.control                 # 5,000 orders, 10 s per cell, 3 rounds (~5 min)
    python -m bench.control --seconds 3     # a quick look
    python -m bench.control --smoke         # 200 orders, 1 s cells, 1 round: checks, measures nothing

One PostgreSQL (embedded, or DATABASE_URL's server) gets a fresh database with the data of
bench/data.py. Four `ordergraph serve` processes serve it, pinned to one core, one loaded at a
time: "documents" (ORDERGRAPH_DOCUMENTS holding Q1, trusted-only mode: Q1's text is the
trusted document's, so both forms run), "off" (no limits), "memory" and "Redis" (budgets of
requests and of estimated cost far above what the run spends, so every request is charged
and none refused: in memory one by one, in Redis from leases; Redis at --redis, keys under a
prefix of this run), and "logs"
(ORDERGRAPH_LOG_REQUESTS=1: a JSON line per request into its log file). wrk (bench/wrk.lua, ids
varying per request) is pinned to the other core. Cells alternate within every round, each
round starting one cell later than the one before; the table gives the best round per cell.
A refused or failed request fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench import data, peers
from bench.common import (
    SMOKE,
    fresh_database,
    machine,
    postgres,
    server_version,
    write_report,
    wrk_bench_parser,
    wrk_bench_settings,
)
from bench.compare import _git, _ids, ensure_wrk, wrk
from bench.workloads import request_bodies
from gql.schema.documents import document_id
from gql.store.connection import APP_ROLE, as_role

UNLIMITED = "1000000000 per 1 minute"  # every request counted, none refused
GOAL = 0.9  # rate limits on / off
# (cell, server, bodies)
CELLS = (("Q1 as text", "documents", "text"), ("Q1 by document id", "documents", "id"),
         ("Q1, rate limits off", "off", "text"), ("Q1, rate limits in memory", "memory", "text"),
         ("Q1, rate limits in Redis", "Redis", "text"), ("Q1, a log line per request", "logs", "text"))
BASELINE = {"Q1 by document id": "Q1 as text", "Q1, rate limits in memory": "Q1, rate limits off",
            "Q1, rate limits in Redis": "Q1, rate limits off",
            "Q1, a log line per request": "Q1, rate limits off"}


def servers(args: argparse.Namespace, url: str, work: Path, documents: Path) -> dict[str, peers.Server]:
    limits = {"ORDERGRAPH_RATE_LIMIT_REQUESTS": UNLIMITED, "ORDERGRAPH_RATE_LIMIT_COST": UNLIMITED}
    settings = {
        "documents": {"ORDERGRAPH_DOCUMENTS": str(documents), "ORDERGRAPH_TRUSTED_DOCUMENTS_ONLY": "1"},
        "off": {},
        "memory": limits,
        "Redis": {**limits, "ORDERGRAPH_RATE_LIMIT_REDIS": args.redis,
                  "ORDERGRAPH_RATE_LIMIT_PREFIX": f"ordergraph-bench-{uuid.uuid4().hex[:8]}"},
        "logs": {"ORDERGRAPH_LOG_REQUESTS": "1"},  # JSON lines into its log file
    }
    role_url = as_role(url, APP_ROLE)
    return {name: peers.ours(role_url, port, args.pool, args.server_cpu,
                             work / f"control-{name.lower()}.log", env, f"ours ({name})")
            for (name, env), port in zip(settings.items(), args.ports, strict=True)}


def write_inputs(work: Path, orders: list[uuid.UUID], customers: list[uuid.UUID]) -> Path:
    """Q1's bodies as text and by id, and the documents directory holding Q1's text."""
    text = request_bodies("ours", "Q1", orders, customers)
    query = orjson.loads(text[0])["query"]
    documents = work / "documents"
    documents.mkdir(exist_ok=True)
    (documents / "q1.graphql").write_text(query)
    by_id = []
    for line in text:
        body = orjson.loads(line)
        by_id.append(orjson.dumps({"documentId": document_id(body.pop("query")), **body}).decode())
    (work / "control-text.txt").write_text("\n".join(text) + "\n")
    (work / "control-id.txt").write_text("\n".join(by_id) + "\n")
    return documents


def run(args: argparse.Namespace, url: str, work: Path, documents: Path,
        ) -> tuple[list[dict[str, Any]], float]:
    """Every cell's rounds, and the Redis round trips the Redis server made for them."""
    running = servers(args, url, work, documents)
    results: list[dict[str, Any]] = []
    try:
        for server in running.values():
            server.start()
        for round_ in range(1, args.rounds + 1):
            turn = (round_ - 1) % len(CELLS)  # each round starts one cell later: no cell is always first
            for cell, name, bodies in CELLS[turn:] + CELLS[:turn]:
                server, path = running[name], work / f"control-{bodies}.txt"
                if args.warmup:
                    wrk(server.url, path, concurrency=args.concurrency, seconds=args.warmup,
                        cpu=args.loadgen_cpu)
                result = wrk(server.url, path, concurrency=args.concurrency, seconds=args.seconds,
                             cpu=args.loadgen_cpu)
                results.append({"cell": cell, "round": round_, **result})
                print(f"  round {round_} {cell:<28} {result['rps']:9,.1f} req/s  p99 "
                      f"{result['p99_ms']:6.1f} ms  bad {result['bad']}", flush=True)
        trips = round_trips(running["Redis"].url.removesuffix("/graphql"))
    finally:
        for server in running.values():
            server.stop()
    return results, trips


def round_trips(base: str) -> float:
    """The Redis script calls the server made to charge its rate limits (/metrics)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return next(sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "ordergraph_rate_limit_redis_round_trips_total")


def table(results: list[dict[str, Any]], trips: float, smoke: bool) -> str:
    charged = sum(r["requests"] for r in results if r["cell"] == "Q1, rate limits in Redis")
    best = {}
    for result in results:
        if result["cell"] not in best or result["rps"] > best[result["cell"]]["rps"]:
            best[result["cell"]] = result
    rows = []
    for cell, _, _ in CELLS:
        found, baseline = best[cell], BASELINE.get(cell)
        ratio = f"**{found['rps'] / best[baseline]['rps']:.2f}**" if baseline else "(baseline)"
        goal = "—"
        if "rate limits in" in cell:
            met = found["rps"] / best[baseline]["rps"] >= GOAL
            goal = f"≥ {GOAL}: " + ("not judged (smoke)" if smoke else "met" if met else "MISSED")
        rows.append(f"| {cell} | {found['rps']:,.0f} | {found['p50_ms']:.1f} | {found['p99_ms']:.1f} | "
                    f"{sum(r['bad'] for r in results if r['cell'] == cell)} | {ratio} | {goal} |")
    rounds = sorted({r["round"] for r in results})
    rps = {(r["cell"], r["round"]): r["rps"] for r in results}
    per_round = [f"| {n} | " + " | ".join(f"{rps[cell, n] / rps[base, n]:.2f}" for cell, base in
                                          BASELINE.items()) + " |" for n in rounds]
    return "\n".join(["| cell | req/s | p50 ms | p99 ms | bad | / its baseline | goal |",
                      "|---|---|---|---|---|---|---|", *rows, "",
                      "| round | " + " | ".join(f"{cell} / baseline" for cell in BASELINE) + " |",
                      "|---" * (len(BASELINE) + 1) + "|", *per_round, "",
                      f"Redis round trips of the Redis cell's server (its /metrics): {trips:,.0f} in "
                      f"all, its warm-ups included; its measured runs alone made {charged:,} requests"])


async def prepare(server: str, args: argparse.Namespace, work: Path) -> None:
    dataset = data.generate(args.orders, args.seed)
    async with fresh_database(server) as url:
        await data.load(url, dataset)
        orders, customers, _ = await _ids(url)
        documents = write_inputs(work, orders, customers)
        version = await server_version(url)
        results, trips = await asyncio.to_thread(run, args, url, work, documents)
    header = (f"# trusted documents and rate limits, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
              f"{args.orders:,} orders; PostgreSQL {version}; {machine()}\n"
              f"# ordergraph {_git()}; wrk -c{args.concurrency}, {args.seconds:g}s per cell after "
              f"{args.warmup:g}s warm-up, {args.rounds} rounds, best round per cell; servers on cpu "
              f"{args.server_cpu}, wrk on cpu {args.loadgen_cpu}; Redis {args.redis}"
              + (f"\n# {SMOKE}" if args.smoke else ""))
    text = table(results, trips, args.smoke)
    print(f"\n{header}\n\n{text}")
    write_report(Path(args.out), "control", f"{header}\n\n{text}\n")
    failed = sum(r["bad"] for r in results)
    if failed:
        raise SystemExit(f"{failed} requests failed or were refused; see {work}/control-*.log")


def main() -> None:
    parser = wrk_bench_parser(__doc__)
    parser.add_argument("--redis", default=os.environ.get("ORDERGRAPH_TEST_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    work = wrk_bench_settings(args, [8861, 8862, 8863, 8864, 8865])
    ensure_wrk()
    with postgres() as server:
        asyncio.run(prepare(server, args, work))


if __name__ == "__main__":
    main()
