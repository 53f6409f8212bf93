"""Shared bench plumbing: a fresh database on the embedded (or given) PostgreSQL."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gql.database import embedded_postgres
from gql.events import EventType, NewEvent
from gql.identity import SYSTEM
from gql.store.append import append_event, register_customer
from gql.store.connection import connect
from gql.store.migrations import migrate


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """DATABASE_URL's server, else an embedded PostgreSQL in a temporary directory."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="ordergraph-bench-") as tmp, \
            embedded_postgres(Path(tmp) / "pg") as url:
        yield url


# printed by every bench run with --smoke, above its table
SMOKE = ("smoke run: tiny data, short cells, one round, every contender, code path and check "
         "of the real run; it shows that the bench works, its figures measure nothing")


@contextlib.asynccontextmanager
async def empty_database(server_url: str, template: str | None = None) -> AsyncIterator[str]:
    """A new database on the server (a copy of `template` when given), dropped afterwards."""
    name = f"og_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    copy = f' template "{urlsplit(template).path.lstrip("/")}"' if template else ""
    await admin.execute(f'create database "{name}"{copy}')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'drop database "{name}" with (force)')
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new database with this release's schema, dropped afterwards."""
    async with empty_database(server_url) as url:
        conn = await connect(url)
        await migrate(conn)
        await conn.close()
        yield url


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("show server_version")
    finally:
        await conn.close()


async def place_orders(pool: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    """`count` empty orders of one new customer, through the append path."""
    customer = uuid.uuid4()
    await register_customer(pool, customer, "Bench", f"{customer.hex[:10]}@example.com",
                            SYSTEM.claims())
    orders = [uuid.uuid4() for _ in range(count)]
    for order_id in orders:
        await append_event(pool, NewEvent(order_id, EventType.ORDER_PLACED, {
            "customerId": str(customer), "currency": "EUR", "items": []}), SYSTEM.claims())
    return orders


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on loopback now (smoke runs share machines)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_report(out: Path, bench: str, text: str) -> Path:
    """A bench's table as `out/<bench>-<UTC time>.md`; its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{bench}-{datetime.now(UTC):%Y%m%d-%H%M%S}.md"
    path.write_text(text)
    return path


def wrk_bench_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of a bench whose servers wrk loads with the data of bench/data.py, cell
    after cell in alternating rounds (bench.control, bench.traces); add its own, then call
    `wrk_bench_settings`."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--out", help="default bench/out, bench/out/smoke with --smoke")
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders, 1 s cells, 1 round: checks, measures nothing")
    return parser


def wrk_bench_settings(args: argparse.Namespace, ports: list[int]) -> Path:
    """What the options left unset (5,000 orders, 10 s cells after 2 s of warm-up, 3 rounds;
    with --smoke 200 orders, 1 s cells, no warm-up, 1 round), the servers' ports (`ports`, or
    free ones with --smoke), servers on cpu 0 and wrk on cpu 1; returns the work directory."""
    smoke = args.smoke
    args.orders = args.orders or (200 if smoke else 5_000)
    args.seconds = args.seconds or (1.0 if smoke else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if smoke else 2.0)
    args.rounds = args.rounds or (1 if smoke else 3)
    args.ports = free_ports(len(ports)) if smoke else ports
    args.out = args.out or str(Path(__file__).resolve().parent / "out" / ("smoke" if smoke else ""))
    two = (os.cpu_count() or 1) >= 2
    args.server_cpu, args.loadgen_cpu = (0, 1) if two else (None, None)
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    return work
