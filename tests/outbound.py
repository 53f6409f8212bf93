"""Helpers for the streaming-out tests: relay processes, writers, and the log to compare with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from gql.events import EventType, Position
from gql.store.connection import APP_ROLE, as_role
from tests import factories

ROOT = Path(__file__).resolve().parent.parent
NATS_URL = os.environ.get("ORDERGRAPH_TEST_NATS_URL", "nats://127.0.0.1:4222")



class Relay:
    """`ordergraph relay …` as its own process, on the test's database as the server's role."""

    def __init__(self, database_url: str, *args: str) -> None:
        self.args = ["relay", *args, "--database-url", as_role(database_url, APP_ROLE)]
        self.process: asyncio.subprocess.Process | None = None
        self.log = ROOT / "tests" / "artifacts" / f"relay-{uuid.uuid4().hex[:8]}.log"

    async def start(self) -> Relay:
        self.log.parent.mkdir(exist_ok=True)
        with self.log.open("ab") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gql", *self.args, stdout=sink, stderr=sink,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)
            await self.process.wait()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@contextlib.asynccontextmanager
async def relays(*started: Relay | list[Relay]) -> AsyncIterator[None]:
    """Kills the relays on the way out, whatever happened; a list given here is read then, so
    relays appended to it inside the block are killed too."""
    try:
        yield
    finally:
        for given in started:
            for relay in given if isinstance(given, list) else [given]:
                await relay.kill()


async def writer(pool: asyncpg.Pool, customer_id: uuid.UUID, stop: asyncio.Event,
                 orders: int = 3) -> int:
    """Appends to a few orders of its own until told to stop; returns how many events."""
    appended = 0
    order_ids = []
    for _ in range(orders):
        order_id = uuid.uuid4()
        await factories.append(pool, order_id, EventType.ORDER_PLACED,
                               factories.payload_for(EventType.ORDER_PLACED, customer_id))
        order_ids.append(order_id)
        appended += 1
    step = 0
    rng = random.Random(step)
    while not stop.is_set():
        event_type = EventType.ITEM_ADDED_TO_ORDER
        # transactions held open a random while commit out of their order of positions
        async with pool.acquire() as conn, conn.transaction():
            await factories.append(conn, order_ids[step % orders], event_type,
                                   factories.payload_for(event_type))
            await asyncio.sleep(rng.random() * 0.01)
        appended += 1
        step += 1
    return appended


async def logged(pool: asyncpg.Pool) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Every event of the log in its safe order: (event id, order id, stream version)."""
    await factories.settled_end(pool)
    rows = await pool.fetch("select event_id, order_id, stream_version from order_events "
                            "order by log_xid, global_position")
    return [(r["event_id"], r["order_id"], r["stream_version"]) for r in rows]


async def position_of(pool: asyncpg.Pool, name: str) -> Position:
    row = await pool.fetchrow("select after_xid::text::bigint as x, after_seq from stream_consumers "
                              "where name = $1", name)
    return Position(row["x"], row["after_seq"]) if row else Position(0, 0)
