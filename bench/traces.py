"""What OpenTelemetry traces cost, in one run: Q1 and W1 on the code before traces existed,
on this code with tracing off, and with tracing on at 100 % and at 10 % sampling.

    python -m bench.traces                  # 5,000 orders, 10 s per cell, 3 rounds (~5 min)
    python -m bench.traces --smoke          # 200 orders, 1 s cells, 1 round: checks, measures nothing

Four `ordergraph serve` processes, pinned to one core, one loaded at a time (wrk on the other):
"before" runs the code of `--before` (default: the last commit without traces, the parent of
the one that added gql/traces.py), extracted with `git archive` into the work directory, on a
database that code migrated; "off" runs this code without any OTEL_* variable (no provider,
no span); "on" runs it with OTEL_TRACES_EXPORTER=otlp, OTEL_TRACES_SAMPLER=always_on and the
OTLP/HTTP exporter sending every batch to a discarding endpoint on loopback (this process
answers 200 to each POST and drops the body): every request, SQL statement and append makes
and exports its spans, only the collector is free; "10 %" is the same with a parent-based
sampler keeping one trace in ten (what a busy server would run with; no goal). Each server has
its own database, loaded alike (W1's appends grow each one as much). Cells alternate within
every round, each round starting one cell later; the table gives the best round per cell.
Goals: off / before ≥ 0.97, on / off ≥ 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from bench import data, peers
from bench.common import (
    SMOKE,
    empty_database,
    fresh_database,
    machine,
    postgres,
    write_report,
    wrk_bench_parser,
    wrk_bench_settings,
)
from bench.compare import BENCH, _git, _ids, ensure_wrk, wrk
from bench.workloads import request_bodies
from gql.store.connection import APP_ROLE, as_role

ROOT = BENCH.parent
# server: (its baseline, the goal's ratio, or None: measured, no goal)
GOALS: dict[str, tuple[str, float | None]] = {"off": ("before", 0.97), "on": ("off", 0.8),
                                              "10 %": ("off", None)}
SERVERS = ("before", "off", "on", "10 %")
WORKLOADS = ("Q1", "W1")


def cells(workloads: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((workload, server) for workload in workloads for server in SERVERS)


def before_rev(given: str | None) -> str:
    """The commit to measure as "before": the one given, or the last one without traces (the
    parent of the commit that added gql/traces.py)."""
    if given:
        return given
    found = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "gql/traces.py"],
                           capture_output=True, text=True, cwd=ROOT)
    added = found.stdout.split()
    if not added:
        return "HEAD"
    parent = subprocess.run(["git", "rev-parse", f"{added[-1]}^"], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    return parent.stdout.strip()


def extract(rev: str, into: Path) -> Path:
    """The tree of `rev` (gql/, schema.sql) in `into`, to run with `python -m gql` there."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "gql", "schema.sql"],
                             capture_output=True, check=True, cwd=ROOT).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


