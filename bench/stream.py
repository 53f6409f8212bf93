"""Streaming out: the JetStream relay against raw nats-py, its commit → ack latency against the
WebSocket's, and SSE against WebSocket delivery with many subscribers.

    python -m bench.stream [--orders 20000] [--rounds 2] [--rate 200] [--seconds 10]
                           [--subscribers 1000] [--nats nats://127.0.0.1:4222] [--smoke]

1. **Throughput / catch-up**: the 20,000-order bench data (bench/data.py) is loaded; a relay
   (`ConsumerRunner` + `JetStreamSink`, batches of 500) publishes the whole log from position
   0 to a fresh stream: events/s published and acknowledged. The raw contender publishes the
   same messages (bodies and headers read beforehand) with nats-py's `publish_async` in the
   same batches, awaiting each batch's acks. Rounds alternate; the best of each counts.
2. **Latency at `rate` events/s**: `ordergraph serve` and `ordergraph relay nats` (each its own
   process) run on a fresh database; a writer appends `rate` events/s; one WebSocket client
   follows every event, and a core NATS subscription on the relay's subjects sees each
   message as JetStream stores it. Latency runs from the moment the writer sends the append to
   the moment the client has the message (the same definition as bench.live).
3. **SSE vs WebSocket**: N clients over each transport (client i follows order i mod 100, as
   in bench.live) while the writer appends `rate` events/s; delivery latency per transport.
`--smoke` runs all three on small data in seconds (tests/test_stream_benches.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import httpx
import nats
from nats.js.api import StreamConfig

from bench.common import fresh_database, machine, percentile, place_orders, postgres, server_version
from bench.data import generate, load
from bench.live import BOARD, ITEM, _subscriber
from gql.events import ORIGIN, EventType, NewEvent
from gql.identity import SYSTEM
from gql.outbound.consumer import ConsumerRunner, OutEvent
from gql.outbound.jetstream import JetStreamSink, headers
from gql.store import consumers
from gql.store.append import append_event
from gql.store.connection import create_pool

SSE_QUERY = "subscription($id: UUID) { orderEvents(orderId: $id) { id globalPosition type } }"
WS_QUERY = SSE_QUERY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stream(js: nats.js.JetStreamContext, subjects: str) -> str:
    name = f"OGBENCH_{uuid.uuid4().hex[:10]}"
    await js.add_stream(StreamConfig(name=name, subjects=[subjects], duplicate_window=120))
    return name


# -- 1. throughput --------------------------------------------------------------------------

async def _relay_round(url: str, nats_url: str, total: int) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:8]
    stream = await _stream(js, f"ogb.{tag}.*")
    name = f"bench-{tag}"
    runner = ConsumerRunner(url, name, JetStreamSink(nats_url, stream, f"ogb.{tag}.{{type}}"),
                            batch=500, own_listener=False)
    check = await asyncpg.connect(url)
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    try:
        delivered = "select delivered from stream_consumers where name = $1"
        while await check.fetchval(delivered, name) != total:  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await check.close()
    assert (await js.stream_info(stream)).state.messages == total
    await js.delete_stream(stream)
    await nc.close()
    return total / seconds


async def _messages(url: str) -> list[OutEvent]:
    conn = await consumers.connect(url, "bench")
    try:
        rows, _ = await consumers.read_log(conn, after=ORIGIN, types=None, limit=10_000_000)
    finally:
        await conn.close()
    return [OutEvent.of(r) for r in rows]


async def _raw_round(messages: list[OutEvent], nats_url: str) -> float:
    """nats-py alone: the same messages, batches of 500 published pipelined, acks awaited."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=100_000)
    tag = uuid.uuid4().hex[:8]
    stream = await _stream(js, f"ogr.{tag}.*")
    started = time.perf_counter()
    for start in range(0, len(messages), 500):
        acks = [await js.publish_async(f"ogr.{tag}.{m.event_type}", m.body, headers=headers(m),
                                       stream=stream) for m in messages[start:start + 500]]
        for ack in acks:
            await ack
    seconds = time.perf_counter() - started
    assert (await js.stream_info(stream)).state.messages == len(messages)
    await js.delete_stream(stream)
    await nc.close()
    return len(messages) / seconds


