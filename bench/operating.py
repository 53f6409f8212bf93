"""Operating ordergraph under faults, in one run: appends while `rebuild-projections` runs, the
time to recover after the database comes back, and the server's memory under idle sockets.

    python -m bench.operating             # 20,000 orders, 3 rounds per part (~4 min)
    python -m bench.operating --smoke     # 200 orders, short phases (seconds; run by the tests)

One PostgreSQL (embedded, or DATABASE_URL's server) gets a fresh database with the data of
bench/data.py. `ordergraph serve` runs as its own process (as ordergraph_app, on cpu 0 when
there are two); the clients run in this process (on cpu 1).

1. **Appends during a rebuild.** 8 clients append over HTTP (`placeOrder`, then
   `addItemToOrder` with their own eventIds) for `--seconds` without a rebuild, then again
   while `ordergraph rebuild-projections` runs; each round reports both phases' append
   latency (p50, p99, max) and throughput. The rebuild's appends are those completed between
   its start and its end.
2. **Recovery after an outage.** A subscriber follows `orderEvents` and a writer appends every
   20 ms while the database refuses connections for `--outage` seconds (`ALTER DATABASE …
   ALLOW_CONNECTIONS false` and its sessions terminated): the seconds from the database
   accepting connections again until `/readyz` answers 200, and until the subscriber receives
   an event again.
3. **Idle sockets.** `--sockets` connections opened at once that never send a byte: how many
   the connection cap refuses (503) and how many the header deadline closes (408), how long
   until all are gone, and the server's RSS before, at its peak, and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
from websockets.asyncio.client import connect

from bench import data, peers
from bench.common import SMOKE, fresh_database, machine, percentile, postgres, server_version
from bench.compare import BENCH, _git
from gql.events import EventType, NewEvent
from gql.identity import SYSTEM
from gql.store.append import append_event, register_customer
from gql.store.connection import APP_ROLE, as_role, create_pool

PLACE = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { event { id } } }"
ADD = "mutation($input: AddItemToOrderInput!) { addItemToOrder(input: $input) { event { id } } }"
FOLLOW = "subscription { orderEvents { id } }"
WRITERS = 8


# -- 1. appends during a rebuild ----------------------------------------------------------

@dataclass
class Appends:
    done: list[tuple[float, float]] = field(default_factory=list)  # (finished at, seconds)
    answers: Counter[str] = field(default_factory=Counter)

    def between(self, start: float, end: float) -> list[float]:
        return [took for at, took in self.done if start <= at <= end]


async def _writer(url: str, customer: uuid.UUID, stop: asyncio.Event, into: Appends) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            order_id = uuid.uuid4()
            for n in range(50):  # then another order: streams of a realistic length
                if stop.is_set():
                    break
                fields = ({"customerId": str(customer), "currency": "EUR", "items": []} if n == 0
                          else {"sku": f"SKU-{n % 7}", "quantity": 1, "unitPrice": "2.50"})
                body = {"query": PLACE if n == 0 else ADD, "variables": {"input": {
                    "eventId": str(uuid.uuid4()), "orderId": str(order_id), **fields}}}
                started = time.perf_counter()
                response = await http.post(url, json=body)
                finished = time.perf_counter()
                errors = response.json().get("errors")
                into.answers[f"{response.status_code}" + (
                    f" {errors[0]['extensions']['code']}" if errors else "")] += 1
                if response.status_code == 200 and not errors:
                    into.done.append((finished, finished - started))


def _figures(latencies: list[float], seconds: float) -> dict[str, float]:
    ms = [t * 1000 for t in latencies]
    return {"appends": len(ms), "per_s": len(ms) / seconds if seconds else 0.0,
            "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms, default=0.0)}


async def appends_during_rebuild(server: peers.Server, url: str, customer: uuid.UUID,
                                 args: argparse.Namespace) -> list[dict[str, Any]]:
    rounds = []
    for round_ in range(1, args.rounds + 1):
        stop, appends = asyncio.Event(), Appends()
        writers = [asyncio.create_task(_writer(server.url, customer, stop, appends))
                   for _ in range(WRITERS)]
        await asyncio.sleep(1)  # warm: connections open, documents compiled
        quiet_start = time.perf_counter()
        await asyncio.sleep(args.seconds)
        quiet_end = time.perf_counter()
        rebuild = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gql", "rebuild-projections", "--database-url", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=BENCH.parent)
        rebuild_start = time.perf_counter()
        out, err = await rebuild.communicate()
        rebuild_end = time.perf_counter()
        stop.set()
        await asyncio.gather(*writers)
        if rebuild.returncode != 0:
            raise RuntimeError(f"rebuild-projections failed: {err.decode()}")
        quiet = _figures(appends.between(quiet_start, quiet_end), quiet_end - quiet_start)
        during = _figures(appends.between(rebuild_start, rebuild_end), rebuild_end - rebuild_start)
        rounds.append({"round": round_, "quiet": quiet, "rebuild": during,
                       "rebuild_s": rebuild_end - rebuild_start, "answers": dict(appends.answers),
                       "rebuilt": out.decode().strip()})
        print(f"  round {round_}: quiet {quiet['per_s']:,.0f}/s p99 {quiet['p99']:.1f} ms; "
              f"rebuild ({rebuild_end - rebuild_start:.1f} s) {during['per_s']:,.0f}/s "
              f"p99 {during['p99']:.1f} ms max {during['max']:.0f} ms; {dict(appends.answers)}",
              flush=True)
    return rounds


# -- 2. recovery after an outage ----------------------------------------------------------

async def _follow(ws_url: str, received: list[float], ready: asyncio.Event) -> None:
    async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        while json.loads(await ws.recv())["type"] != "connection_ack":
            pass
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": FOLLOW}}))
        ready.set()
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] == "next" and "errors" not in message["payload"]:
                received.append(time.perf_counter())


async def _trickle(url: str, customer: uuid.UUID, stop: asyncio.Event) -> None:
    """One append every 20 ms through the store, whatever the database says."""
    pool = await create_pool(url, min_size=0, max_size=1)  # no floor to restore: quiet
    order_id = uuid.uuid4()
    await append_event(pool, NewEvent(order_id, EventType.ORDER_PLACED, {
        "customerId": str(customer), "currency": "EUR", "items": []}), SYSTEM.claims())
    try:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await append_event(pool, NewEvent(order_id, EventType.ITEM_ADDED_TO_ORDER, {
                    "sku": "SKU-T", "quantity": 1, "unitPrice": "1.00"}), SYSTEM.claims())
            await asyncio.sleep(0.02)
    finally:
        await pool.close()


async def recovery(server: peers.Server, admin_url: str, url: str, customer: uuid.UUID,
                   args: argparse.Namespace) -> list[dict[str, float]]:
    name = urlsplit(url).path.lstrip("/")
    base = server.url.removesuffix("/graphql")
    rounds = []
    for _ in range(args.rounds):
        received: list[float] = []
        ready, stop = asyncio.Event(), asyncio.Event()
        follower = asyncio.create_task(_follow(base.replace("http", "ws") + "/graphql", received, ready))
        await asyncio.wait_for(ready.wait(), 15)
        trickle = asyncio.create_task(_trickle(url, customer, stop))
        await asyncio.sleep(1)
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'alter database "{name}" allow_connections false')
            await admin.fetchval("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                                 "where datname = $1", name)
            await asyncio.sleep(args.outage)
            await admin.execute(f'alter database "{name}" allow_connections true')
        finally:
            await admin.close()
        back = time.perf_counter()
        ready_at = live_at = None
        async with httpx.AsyncClient(timeout=5) as http:
            while (ready_at is None or live_at is None) and time.perf_counter() - back < 60:
                if ready_at is None and (await http.get(base + "/readyz")).status_code == 200:
                    ready_at = time.perf_counter()
                if live_at is None and received and received[-1] > back:
                    live_at = next(t for t in received if t > back)
                await asyncio.sleep(0.01)
        stop.set()
        await trickle
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        figures = {"ready_s": (ready_at or float("nan")) - back,
                   "subscriber_s": (live_at or float("nan")) - back}
        rounds.append(figures)
        print(f"  outage {args.outage:g} s: /readyz ready after {figures['ready_s']:.2f} s, "
              f"subscriber receiving after {figures['subscriber_s']:.2f} s", flush=True)
    return rounds


# -- 3. idle sockets ----------------------------------------------------------------------

def rss_mb(pid: int | None) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20 if pid else float("nan")


async def idle_sockets(server: peers.Server, args: argparse.Namespace) -> dict[str, Any]:
    host, port = "127.0.0.1", server.port
    before = rss_mb(server.pid)
    peak = before
    started = time.perf_counter()
    opened = await asyncio.gather(*(asyncio.open_connection(host, port)
                                    for _ in range(args.sockets)), return_exceptions=True)
    sockets = [s for s in opened if not isinstance(s, BaseException)]
    answers: Counter[str] = Counter({"connect failed": len(opened) - len(sockets)})

    async def closed_by_server(reader: asyncio.StreamReader) -> None:
        try:
            first = await asyncio.wait_for(reader.read(), args.header_timeout + 20)
        except (TimeoutError, OSError):
            answers["still open" if not reader.at_eof() else "reset"] += 1
            return
        answers[first.split(b" ", 2)[1].decode() if first.startswith(b"HTTP/1.1 ") else "closed"] += 1

    waiting = asyncio.gather(*(closed_by_server(reader) for reader, _ in sockets))
    while not waiting.done():
        peak = max(peak, rss_mb(server.pid))
        await asyncio.sleep(0.1)
    await waiting
    gone = time.perf_counter() - started
    for _, writer in sockets:
        writer.close()
    await asyncio.sleep(0.5)
    after = rss_mb(server.pid)
    result = {"sockets": args.sockets, "answers": dict(answers), "all_gone_s": gone,
              "rss_before": before, "rss_peak": peak, "rss_after": after}
    print(f"  {args.sockets} idle sockets: {dict(answers)}; all gone after {gone:.1f} s; RSS "
          f"{before:.0f} → peak {peak:.0f} → {after:.0f} MB", flush=True)
    return result


# -- the run ------------------------------------------------------------------------------

def _table(rebuilds: list[dict[str, Any]], outages: list[dict[str, float]], idle: dict[str, Any],
           args: argparse.Namespace) -> str:
    rows = [f"| {r['round']} | {r['quiet']['per_s']:,.0f} | {r['quiet']['p50']:.1f} | "
            f"{r['quiet']['p99']:.1f} | {r['rebuild']['per_s']:,.0f} | {r['rebuild']['p50']:.1f} | "
            f"{r['rebuild']['p99']:.1f} | {r['rebuild']['max']:.0f} | {r['rebuild_s']:.1f} | "
            f"{', '.join(f'{k}: {v:,}' for k, v in sorted(r['answers'].items()))} |" for r in rebuilds]
    outage_rows = [f"| {n} | {args.outage:g} | {o['ready_s']:.2f} | {o['subscriber_s']:.2f} |"
                   for n, o in enumerate(outages, 1)]
    return "\n".join([
        f"Appends over HTTP, {WRITERS} clients, without and during `ordergraph rebuild-projections`:",
        "",
        "| round | quiet appends/s | p50 ms | p99 ms | during rebuild appends/s | p50 ms | p99 ms "
        "| max ms | rebuild s | answers (all phases) |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "Recovery after the database accepts connections again:", "",
        "| round | outage s | /readyz ready after s | subscriber receiving after s |",
        "|---|---|---|---|", *outage_rows, "",
        f"{idle['sockets']:,} idle sockets at once (cap {args.max_connections:,}, header deadline "
        f"{args.header_timeout:g} s): {', '.join(f'{k}: {v:,}' for k, v in idle['answers'].items() if v)}; "
        f"all closed after {idle['all_gone_s']:.1f} s; server RSS {idle['rss_before']:.0f} MB before, "
        f"{idle['rss_peak']:.0f} MB at peak, {idle['rss_after']:.0f} MB after."])


async def prepare(admin_url: str, args: argparse.Namespace, work: Path) -> str:
    dataset = data.generate(args.orders, args.seed)
    async with fresh_database(admin_url) as url:
        loaded = await data.load(url, dataset)
        print(f"loaded {args.orders:,} orders ({dataset.events:,} events) in {loaded:.0f} s", flush=True)
        pool = await create_pool(url, min_size=1, max_size=1)
        customer = uuid.uuid4()
        await register_customer(pool, customer, "Bench", f"{customer.hex[:10]}@example.com",
                                SYSTEM.claims())
        await pool.close()
        version = await server_version(url)
        settings = {"ORDERGRAPH_HEADER_TIMEOUT": str(args.header_timeout),
                    "ORDERGRAPH_MAX_CONNECTIONS": str(args.max_connections)}
        server = peers.ours(as_role(url, APP_ROLE), args.port, 10, args.server_cpu,
                            work / "operating-ours.log", env=settings)
        await asyncio.to_thread(server.start)
        try:
            print("1. appends during a rebuild", flush=True)
            rebuilds = await appends_during_rebuild(server, url, customer, args)
            print("2. recovery after an outage", flush=True)
            outages = await recovery(server, admin_url, url, customer, args)
            print("3. idle sockets", flush=True)
            idle = await idle_sockets(server, args)
        finally:
            await asyncio.to_thread(server.stop)
    load = os.getloadavg()
    header = (f"# operating under faults, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
              f"{args.orders:,} orders ({dataset.events:,} events); PostgreSQL {version}; {machine()}\n"
              f"# ordergraph {_git()}; load average before/after "
              f"{args.load_before[0]:.2f}/{load[0]:.2f} (1 min)" + (f"\n# {SMOKE}" if args.smoke else ""))
    return f"{header}\n\n{_table(rebuilds, outages, idle, args)}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=10.0, help="appends without a rebuild")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage", type=float, default=8.0)
    parser.add_argument("--sockets", type=int, default=2_000)
    parser.add_argument("--max-connections", type=int, default=1_000)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8870)
    parser.add_argument("--out", default=str(BENCH / "out"))
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data and short phases: checks the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.orders, args.seconds, args.rounds, args.outage = 200, 1.0, 1, 1.0
        args.sockets, args.max_connections, args.header_timeout = 100, 50, 1.0
        args.port = 0
    if args.port == 0:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    args.load_before = os.getloadavg()
    two = (psutil.cpu_count() or 1) >= 2 and not args.smoke
    args.server_cpu = 0 if two else None
    if two:
        os.sched_setaffinity(0, {1})  # the clients; the server runs on cpu 0
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    with postgres() as admin_url:
        report = asyncio.run(prepare(admin_url, args, work))
    print(f"\n{report}")
    if not args.smoke:
        out = Path(args.out) / f"operating-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
        out.write_text(report)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