class _Discard(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that reads each export and drops it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
        type(self).exports += 1  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        return


@contextlib.contextmanager
def discarding_collector() -> Iterator[tuple[str, type[_Discard]]]:
    handler = type("Counting", (_Discard,), {"exports": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()


def servers(args: argparse.Namespace, urls: dict[str, str], work: Path, before: Path,
            collector: str) -> dict[str, peers.Server]:
    on = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
          "OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "ordergraph-bench"}
    sampled = {**on, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    made = {}
    environments = {"before": {}, "off": {}, "on": on, "10 %": sampled}
    for (name, env), port in zip(environments.items(), args.ports, strict=True):
        server = peers.ours(as_role(urls[name], APP_ROLE), port, args.pool, args.server_cpu,
                            work / f"traces-{name}.log", env, f"ours ({name})")
        if name == "before":  # its own code: `python -m gql` from the extracted tree
            server.command = ["env", "-C", str(before), f"PYTHONPATH={before}", *server.command]
        made[name] = server
    return made


def run(args: argparse.Namespace, urls: dict[str, str], work: Path, before: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with discarding_collector() as (collector, handler):
        running = servers(args, urls, work, before, collector)
        try:
            for server in running.values():
                server.start()
            order = cells(args.workloads)
            for round_ in range(1, args.rounds + 1):
                turn = (round_ - 1) % len(order)
                for workload, name in order[turn:] + order[:turn]:
                    server, path = running[name], work / f"traces-{name}-{workload}.txt"
                    if args.warmup:
                        wrk(server.url, path, concurrency=args.concurrency, seconds=args.warmup,
                            cpu=args.loadgen_cpu)
                    result = wrk(server.url, path, concurrency=args.concurrency, seconds=args.seconds,
                                 cpu=args.loadgen_cpu)
                    results.append({"workload": workload, "server": name, "round": round_, **result})
                    print(f"  round {round_} {workload} {name:<7} {result['rps']:9,.1f} req/s  p99 "
                          f"{result['p99_ms']:6.1f} ms  bad {result['bad']}", flush=True)
        finally:
            for server in running.values():
                server.stop()
        if not handler.exports:  # type: ignore[attr-defined]
            raise SystemExit("the traced server exported no spans: the 'on' cells measured nothing")
    return results


def table(results: list[dict[str, Any]], smoke: bool, workloads: tuple[str, ...]) -> str:
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        key = (r["workload"], r["server"])
        if key not in best or r["rps"] > best[key]["rps"]:
            best[key] = r
    rows = []
    for workload, name in cells(workloads):
        found = best[workload, name]
        ratio, goal = "(baseline)", "—"
        if name in GOALS:
            base, wanted = GOALS[name]
            value = found["rps"] / best[workload, base]["rps"]
            ratio = f"**{value:.2f}** of {base}"
            if wanted is not None:
                goal = f"≥ {wanted}: " + ("not judged (smoke)" if smoke else "met" if value >= wanted
                                          else "MISSED")
        bad = sum(r["bad"] for r in results if (r["workload"], r["server"]) == (workload, name))
        rows.append(f"| {workload} | {name} | {found['rps']:,.0f} | {found['p50_ms']:.1f} | "
                    f"{found['p99_ms']:.1f} | {bad} | {ratio} | {goal} |")
    return "\n".join(["| workload | tracing | req/s | p50 ms | p99 ms | bad | ratio | goal |",
                      "|---|---|---|---|---|---|---|---|", *rows])


async def load(url: str, dataset: Any, work: Path, name: str) -> None:
    await data.load(url, dataset)
    orders, customers, _ = await _ids(url)
    for workload in WORKLOADS:
        bodies = request_bodies("ours", workload, orders, customers)
        (work / f"traces-{name}-{workload}.txt").write_text("\n".join(bodies) + "\n")


async def prepare(server: str, args: argparse.Namespace, work: Path) -> None:
    rev = before_rev(args.before)
    before = extract(rev, work / "before")
    dataset = data.generate(args.orders, args.seed)
    async with (fresh_database(server) as url, fresh_database(server) as traced,
                fresh_database(server) as sampled, empty_database(server) as old):
        migrated = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gql", "migrate", "--database-url", old, cwd=before,
            stdout=asyncio.subprocess.DEVNULL)
        if await migrated.wait():
            raise SystemExit(f"`ordergraph migrate` of {rev} failed")
        await load(old, dataset, work, "before")
        await load(url, dataset, work, "off")
        await load(traced, dataset, work, "on")
        await load(sampled, dataset, work, "10 %")
        urls = {"before": old, "off": url, "on": traced, "10 %": sampled}
        results = await asyncio.to_thread(run, args, urls, work, before)
    header = (f"# traces, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.orders:,} orders; "
              f"{machine()}\n# ordergraph {_git()} (before: {rev[:10]}); wrk -c{args.concurrency}, "
              f"{args.seconds:g}s per cell after {args.warmup:g}s warm-up, {args.rounds} rounds, best "
              f"round per cell; servers on cpu {args.server_cpu}, wrk on cpu {args.loadgen_cpu}; "
              "on: 100 % sampled, 10 %: parent-based ratio 0.1, OTLP/HTTP to a discarding endpoint"
              + (f"\n# {SMOKE}" if args.smoke else ""))
    text = table(results, args.smoke, args.workloads)
    print(f"\n{header}\n\n{text}")
    write_report(Path(args.out), "traces", f"{header}\n\n{text}\n")
    failed = sum(r["bad"] for r in results)
    if failed:
        raise SystemExit(f"{failed} requests failed; see {work}/traces-*.log")


def main() -> None:
    parser = wrk_bench_parser(__doc__)
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="Q1,W1 (default: both)")
    parser.add_argument("--before",
                        help="the commit measured as 'before' (default: the last one without traces)")
    args = parser.parse_args()
    args.workloads = tuple(w for w in args.workloads.split(",") if w)
    if not args.workloads or set(args.workloads) - set(WORKLOADS):
        parser.error(f"--workloads takes {', '.join(WORKLOADS)}")
    work = wrk_bench_settings(args, [8871, 8872, 8873, 8874])
    ensure_wrk()
    with postgres() as server:
        asyncio.run(prepare(server, args, work))


if __name__ == "__main__":
    main()
