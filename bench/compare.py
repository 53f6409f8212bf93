"""Side by side, in one run: ours vs PostGraphile v5 vs the raw asyncpg limit.

    python -m bench.compare                 # 20,000 orders, 10 s per cell, 2 rounds (~10 min)
    python -m bench.compare --quick         # 5,000 orders, 3 s per cell (~4 min)
    python -m bench.compare --smoke         # 200 orders, 1 s per cell, 1 round: checks, measures nothing

One PostgreSQL (embedded, or DATABASE_URL's server) gets a fresh database with the same
deterministic data for everyone (bench/data.py). Ours (`ordergraph serve`, one worker) and
PostGraphile (one node process) serve it on loopback, pinned to one core; `wrk`, pinned to the
other, drives each with the same concurrency, duration and a Lua script that varies ids per
request (bench/wrk.lua). The raw limit (bench/raw.py) runs the same rows through asyncpg from a
process pinned where the servers are. Contenders alternate within every round. The table gives
the best round per cell; every round is kept in the JSON next to it.

`--smoke` runs every contender on every workload once, on 200 orders with 1 s cells and no
warm-up, on free ports: the same check (every contender returns the same rows), and it fails
when any request of any cell failed. It shows that the bench works; its figures measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import auth, data, peers
from bench.common import SMOKE, free_ports, fresh_database, machine, postgres, server_version
from bench.workloads import BY_ORDER_ID, DESCRIPTIONS, READS, STATUSES, request_bodies
from gql.store.connection import connect

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk.lua"
# the raw limit reads in two forms; the better one is "the raw limit" of the ratios. "bare
# HTTP" is the floor of the HTTP stack: raw json's statement behind a minimal uvicorn app.
# "ours+auth" is ours requiring tokens (bench/auth.py), each request with its caller's token.
CONTENDERS = {"read": ("ours", "ours+auth", "PostGraphile", "raw rows", "raw json", "bare HTTP"),
              "write": ("ours", "ours+auth", "PostGraphile", "raw")}
AUTH_GOALS = {"ours": 0.85, "PostGraphile": 2.0}  # ours+auth / it; PostGraphile on Q1-Q3
GOALS = {"raw": {"Q1": 0.5, "Q2": 0.5, "W1": 0.6},
         "PostGraphile": {"Q1": 2.0, "Q2": 2.0, "Q3": 2.0, "Q4": 2.0, "Q5": 2.0},
         "bare HTTP": {"Q1": 0.8, "Q2": 0.8, "Q3": 0.8, "Q4": 0.8}}


@dataclass
class Cell:
    workload: str
    contender: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("wrk is missing: apt-get install wrk")
    print("installing wrk (apt-get) …", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True).returncode:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)


def wrk(url: str, bodies: Path, *, concurrency: int, seconds: float, cpu: int | None) -> dict[str, Any]:
    command = peers.pinned(cpu, [
        "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(LUA), url, "--", str(bodies)])
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next((line for line in out.splitlines() if line.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result = json.loads(line.removeprefix("WRKJSON "))
    failed = result["bad"] + result["connect"] + result["read"] + result["write"] + result["timeout"]
    return {"requests": result["requests"], "rps": result["requests"] / (result["duration_us"] / 1e6),
            "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000, "bad": failed}


def raw(url: str, workload: str, form: str, params: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = peers.pinned(args.server_cpu, [
        sys.executable, "-m", "bench.raw", "--url", url, "--workload", workload, "--form", form,
        "--params", str(params), "--concurrency", str(args.concurrency), "--pool", str(args.pool),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup)])
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=BENCH.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Run:
    def __init__(self, args: argparse.Namespace, url: str, work: Path, issuer: auth.Issuer) -> None:
        self.args, self.url, self.work = args, url, work
        ports = args.ports
        self.servers = {
            "ours": peers.ours(url, ports[0], args.pool, args.server_cpu, work / "ours.log"),
            "ours+auth": peers.ours(url, ports[3], args.pool, args.server_cpu,
                                    work / "ours-auth.log", issuer.env(), "ours+auth"),
            "PostGraphile": peers.postgraphile(url, ports[1], args.pool, args.server_cpu,
                                               work / "postgraphile.log"),
            "bare HTTP": peers.bare(url, ports[2], args.pool, args.server_cpu,
                                    work / "bare.log"),
        }
        self.cells: list[Cell] = []

    def measure(self, workload: str, contender: str, round_: int) -> Cell:
        args = self.args
        if contender.startswith("raw"):
            form = "json" if contender == "raw json" else "rows"
            result = raw(self.url, workload, form, self.work / f"raw-{workload}.txt", args)
        else:
            url = self.servers[contender].url
            bodies = self.work / f"{_bodies_of(contender)}-{workload}.txt"
            if args.warmup > 0:
                wrk(url, bodies, concurrency=args.concurrency, seconds=args.warmup, cpu=args.loadgen_cpu)
            result = wrk(url, bodies, concurrency=args.concurrency, seconds=args.seconds,
                         cpu=args.loadgen_cpu)
        cell = Cell(workload, contender, round_, result["rps"], result["p50_ms"], result["p99_ms"],
                    result["requests"], result["bad"])
        print(f"  {workload} round {round_} {contender:>12}: {cell.rps:8,.1f} req/s  "
              f"p50 {cell.p50_ms:7.1f} ms  p99 {cell.p99_ms:7.1f} ms"
              + (f"  BAD {cell.bad}/{cell.requests}" if cell.bad else ""), flush=True)
        self.cells.append(cell)
        return cell

    def reads(self, workloads: list[str]) -> None:
        for server in self.servers.values():  # all boot at once, then each must answer
            server.spawn()
        for server in self.servers.values():
            server.start()
        check_same_rows(self)
        for workload in workloads:
            for round_ in range(1, self.args.rounds + 1):
                for contender in _rotated(CONTENDERS["read"], round_):
                    self.measure(workload, contender, round_)

    def writes(self) -> None:
        # one server at a time: ours' listener would otherwise wake on every raw append
        for server in self.servers.values():
            server.stop()
        for round_ in range(1, self.args.rounds + 1):
            for contender in _rotated(CONTENDERS["write"], round_):
                server = self.servers.get(contender)
                if server:
                    server.start()
                try:
                    self.measure("W1", contender, round_)
                finally:
                    if server:
                        server.stop()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def _bodies_of(contender: str) -> str:
    """Whose request bodies an HTTP contender gets: the bare HTTP floor takes ours."""
    return contender if contender in ("PostGraphile", "ours+auth") else "ours"


def _rotated(items: tuple[str, ...], round_: int) -> list[str]:
    shift = (round_ - 1) % len(items)
    return list(items[shift:] + items[:shift])


async def _ids(url: str) -> tuple[list[uuid.UUID], list[uuid.UUID], dict[uuid.UUID, uuid.UUID]]:
    conn = await asyncpg.connect(url)
    try:
        owners = {r[0]: r[1] for r in await conn.fetch(
            "select order_id, customer_id from orders_current order by order_id")}
        customers = [r[0] for r in await conn.fetch("select customer_id from customers order by 1")]
    finally:
        await conn.close()
    return list(owners), customers, owners


def write_inputs(work: Path, orders: list[uuid.UUID], customers: list[uuid.UUID],
                 owners: dict[uuid.UUID, uuid.UUID], issuer: auth.Issuer) -> None:
    """Bodies for wrk and parameters for the raw client: the same ids in the same order."""
    for contender in ("ours", "PostGraphile"):
        for workload in (*READS, "W1"):
            lines = request_bodies("ours" if contender == "ours" else "postgraphile", workload,
                                   orders, customers)
            (work / f"{contender}-{workload}.txt").write_text("\n".join(lines) + "\n")
            if contender == "ours":
                (work / f"ours+auth-{workload}.txt").write_text("\n".join(
                    auth.with_token(_caller(issuer, workload, line, owners), line)
                    for line in lines) + "\n")
    rng = random.Random(11)  # the sequence request_bodies draws
    ids = "\n".join(str(rng.choice(orders)) for _ in range(4000))
    for workload in BY_ORDER_ID:
        (work / f"raw-{workload}.txt").write_text(ids)
    (work / "raw-Q2.txt").write_text("")
    (work / "raw-Q5.txt").write_text("")
    rng = random.Random(11)
    (work / "raw-Q3.txt").write_text("\n".join(rng.choice(STATUSES) for _ in range(4000)))
    rng = random.Random(11)
    (work / "raw-W1.txt").write_text("\n".join(str(rng.choice(customers)) for _ in range(500)))


def _caller(issuer: auth.Issuer, workload: str, line: str,
            owners: dict[uuid.UUID, uuid.UUID]) -> str:
    """The token of the request's natural caller: Q1/Q4 the order's customer, W1 the
    customer placing the order, Q2/Q3 staff."""
    variables = json.loads(line)["variables"]
    if workload in BY_ORDER_ID:
        return issuer.token("customer", owners[uuid.UUID(variables["id"])])
    if workload == "W1":
        return issuer.token("customer", uuid.UUID(variables["customer"]))
    return issuer.token("staff")


def _rows(workload: str, who: str, result: Any) -> list[Any]:
    """One contender's answer as (order id, [event ids]) tuples; Q5 as (status, count, [order
    ids of its first page]). The customer's name is read by every contender but not compared:
    it is sealed at rest, so the peers, reading the table, get its ciphertext, which only
    ordergraph opens (it does more work for the same rows, not less)."""
    if workload == "Q5":
        return _columns(who, result)
    if who == "raw rows":
        out: dict[str, Any] = {}
        for r in result:
            entry = out.setdefault(str(r["order_id"]), [r["name"], []])
            if "event_id" in r and r["event_id"] is not None:
                entry[1].append(str(r["event_id"]))
        return [(k, v[1]) for k, v in out.items()]
    if who == "PostGraphile":
        found = result["data"]
        nodes = ([found["ordersCurrentByOrderId"]] if workload in BY_ORDER_ID
                 else found["allOrdersCurrents"]["nodes"])
        return [(n["orderId"], [e["eventId"] for e in n.get("events", {"nodes": []})["nodes"]])
                for n in nodes if n["customerByCustomerId"]["name"]]
    found = json.loads(result)["data"] if who == "raw json" else result["data"]  # ours, ours+auth
    nodes = [found["order"]] if workload in BY_ORDER_ID else found["orders"]["nodes"]
    return [(n["id"], [e["id"] for e in n.get("events", {"nodes": []})["nodes"]])
            for n in nodes if n["customer"]["name"]]


def _columns(who: str, result: Any) -> list[Any]:
    if who == "raw rows":
        pages: dict[str, Any] = {s: [0, []] for s in STATUSES}
        for r in result:
            pages[r["status"]][0] = r["total"]
            if len(pages[r["status"]][1]) < 20:
                pages[r["status"]][1].append(str(r["order_id"]))
        return [(s, total, ids) for s, (total, ids) in pages.items()]
    found = json.loads(result)["data"] if who == "raw json" else result["data"]
    key = "orderId" if who == "PostGraphile" else "id"
    return [(s, found[s]["totalCount"], [n[key] for n in found[s]["nodes"]]) for s in STATUSES]


def check_same_rows(run: Run) -> None:
    """Every contender answers each read workload's first requests with the same rows."""
    from bench.workloads import RAW_JSON_SQL, RAW_SQL

    async def raw_answers(workload: str, param: str | None) -> tuple[Any, Any]:
        conn = await connect(run.url)
        try:
            args = [] if param is None else [uuid.UUID(param) if workload in BY_ORDER_ID else param]
            return (await conn.fetch(RAW_SQL[workload], *args),
                    await conn.fetchval(RAW_JSON_SQL[workload], *args))
        finally:
            await conn.close()

    for workload in READS:
        params = (run.work / f"raw-{workload}.txt").read_text().splitlines()[:3] or [None]
        for n, param in enumerate(params):
            rows, document = asyncio.run(raw_answers(workload, param))
            answers = {"raw rows": _rows(workload, "raw rows", rows),
                       "raw json": _rows(workload, "raw json", document)}
            for contender in ("ours", "ours+auth", "PostGraphile", "bare HTTP"):
                bodies = _bodies_of(contender)
                token, line = auth.split(
                    (run.work / f"{bodies}-{workload}.txt").read_text().splitlines()[n])
                reply = peers.post(run.servers[contender].url, json.loads(line), token=token)
                if reply.get("errors"):
                    raise RuntimeError(f"{contender} {workload}: {reply['errors'][0]['message']}")
                answers[contender] = _rows(workload, "ours" if bodies == "ours+auth" else bodies,
                                           reply)
            expected = answers["raw rows"]
            if not expected or any(a != expected for a in answers.values()):
                wrong = [k for k, a in answers.items() if a != expected]
                raise RuntimeError(f"{workload}: {', '.join(wrong)} disagree with the raw rows for {param}")
    print(f"same rows from every contender for {', '.join(READS)}", flush=True)