async def throughput(server_url: str, args: argparse.Namespace) -> dict[str, float]:
    data = generate(args.orders, 7)
    async with fresh_database(server_url) as url:
        await load(url, data)
        messages = await _messages(url)
        relay, raw = [], []
        for _ in range(args.rounds):
            raw.append(await _raw_round(messages, args.nats))
            relay.append(await _relay_round(url, args.nats, len(messages)))
            print(f"  round: raw {raw[-1]:,.0f}/s, relay {relay[-1]:,.0f}/s (load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    return {"events": len(messages), "relay_per_s": max(relay), "raw_per_s": max(raw),
            "ratio": max(relay) / max(raw)}


# -- 2. and 3. latency ------------------------------------------------------------------------

async def _write(pool: asyncpg.Pool, orders: list[uuid.UUID], rate: float, seconds: float,
                 sent: dict[str, float]) -> None:
    async def one(order_id: uuid.UUID) -> None:
        event = NewEvent(order_id, EventType.ITEM_ADDED_TO_ORDER, ITEM)
        sent[str(event.event_id)] = time.perf_counter()
        await append_event(pool, event, SYSTEM.claims())

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(orders[i % len(orders)])))
    await asyncio.gather(*tasks)


def _latencies(sent: dict[str, float], seen: list[tuple[str, float]]) -> list[float]:
    return [(at - sent[eid]) * 1000 for eid, at in seen if eid in sent]


