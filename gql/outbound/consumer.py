"""A durable consumer at work: hold its lock, read the log after its position, hand the events
to a sink, and move the position only after the sink confirmed them.

One process runs a consumer at a time: the runner holds a session advisory lock on the very
connection that moves the position. Another process of the same consumer waits, trying the
lock every `takeover_interval` seconds; when the holder dies its connection (and lock) goes,
and the next one resumes from the stored position. A holder whose connection was lost cannot
move the position any more: at worst the batch in flight is delivered twice, which a sink's
idempotency key (the event id) lets the receiver drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gql.errors import DatabaseUnavailable
from gql.events import ORIGIN, Position
from gql.listener import Listener
from gql.metrics import RELAYED
from gql.store import DATABASE_ERRORS, Connection, consumers
from gql.store.consumers import Consumer, LogRow, ParkedEvent
from gql.waiting import stopped, until_set

log = logging.getLogger("ordergraph.outbound")

HELD_RETRY = (0.002, 0.05)  # as the live hub: re-read soon while a transaction holds events back
FAILURE_BACKOFF = (0.1, 5.0)  # seconds between attempts after a sink or database failure


@dataclass(frozen=True)
class OutEvent:
    """An event on its way out: where it is in the log, what it is, and its JSON (the object
    `ordergraph export` writes for it)."""

    position: Position
    event_id: uuid.UUID
    order_id: uuid.UUID
    stream_version: int
    event_type: str
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    body: bytes
    trace_parent: str | None = None  # the appending request's trace: a delivery continues it

    @classmethod
    def of(cls, row: LogRow) -> OutEvent:
        assert row.body is not None
        return cls(row.position, row.event_id, row.order_id, row.stream_version, row.event_type,
                   row.correlation_id, row.causation_id, row.body.encode(), row.trace_parent)


@dataclass
class Outcome:
    """What a sink did with a batch: its first `done` events are finished (delivered, or
    parked); `error` says why it stopped before the end; `stop` ends the consumer there."""

    done: int
    parked: list[ParkedEvent] = field(default_factory=list)
    error: str | None = None
    stop: bool = False


class Sink(Protocol):
    kind: str  # "nats" or "webhook", recorded with the consumer

    async def deliver(self, events: Sequence[OutEvent]) -> Outcome:
        """Deliver in order; the events reported done are confirmed by the receiver."""
        ...

    async def close(self) -> None: ...


class Stopped(Exception):
    """The consumer stopped at an event its sink could not deliver (README, "Streaming out")."""


def holder_name(kind: str) -> str:
    return f"ordergraph-relay {kind} {socket.gethostname()}:{os.getpid()}"


class ConsumerRunner:
    """Runs one consumer with one sink until cancelled (or stopped by its sink)."""

    def __init__(self, database_url: str, name: str, sink: Sink, *,
                 types: Sequence[str] | None = None, start: Position = ORIGIN, batch: int = 500,
                 poll_interval: float = 1.0, takeover_interval: float = 1.0,
                 own_listener: bool = True) -> None:
        self.database_url = database_url
        self.name = name
        self.sink = sink
        self.types = sorted(types) if types else None
        self.start = start
        self.batch = batch
        self.poll_interval = poll_interval
        self.takeover_interval = takeover_interval
        self.active = False  # holds the lock and delivers
        self._wake = asyncio.Event()
        # out of the server, the runner has a doorbell of its own; beside it, the live hub's
        self._listener = Listener(database_url, self.wake) if own_listener else None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; raises Stopped when the sink stops the consumer."""
        if self._listener is not None:
            self._listener.start()
        backoff = FAILURE_BACKOFF[0]
        try:
            while True:
                try:
                    await self._session()
                except (*DATABASE_ERRORS, DatabaseUnavailable) as exc:
                    log.warning("consumer %s: database failure: %s; retrying", self.name, exc)
                except OSError as exc:  # a sink's connection, outside its own handling
                    log.warning("consumer %s: %s; retrying", self.name, exc)
                self.active = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, FAILURE_BACKOFF[1])
        finally:
            self.active = False
            if self._listener is not None:
                await self._listener.stop()
            await self.sink.close()

    async def _session(self) -> None:
        """One database connection's life: wait for the lock, then deliver while it lasts.
        A second connection reads the log ahead while the sink confirms the batch before."""
        conn = await consumers.connect(self.database_url, holder_name(self.sink.kind))
        reader: Connection | None = None
        try:
            consumer = await consumers.open_consumer(conn, self.name, self.sink.kind, self.types,
                                                     self.start)
            await self._take_over(conn, consumer)
            log.info("consumer %s: running from %s", self.name, consumer.position.encode())
            self.active = True
            await consumers.stop(conn, self.name, None)
            reader = await consumers.connect(self.database_url,
                                             holder_name(self.sink.kind) + " reader")
            await self._deliver(conn, reader)
        finally:
            for held in (conn, reader):
                with contextlib.suppress(Exception):
                    if held is not None:
                        held.terminate()

    async def _take_over(self, conn: Connection, consumer: Consumer) -> None:
        """Return once this connection holds the consumer's lock (another process may run it)."""
        while True:
            if await consumers.try_lock(conn, consumer):
                return
            await asyncio.sleep(self.takeover_interval)

    async def _deliver(self, conn: Connection, reader: Connection) -> None:
        position = (await consumers.open_consumer(conn, self.name, self.sink.kind, self.types,
                                                  self.start)).position  # as stored once locked
        retry = 0.0  # while events are held back: seconds until the next read
        failures = 0
        replayed = 0.0  # when parked events to replay were last looked for
        ahead: asyncio.Task[tuple[list[LogRow], bool]] | None = None
        try:
            while True:
                if time.monotonic() - replayed >= self.poll_interval:
                    await self._replay(conn)
                    replayed = time.monotonic()
                rows, held = await (ahead or self._read(reader, position))
                ahead = None
                events = [OutEvent.of(row) for row in rows if row.body is not None]
                if len(rows) >= self.batch:  # read the next page while the sink confirms this one
                    ahead = asyncio.create_task(self._read(reader, rows[-1].position))
                outcome = await self.sink.deliver(events) if events else Outcome(0)
                finished = outcome.error is None and outcome.done == len(events)
                moved = (rows[-1].position if finished and rows
                         else events[outcome.done - 1].position if outcome.done else position)
                if moved != position or outcome.parked:
                    delivered = outcome.done - len(outcome.parked)
                    await consumers.advance(conn, self.name, moved, delivered, outcome.parked)
                    RELAYED.labels(self.name, "delivered").inc(delivered)
                    RELAYED.labels(self.name, "parked").inc(len(outcome.parked))
                    position = moved
                if outcome.stop:
                    await consumers.stop(conn, self.name, outcome.error)
                    raise Stopped(f"consumer {self.name} stopped at an event it could not "
                                  f"deliver: {outcome.error}")
                if not finished:
                    # read again from the position, once the read ahead gave its connection back
                    await stopped(ahead, *DATABASE_ERRORS)
                    ahead = None
                    failures += 1
                    pause = min(FAILURE_BACKOFF[0] * 2 ** (failures - 1), FAILURE_BACKOFF[1])
                    log.warning("consumer %s: %s; again in %.1f s", self.name, outcome.error, pause)
                    await asyncio.sleep(pause)
                    continue
                failures = 0
                if ahead is not None:
                    continue
                retry = min(retry * 2 or HELD_RETRY[0], HELD_RETRY[1]) if held else 0.0
                await until_set(self._wake, retry or self.poll_interval)
                self._wake.clear()
        finally:
            await stopped(ahead, *DATABASE_ERRORS)

    async def _read(self, reader: Connection, after: Position) -> tuple[list[LogRow], bool]:
        return await consumers.read_log(reader, after=after, types=self.types, limit=self.batch)

    async def _replay(self, conn: Connection) -> None:
        """Parked events that `ordergraph consumers replay` marked, delivered again."""
        rows = await consumers.read_replays(conn, self.name, self.batch)
        if not rows:
            return
        events = [OutEvent.of(row) for row in rows]
        outcome = await self.sink.deliver(events)
        redelivered = outcome.done - len(outcome.parked)
        parked = {p.event_id for p in outcome.parked}
        delivered = [e.event_id for e in events[:outcome.done] if e.event_id not in parked]
        await consumers.unpark(conn, self.name, delivered, outcome.parked)
        RELAYED.labels(self.name, "replayed").inc(redelivered)
        log.info("consumer %s: replayed %d parked events, %d parked again", self.name,
                 redelivered, len(outcome.parked))