def best(cells: list[Cell], workload: str, contender: str) -> Cell | None:
    mine = [c for c in cells if c.workload == workload and c.contender == contender]
    return max(mine, key=lambda c: c.rps) if mine else None


def _verdict(value: float, wanted: float | None, judge: bool) -> str:
    if wanted is None:
        return ""
    if not judge:
        return f"≥ {wanted}: not judged (smoke)"
    return f"≥ {wanted}: {'met' if value >= wanted else 'MISSED'}"


def report(cells: list[Cell], workloads: list[str], header: str, judge: bool = True) -> str:
    lines = [header, "",
             "| workload | contender | req/s | p50 ms | p99 ms | bad | ours / it |",
             "|---|---|---:|---:|---:|---:|---:|"]
    ratios = ["", "| workload | ours/raw limit | goal | ours/PostGraphile | goal | ours/bare HTTP | goal |",
              "|---|---:|---|---:|---|---:|---|"]
    for workload in workloads:
        ours_cell = best(cells, workload, "ours")
        kinds = CONTENDERS["write" if workload == "W1" else "read"]
        for contender in kinds:
            cell = best(cells, workload, contender)
            if cell is None:
                continue
            ratio = (f"{ours_cell.rps / cell.rps:.2f}" if contender != "ours" and ours_cell and cell.rps
                     else "")
            lines.append(f"| {workload} | {contender} | {cell.rps:,.0f} | {cell.p50_ms:.1f} | "
                         f"{cell.p99_ms:.1f} | {cell.bad} | {ratio} |")
        raws = [c for c in (best(cells, workload, k) for k in kinds if k.startswith("raw")) if c]
        limit = max(raws, key=lambda c: c.rps) if raws else None
        row = [workload]
        for name, other in (("raw", limit), ("PostGraphile", best(cells, workload, "PostGraphile")),
                            ("bare HTTP", best(cells, workload, "bare HTTP"))):
            if ours_cell is None or other is None or not other.rps:
                row += ["", ""]
                continue
            value, wanted = ours_cell.rps / other.rps, GOALS[name].get(workload)
            label = f" ({other.contender})" if name == "raw" and len(raws) > 1 else ""
            row += [f"{value:.2f}{label}", _verdict(value, wanted, judge)]
        ratios.append("| " + " | ".join(row) + " |")
    lines += ratios
    lines += ["", "| workload | ours+auth / ours | goal | ours+auth / PostGraphile | goal |",
              "|---|---:|---|---:|---|"]
    for workload in workloads:
        with_auth, row = best(cells, workload, "ours+auth"), [workload]
        for name in ("ours", "PostGraphile"):
            other = best(cells, workload, name)
            if with_auth is None or other is None or not other.rps:
                row += ["", ""]
                continue
            value = with_auth.rps / other.rps
            wanted = AUTH_GOALS[name] if name == "ours" or workload in ("Q1", "Q2", "Q3") else None
            row += [f"{value:.2f}", _verdict(value, wanted, judge)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", *(f"- {w}: {DESCRIPTIONS[w]}" for w in workloads)]
    return "\n".join(lines)


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=BENCH.parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gql", "schema.sql"],
                               capture_output=True, text=True, cwd=BENCH.parent).stdout.strip()
    except OSError:
        return "?"
    return head + (" + uncommitted changes in gql/ or schema.sql" if dirty else "")


