"""Live delivery: commit-to-client latency of subscriptions vs a bare asyncpg LISTEN client.

    python -m bench.live [--subscribers 1,100,1000] [--rate 200] [--seconds 10] [--rounds 1]
                         [--servers 1] [--writers 0,32] [--throughput 1,8,32] [--json results.json]
    python -m bench.live --smoke      # 1 and 100 subscribers, 50 events/s for 1 s: checks, measures nothing

Starts `ordergraph serve` (the real CLI; `--servers` processes, each with its own listener
and hub, all on one database) on a fresh database, then for each subscriber count N: a paced
writer appends `rate` events/s round-robin over 100 orders while N WebSocket clients
(graphql-transport-ws), subscriber i on server i mod `--servers`, follow them, and every
client records when each event arrives. `--writers 0,32` measures a second row with the same
clients connected: 32 writers appending flat out (0 is the paced writer). Below 100
subscribers (`--orders`) each follows every event (`orderEvents`, the live board); from 100
on, subscriber i follows one order's timeline (`orderEvents(orderId: order i mod 100)`).
The floor is a bare asyncpg connection LISTENing on the same channel in the same process and
event loop: the NOTIFY itself, with no read of the log, no GraphQL and no WebSocket. The
doorbell carries no position, so an event's floor is the first NOTIFY to arrive after its
append was sent. Latency runs from the moment the writer sends the append (one autocommit
statement) to the moment a client has parsed the message. The writers run in a child process
of their own (perf_counter is one clock across processes), so that the clients, which share
this process's event loop with the floor, do not slow the appends down.
Memory per subscriber is the servers' RSS growth divided by N; CPU is the servers' share of
one core while writing, and their CPU time per delivered event (CPU seconds over deliveries,
in microseconds); `load` is the machine's 1-minute load average after the row (other work on
the machine inflates both latencies). The servers and this process are pinned to different
cores; with `--split-cores`, PostgreSQL and the writers have core 1 to themselves and the
servers and clients share core 0, so that delivering does not take the database's CPU (on two
cores, the appends/s with subscribers otherwise measure the sharing of the cores more than live
delivery's own cost). `log reads/s` and `checks/s` are the doorbell's database work per server
(`ordergraph_live_log_reads_total`, `ordergraph_doorbell_checks_total`): the hub's reads of
the log and the listener's snapshot checks, one statement each, whatever N is.

`--throughput 1,8,32` adds a table: appends/s with W writers flat out while the N subscribers
are connected (the doorbell on), against the doorbell off and no subscribers (measured before
and after, averaged), in the same run.

`--smoke` runs one round of 1 and 100 subscribers (both kinds of subscription) on two servers
at 50 events/s and 4 writers flat out for 1 s, and 2 writers for the throughput table; it fails
when an event was lost or delivered twice: it shows that the bench works, its figures measure
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import (
    SMOKE,
    fresh_database,
    machine,
    percentile,
    place_orders,
    postgres,
    server_version,
)
from gql.events import EventType, NewEvent
from gql.identity import SYSTEM
from gql.listener import CHANNEL
from gql.store.append import append_event
from gql.store.connection import create_pool

# the event fields of bench.compare's Q1, as a timeline view subscribes to them
QUERY = """subscription($id: UUID) { orderEvents(orderId: $id) { id globalPosition streamVersion
    type occurredAt recordedAt actor { type id } payload } }"""
BOARD = 100  # orders written to; from this many subscribers on, each follows one order
ITEM = {"sku": "BENCH-1", "quantity": 1, "unitPrice": "1.00"}


@dataclass
class Arrivals:
    """When each client saw each event, and when the bare listener saw each position."""

    by_client: list[list[tuple[str, float]]] = field(default_factory=list)
    floor: dict[int, float] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(url: str, port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    # one server may hold every subscriber: above the default cap of 1,000 connections
    env = {**os.environ, "ORDERGRAPH_MAX_CONNECTIONS": "10000"}
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "gql", "serve", "--database-url", url, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


async def _until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _metric(http: httpx.AsyncClient, name: str) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


async def _total(https: list[httpx.AsyncClient], name: str) -> float:
    return sum(await asyncio.gather(*(_metric(http, name) for http in https)))


DOORBELL_WORK = ("ordergraph_live_log_reads_total", "ordergraph_doorbell_checks_total")


async def _subscriber(ws_url: str, order_id: uuid.UUID | None, seen: list[tuple[str, float]],
                      ready: asyncio.Event) -> None:
    async with connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                       open_timeout=60, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": QUERY, "variables": {"id": order_id and str(order_id)}}}))
        ready.set()
        with contextlib.suppress(ConnectionClosed):  # the server stopped: the run is over
            await _read(ws, seen)


async def _read(ws: ClientConnection, seen: list[tuple[str, float]]) -> None:
    async for raw in ws:
        msg = json.loads(raw)
        if msg["type"] == "next":
            seen.append((msg["payload"]["data"]["orderEvents"]["id"], time.perf_counter()))
        elif msg["type"] == "ping":
            await ws.send('{"type":"pong"}')


async def _write(pool: asyncpg.Pool, orders: list[uuid.UUID], rate: float, seconds: float,
                 ) -> dict[uuid.UUID, tuple[float, int, uuid.UUID]]:
    """Append `rate` events/s for `seconds`, each sent on its schedule whatever the others do."""
    sent: dict[uuid.UUID, tuple[float, int, uuid.UUID]] = {}

    async def one(order_id: uuid.UUID) -> None:
        event = NewEvent(order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
        started = time.perf_counter()
        appended = await append_event(pool, event, SYSTEM.claims())
        sent[event.event_id] = (started, appended.event["global_position"], order_id)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(orders[i % len(orders)])))
    await asyncio.gather(*tasks)
    return sent


async def _flat_out(pool: asyncpg.Pool, orders: list[uuid.UUID], writers: int, seconds: float,
                    ) -> dict[uuid.UUID, tuple[float, int, uuid.UUID]]:
    """`writers` concurrent writers appending as fast as they can for `seconds`."""
    sent: dict[uuid.UUID, tuple[float, int, uuid.UUID]] = {}
    deadline = time.perf_counter() + seconds

    async def writer(w: int) -> None:
        i = w
        while time.perf_counter() < deadline:
            order_id = orders[i % len(orders)]
            event = NewEvent(order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
            started = time.perf_counter()
            appended = await append_event(pool, event, SYSTEM.claims())
            sent[event.event_id] = (started, appended.event["global_position"], order_id)
            i += writers

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return sent


async def _doorbell(pool: asyncpg.Pool, on: bool) -> None:
    await pool.execute("alter table order_events %s trigger order_events_notify"
                       % ("enable" if on else "disable"))


Sent = dict[uuid.UUID, tuple[float, int, uuid.UUID]]


def _write_in_child(url: str, orders: list[uuid.UUID], writers: int, rate: float,
                    seconds: float) -> tuple[Sent, float]:
    """The writing, in a process of its own: the subscribers' clients must not slow it down by
    sharing its event loop. perf_counter is CLOCK_MONOTONIC, the same clock in every process."""
    async def run() -> tuple[Sent, float]:
        pool = await create_pool(url, min_size=max(writers, 1), max_size=max(writers, 8))
        try:
            started = time.perf_counter()
            sent = (await _flat_out(pool, orders, writers, seconds) if writers
                    else await _write(pool, orders, rate, seconds))
            return sent, time.perf_counter() - started
        finally:
            await pool.close()

    return asyncio.run(run())


def _pin(cpus: list[int]) -> None:
    os.sched_setaffinity(0, cpus)


async def _pin_postgres(pool: asyncpg.Pool, cpu: int) -> None:
    """The PostgreSQL server on one core: the postmaster (whose new backends inherit it) and
    every process it has started."""
    postmaster = psutil.Process(await pool.fetchval("select pg_backend_pid()")).parent()
    assert postmaster is not None
    for process in (postmaster, *postmaster.children()):
        process.cpu_affinity([cpu])


class Writer:
    """Runs each writing phase in one child process kept for the whole run."""

    def __init__(self, url: str, cpus: list[int]) -> None:
        self.url = url
        self.executor = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_pin, initargs=(cpus,))

    async def run(self, orders: list[uuid.UUID], writers: int, rate: float, seconds: float,
                  ) -> tuple[Sent, float]:
        """What was appended (when each was sent, its position, its order), and for how long."""
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, _write_in_child, self.url, orders, writers, rate, seconds)

    def close(self) -> None:
        self.executor.shutdown()


async def _appends_per_second(writer: Writer, orders: list[uuid.UUID], writers: int,
                              seconds: float) -> float:
    sent, elapsed = await writer.run(orders, writers, 0.0, seconds)
    return len(sent) / elapsed


@dataclass
class Phase:
    subscribers: int
    writers: int  # 0: the paced writer
    appends_per_second: float
    deliveries: int
    received: int
    duplicates: int
    latency: list[float]
    floor: list[float]
    cpu: float
    memory: float
    cpu_seconds: float = 0.0  # the servers' CPU time while writing
    log_reads: float = 0.0  # per server and second while writing
    checks: float = 0.0

    @property
    def cpu_per_delivery_us(self) -> float:
        return self.cpu_seconds / self.received * 1e6 if self.received else 0.0


async def _connect(count: int, orders: list[uuid.UUID], bases: list[str],
                   https: list[httpx.AsyncClient],
                   ) -> tuple[list[asyncio.Task[None]], list[list[tuple[str, float]]], list]:
    """`count` clients, client i on server i mod len(bases), subscribed before this returns."""
    ws_urls = [base.replace("http://", "ws://") + "/graphql" for base in bases]
    follows = [orders[i % len(orders)] if count >= len(orders) else None for i in range(count)]
    seen: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    clients: list[asyncio.Task[None]] = []
    for start in range(0, count, 50):  # connect in batches, as a crowd arriving
        batch = [asyncio.Event() for _ in range(start, min(start + 50, count))]
        clients += [asyncio.create_task(_subscriber(ws_urls[(start + i) % len(ws_urls)],
                                                    follows[start + i], seen[start + i], ready))
                    for i, ready in enumerate(batch)]
        await asyncio.gather(*(ready.wait() for ready in batch))

    async def subscribed() -> bool:
        return await _total(https, "ordergraph_subscriptions") == count

    await _until(subscribed, 120, f"{count} subscriptions")
    return clients, seen, follows


async def _measure(count: int, writers: int, orders: list[uuid.UUID], writer: Writer,
                   https: list[httpx.AsyncClient], servers: list[psutil.Process],
                   args: argparse.Namespace, floor: list[float], seen: list[list[tuple[str, float]]],
                   follows: list) -> Phase:
    """One row: the paced writer (writers=0) or `writers` flat out, clients already connected."""
    for s in seen:
        s.clear()
    await writer.run(orders, 0, args.rate, 1.0)  # warm-up, not measured
    work_before = [await _total(https, name) for name in DOORBELL_WORK]
    cpu_before, wall_before = [p.cpu_times() for p in servers], time.perf_counter()
    sent, _ = await writer.run(orders, writers, args.rate, args.seconds)
    cpu_after, wall_after = [p.cpu_times() for p in servers], time.perf_counter()
    work_after = [await _total(https, name) for name in DOORBELL_WORK]
    wall = wall_after - wall_before
    followers = collections.Counter(follows)  # computed cheaply: the clients are still reading
    expected = sum(followers[None] + followers[order_id] for _, _, order_id in sent.values())
    measured = {str(event_id) for event_id in sent}

    async def delivered() -> bool:
        return sum(1 for s in seen for eid, _ in s if eid in measured) >= expected

    with contextlib.suppress(SystemExit):
        await _until(delivered, 30, "deliveries")
    await asyncio.sleep(0.3)
    latency, received, duplicates = [], 0, 0
    for s in seen:
        ids = [eid for eid, _ in s if eid in measured]
        received += len(set(ids))
        duplicates += len(ids) - len(set(ids))
        latency += [(at - sent[uuid.UUID(eid)][0]) * 1000 for eid, at in s if eid in measured]
    rung = [(started, bisect.bisect_left(floor, started)) for started, _, _ in sent.values()]
    floor_latency = [(floor[i] - started) * 1000 for started, i in rung if i < len(floor)]
    cpu_seconds = sum(a.user + a.system - b.user - b.system
                      for a, b in zip(cpu_after, cpu_before, strict=True))
    reads, checks = ((after - before) / wall / len(servers)
                     for before, after in zip(work_before, work_after, strict=True))
    return Phase(count, writers, len(sent) / wall, expected, received, duplicates, latency,
                 floor_latency, cpu_seconds / wall * 100, 0.0, cpu_seconds, reads, checks)


async def _subscribers_round(count: int, orders: list[uuid.UUID], writer: Writer,
                             bases: list[str], servers: list[psutil.Process],
                             args: argparse.Namespace, floor: list[float],
                             ) -> tuple[list[Phase], dict[int, float]]:
    """Connect `count` clients, measure a row per writer mode and the throughput, disconnect."""
    https = [httpx.AsyncClient(base_url=base, timeout=30) for base in bases]
    try:
        rss_before = sum(p.memory_info().rss for p in servers)
        clients, seen, follows = await _connect(count, orders, bases, https)
        await asyncio.sleep(0.5)
        memory = (sum(p.memory_info().rss for p in servers) - rss_before) / count
        phases = []
        for writers in args.writers:
            phase = await _measure(count, writers, orders, writer, https, servers, args, floor, seen,
                                   follows)
            phase.memory = memory
            phases.append(phase)
        throughput = {w: await _appends_per_second(writer, orders, w, args.seconds)
                      for w in args.throughput}
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)

        async def unsubscribed() -> bool:
            return await _total(https, "ordergraph_subscriptions") == 0

        await _until(unsubscribed, 60, "subscriptions to end")
        return phases, throughput
    finally:
        for http in https:
            await http.aclose()


def _row(p: Phase) -> str:
    p50, p99, fp99 = percentile(p.latency, 50), percentile(p.latency, 99), percentile(p.floor, 99)
    memory = f"{p.memory / 1024:.0f}" if p.subscribers >= 100 else "n/a"  # noise below that
    writing = f"{p.writers} flat out" if p.writers else "paced"
    return (f"| {p.subscribers:,} | {writing} | {p.appends_per_second:,.0f} | {p.deliveries:,} "
            f"| {p.deliveries - p.received:,} | {p.duplicates} "
            f"| {p50:.1f} | {p99:.1f} | {max(p.latency, default=0):.1f} "
            f"| {percentile(p.floor, 50):.1f} | {fp99:.1f} | {p99 / fp99:.1f} | {p.cpu:.0f} "
            f"| {p.cpu_per_delivery_us:.0f} | {memory} | {p.log_reads:.0f} | {p.checks:.0f} "
            f"| {os.getloadavg()[0]:.1f} |")


def _summary(p: Phase) -> dict[str, float]:
    return {"subscribers": p.subscribers, "writers": p.writers,
            "appends_per_second": p.appends_per_second, "deliveries": p.deliveries,
            "lost": p.deliveries - p.received, "duplicates": p.duplicates,
            "p50_ms": percentile(p.latency, 50), "p99_ms": percentile(p.latency, 99),
            "max_ms": max(p.latency, default=0), "floor_p99_ms": percentile(p.floor, 99),
            "server_cpu_percent": p.cpu, "server_cpu_seconds": p.cpu_seconds,
            "server_cpu_us_per_delivery": p.cpu_per_delivery_us,
            "rss_per_subscriber_kib": p.memory / 1024, "log_reads_per_second": p.log_reads,
            "checks_per_second": p.checks, "load": os.getloadavg()[0]}


async def main(server_url: str, args: argparse.Namespace) -> list[dict[str, float]]:
    async with fresh_database(server_url) as url:
        pool = await create_pool(url, min_size=2, max_size=8)
        orders = await place_orders(pool, args.orders)
        every = list(range(os.cpu_count() or 1))
        if args.split:
            await _pin_postgres(pool, 1)
        writer = Writer(url, [1] if args.split else every)
        ports = [_free_port() for _ in range(args.servers)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        procs = [_start_server(url, port, 0 if args.pin else None) for port in ports]
        floor: list[float] = []  # when each NOTIFY arrived, in order
        listener = await asyncpg.connect(url)
        await listener.add_listener(CHANNEL, lambda *a: floor.append(time.perf_counter()))
        try:
            for base in bases:
                async def ready(base: str = base) -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
                            return (await http.get("/readyz")).status_code == 200
                    return False

                await _until(ready, 60, "the server")
            servers = [psutil.Process(proc.pid) for proc in procs]
            print(f"# live delivery, {args.servers} server(s), paced rows {args.rate:g} events/s, "
                  f"{args.seconds:g} s per row, PostgreSQL {await server_version(url)}, {machine()}, "
                  f"{datetime.now(UTC):%Y-%m-%d}")
            if args.smoke:
                print(f"# {SMOKE}")
            print("| subscribers | writers | appends/s | deliveries | lost | dup | p50 ms | p99 ms "
                  "| max ms | floor p50 ms | floor p99 ms | p99/floor p99 | servers' CPU % "
                  "| servers' CPU µs/delivery | RSS/subscriber KiB | log reads/s per server "
                  "| checks/s per server | load |")
            print("|" + "---|" * 18)
            summaries, throughputs = [], []
            for _ in range(args.rounds):
                for count in args.subscribers:
                    off_before = {w: await _quiet_rate(pool, writer, orders, w, args)
                                  for w in args.throughput}
                    phases, on = await _subscribers_round(count, orders, writer, bases, servers, args,
                                                          floor)
                    off_after = {w: await _quiet_rate(pool, writer, orders, w, args)
                                 for w in args.throughput}
                    for p in phases:
                        print(_row(p), flush=True)
                        summaries.append(_summary(p))
                    throughputs += [(count, w, on[w], (off_before[w] + off_after[w]) / 2)
                                    for w in args.throughput]
            if throughputs:
                print(f"\n# appends/s flat out: live delivery on ({args.servers} server(s), the "
                      "subscribers connected) vs the doorbell off and no subscribers (before and after)")
                print("| subscribers | writers | live on | doorbell off, no subscribers | on/off |")
                print("|---|---|---|---|---|")
                for count, w, on_rate, off_rate in throughputs:
                    print(f"| {count:,} | {w} | {on_rate:,.0f} | {off_rate:,.0f} "
                          f"| {on_rate / off_rate:.2f} |", flush=True)
                    summaries.append({"subscribers": count, "writers": w, "live_on": on_rate,
                                      "doorbell_off": off_rate})
            return summaries
        finally:
            await listener.close()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            writer.close()
            await pool.close()


async def _quiet_rate(pool: asyncpg.Pool, writer: Writer, orders: list[uuid.UUID], writers: int,
                      args: argparse.Namespace) -> float:
    """Appends/s with the doorbell off and nobody subscribed."""
    await _doorbell(pool, False)
    try:
        return await _appends_per_second(writer, orders, writers, args.seconds)
    finally:
        await _doorbell(pool, True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=lambda v: [int(n) for n in v.split(",")],
                        help="subscriber counts, one row each (default 1,100,1000)")
    parser.add_argument("--rate", type=float, help="events appended per second (default 200)")
    parser.add_argument("--seconds", type=float, help="measured writing per row (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every subscriber count")
    parser.add_argument("--orders", type=int, default=BOARD,
                        help=f"orders written to (default {BOARD}); from this many subscribers on, "
                             "subscriber i follows order i mod N")
    parser.add_argument("--split-cores", dest="split", action="store_true",
                        help="PostgreSQL and the writers on core 1, the servers and the clients on core 0")
    parser.add_argument("--servers", type=int, default=1,
                        help="ordergraph serve processes; subscriber i connects to server i mod N")
    parser.add_argument("--writers", type=lambda v: [int(n) for n in v.split(",")], default=[0],
                        help="rows per subscriber count: 0 the paced writer, W writers flat out")
    parser.add_argument("--throughput", type=lambda v: [int(n) for n in v.split(",")], default=[],
                        help="writer counts: appends/s flat out, live on vs the doorbell off")
    parser.add_argument("--json", help="also write each row's figures to this JSON file")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the server and this process to different cores")
    parser.add_argument("--smoke", action="store_true",
                        help="1 and 100 subscribers on 2 servers, 1 s rows: checks, measures nothing")
    args = parser.parse_args()
    args.subscribers = args.subscribers or ([1, BOARD] if args.smoke else [1, 100, 1000])
    if args.smoke:  # every code path: two servers, a flat-out row, the throughput table
        args.servers, args.writers, args.throughput = 2, [0, 4], [2]
    args.rate = args.rate or (50.0 if args.smoke else 200.0)
    args.seconds = args.seconds or (1.0 if args.smoke else 10.0)
    if args.pin and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0} if args.split else {1})
    else:
        args.pin = args.split = False
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with postgres() as server:
        results = asyncio.run(main(server, args))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    if args.smoke and any(r.get("lost") or r.get("duplicates") for r in results):
        raise SystemExit("events were lost or delivered twice")