async def _sse_client(base: str, order_id: uuid.UUID | None, seen: list[tuple[str, float]],
                      ready: asyncio.Event) -> None:
    """A bare SSE client: one POST, then `next` events read line by line."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps({"query": SSE_QUERY, "variables": {"id": order_id and str(order_id)}}).encode()
    writer.write(b"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
                 b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    await writer.drain()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # status line and headers
    ready.set()
    try:
        while line := await reader.readline():
            if line.startswith(b"data: {"):
                event = json.loads(line[6:])["data"]["orderEvents"]
                seen.append((event["id"], time.perf_counter()))
    finally:
        writer.close()


async def _clients(make: Callable[..., object], count: int, follows: list[uuid.UUID | None],
                   target: str) -> tuple[list[list[tuple[str, float]]], list[asyncio.Task[None]]]:
    seen: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, count, 50):
        batch = [asyncio.Event() for _ in range(start, min(start + 50, count))]
        tasks += [asyncio.create_task(make(target, follows[start + i], seen[start + i], ready))  # type: ignore[arg-type]
                  for i, ready in enumerate(batch)]
        await asyncio.gather(*(ready.wait() for ready in batch))
    return seen, tasks


async def _until_subscribed(base: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for _ in range(1200):
            text = (await http.get("/metrics")).text
            if f"ordergraph_subscriptions {float(count)}" in text:
                return
            await asyncio.sleep(0.05)
    raise SystemExit(f"timed out waiting for {count} subscriptions")


async def _deliveries(make: Callable[..., object], target: str, base: str, count: int,
                      pool: asyncpg.Pool, orders: list[uuid.UUID], args: argparse.Namespace,
                      extra: Callable[[], list[tuple[str, float]]] | None = None,
                      ) -> tuple[list[float], list[float], int]:
    follows = [orders[i % len(orders)] if count >= 100 else None for i in range(count)]
    seen, tasks = await _clients(make, count, follows, target)
    await _until_subscribed(base, count)
    await _write(pool, orders, args.rate, 1.0, {})  # warm-up
    sent: dict[str, float] = {}
    await _write(pool, orders, args.rate, args.seconds, sent)
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latency = [ms for s in seen for ms in _latencies(sent, s)]
    expected = len(sent) * (count if count < 100 else count // len(orders))
    others = _latencies(sent, extra()) if extra else []
    await _until_subscribed(base, 0)
    return latency, others, expected - len(latency)


def _start(args: list[str], cpu: int | None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return subprocess.Popen([*prefix, sys.executable, "-m", "gql", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def latency(server_url: str, args: argparse.Namespace) -> dict[str, float]:
    async with fresh_database(server_url) as url:
        pool = await create_pool(url, min_size=8, max_size=8)
        orders = await place_orders(pool, BOARD)
        port, tag = _free_port(), uuid.uuid4().hex[:8]
        base = f"http://127.0.0.1:{port}"
        nc = await nats.connect(args.nats)
        js = nc.jetstream()
        stream = await _stream(js, f"ogl.{tag}.*")
        relay = _start(["relay", "nats", "--url", args.nats, "--stream", stream, "--subject",
                        f"ogl.{tag}.{{type}}", "--consumer", "bench", "--from", "end",
                        "--database-url", url], 0 if args.pin else None)
        server = _start(["serve", "--database-url", url, "--port", str(port)],
                        0 if args.pin else None)
        stored: list[tuple[str, float]] = []

        async def on_message(msg: nats.aio.msg.Msg) -> None:
            stored.append((msg.headers["Nats-Msg-Id"], time.perf_counter()))  # type: ignore[index]

        await nc.subscribe(f"ogl.{tag}.*", cb=on_message)
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                await asyncio.sleep(0.1)
            ws = base.replace("http://", "ws://") + "/graphql"
            results: dict[str, float] = {}
            ws1, relay_ms, lost = await _deliveries(_subscriber, ws, base, 1, pool, orders, args,
                                                    lambda: stored)
            results.update(ws_p99_ms=percentile(ws1, 99), relay_p99_ms=percentile(relay_ms, 99),
                           relay_p50_ms=percentile(relay_ms, 50), ws_p50_ms=percentile(ws1, 50),
                           relay_messages=len(relay_ms), ws_lost=lost, load_2=os.getloadavg()[0])
            print(f"  commit→ack: relay p50 {results['relay_p50_ms']:.1f} p99 "
                  f"{results['relay_p99_ms']:.1f} ms; WebSocket p50 {results['ws_p50_ms']:.1f} "
                  f"p99 {results['ws_p99_ms']:.1f} ms (load {results['load_2']:.1f})", flush=True)
            for _ in range(args.rounds):
                sse, _, sse_lost = await _deliveries(_sse_client, base, base, args.subscribers,
                                                     pool, orders, args)
                wsn, _, ws_lost = await _deliveries(_subscriber, ws, base, args.subscribers,
                                                    pool, orders, args)
                print(f"  {args.subscribers} subscribers: SSE p50 {percentile(sse, 50):.1f} p99 "
                      f"{percentile(sse, 99):.1f} ms (lost {sse_lost}); WebSocket p50 "
                      f"{percentile(wsn, 50):.1f} p99 {percentile(wsn, 99):.1f} ms (lost {ws_lost}) "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                if "sse_p99_ms" not in results or percentile(sse, 99) < results["sse_p99_ms"]:
                    results.update(sse_p99_ms=percentile(sse, 99), sse_lost=sse_lost)
                if "ws_n_p99_ms" not in results or percentile(wsn, 99) < results["ws_n_p99_ms"]:
                    results.update(ws_n_p99_ms=percentile(wsn, 99), ws_n_lost=ws_lost)
            return results
        finally:
            for proc in (server, relay):
                proc.terminate()
                proc.wait(30)
            await js.delete_stream(stream)
            await nc.close()
            await pool.close()


async def main(server_url: str, args: argparse.Namespace) -> dict[str, float]:
    print(f"# streaming out, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; PostgreSQL "
          f"{await server_version(server_url)}; {machine()}; load {os.getloadavg()[0]:.1f}")
    results = await throughput(server_url, args)
    print(f"throughput (catch-up from position 0 over {results['events']:,} events): relay "
          f"{results['relay_per_s']:,.0f} events/s, raw nats-py {results['raw_per_s']:,.0f} "
          f"events/s, relay / raw {results['ratio']:.2f}", flush=True)
    results.update(await latency(server_url, args))
    results["load_end"] = os.getloadavg()[0]
    return results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--nats", default=os.environ.get("ORDERGRAPH_TEST_NATS_URL",
                                                         "nats://127.0.0.1:4222"))
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    parser.add_argument("--smoke", action="store_true", help="small and quick, for the tests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.orders, args.rounds, args.seconds, args.subscribers, args.rate = 200, 1, 1.0, 20, 50
    return args


if __name__ == "__main__":
    args = parse()
    if args.pin and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    else:
        args.pin = False
    with postgres() as server:
        figures = asyncio.run(main(server, args))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