async def prepare(server: str, args: argparse.Namespace, work: Path) -> None:
    started = time.perf_counter()
    dataset = data.generate(args.orders, args.seed)
    async with fresh_database(server) as url:
        seconds = await data.load(url, dataset)
        print(f"loaded {args.orders:,} orders, {dataset.events:,} events in {seconds:.0f}s", flush=True)
        orders, customers, owners = await _ids(url)
        issuer = auth.Issuer(work)
        write_inputs(work, orders, customers, owners, issuer)
        version = await server_version(url)
        # the rest runs synchronously (subprocesses); this loop only holds the database open
        await asyncio.to_thread(run_all, args, url, work, {
            "orders": args.orders, "events": dataset.events, "customers": len(customers),
            "postgres": version, "load_seconds": round(seconds, 1), "started": started}, issuer)


def run_all(args: argparse.Namespace, url: str, work: Path, facts: dict[str, Any],
            issuer: auth.Issuer) -> None:
    run = Run(args, url, work, issuer)
    workloads = args.workloads
    try:
        reads = [w for w in workloads if w in READS]
        if reads:
            run.reads(reads)
        if "W1" in workloads:
            run.writes()
    finally:
        run.stop()
    v = peers.versions()
    header = (
        f"# ours vs PostGraphile vs raw, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"# {facts['orders']:,} orders, {facts['events']:,} events, {facts['customers']:,} customers; "
        f"PostgreSQL {facts['postgres']}; {machine()}\n"
        f"# ordergraph {_git()}; PostGraphile {v['postgraphile']} on node {v['node']}\n"
        f"# concurrency {args.concurrency}, pool {args.pool} per contender, {args.seconds:g}s per cell "
        f"after {args.warmup:g}s warm-up, best of {args.rounds} alternating rounds; servers and raw "
        f"on cpu {args.server_cpu}, wrk on cpu {args.loadgen_cpu}"
        + (f"\n# {SMOKE}" if args.smoke else ""))
    table = report(run.cells, workloads, header, judge=not args.smoke)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now(UTC):%Y%m%d-%H%M%S}"
    (out / f"compare-{stamp}.md").write_text(table + "\n")
    (out / f"compare-{stamp}.json").write_text(json.dumps(
        {"facts": {**facts, **v, "args": vars(args)}, "cells": [asdict(c) for c in run.cells]},
        indent=1, default=str))
    print(f"\nwritten to {out}/compare-{stamp}.md (+ .json); "
          f"{time.perf_counter() - facts['started']:.0f}s in all")
    failed = [f"{c.workload} {c.contender} ({c.bad}/{c.requests})" for c in run.cells if c.bad]
    if failed:
        print(f"cells with failed requests: {', '.join(failed)}")
        if args.smoke:
            raise SystemExit(1)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 orders, 3 s cells, 1 s warm-up")
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders, 1 s cells, no warm-up, 1 round: checks, measures nothing")
    parser.add_argument("--orders", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, help="measured seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each cell (default 3)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--pool", type=int, help="database connections per contender (default 10)")
    parser.add_argument("--workloads", default="Q1,Q2,Q3,Q4,Q5,W1")
    parser.add_argument("--port", type=int, help="ours (default 8830); PostGraphile gets port + 1, "
                        "bare HTTP port + 2, ours+auth port + 3; free ports with --smoke")
    parser.add_argument("--out", help="where the table and the rounds go (default bench/out, "
                        "bench/out/smoke with --smoke)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.orders = args.orders or (200 if smoke else 5_000 if args.quick else 20_000)
    args.seconds = args.seconds or (1.0 if smoke else 3.0 if args.quick else 10.0)
    if args.warmup is None:
        args.warmup = 0.0 if smoke else 1.0 if args.quick else 3.0
    args.rounds = args.rounds or (1 if smoke else 2)
    args.concurrency = args.concurrency or (8 if smoke else 32)
    args.pool = args.pool or (4 if smoke else 10)
    if args.port is None:
        args.ports = free_ports(4) if smoke else [8830 + i for i in range(4)]
    else:
        args.ports = [args.port + i for i in range(4)]
    args.out = args.out or str(BENCH / "out" / ("smoke" if smoke else ""))
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    two = (os.cpu_count() or 1) >= 2
    args.server_cpu, args.loadgen_cpu = (0, 1) if two else (None, None)
    return args


def main() -> None:
    args = parse()
    ensure_wrk()
    peers.install_postgraphile()
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    with postgres() as server:
        asyncio.run(prepare(server, args, work))


if __name__ == "__main__":
    main()
