"""The listener: one dedicated LISTEN connection per process that rings the hub's doorbell.

A notification only says "the log has grown"; the hub reads the log itself. Only one append
transaction at a time sends one (schema.sql's og_after_append takes a try-lock): those that
commit meanwhile skip it. So after each notification the listener follows up: it notes the
next transaction id, waits until every transaction below it has ended (the snapshot's xmin
passes it), and rings again, so every reader reads once more after the skipped ones committed.

asyncpg does not re-LISTEN after a dropped connection, so this module watches for termination,
reconnects with backoff, LISTENs again and rings once more so the hub catches up on what it
missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import asyncpg

from gql.metrics import DOORBELL_CHECKS, LISTENER_UP
from gql.waiting import stopped, until_set

CHANNEL = "ordergraph_events"  # the channel schema.sql's og_after_append notifies
APPLICATION_NAME = "ordergraph-listener"
log = logging.getLogger("ordergraph.listener")
# The follow-up's checks: the first 2 ms after a notification, then doubling up to 50 ms while
# transactions that ran at the notification are still running (or notifications keep coming).
FOLLOW_UP = (0.002, 0.05)
# Where the running transactions stand: the oldest still running, and the next to start.
SNAPSHOT = """select pg_snapshot_xmin(s)::text::bigint as xmin, pg_snapshot_xmax(s)::text::bigint as xmax
from pg_current_snapshot() s"""

# InternalClientError: a query cancelled mid-flight (a timeout, a lost connection) leaves the
# connection "in another operation"; it is as lost as a closed one
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
              TimeoutError)


class Listener:
    """Keeps a LISTEN connection open and calls `ring()` on every doorbell and reconnect."""

    def __init__(
        self,
        database_url: str,
        ring: Callable[[], None],
        *,
        check_interval: float = 10.0,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.database_url = database_url
        self.ring = ring
        self.check_interval = check_interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._lost_at: float | None = None  # when the connection was lost, until it is back
        self._retry = asyncio.Event()
        self._heard = asyncio.Event()  # a notification (or a reconnect) the follow-up has not seen
        self._busy = asyncio.Lock()  # one query at a time on the connection

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ordergraph-listener")

    async def stop(self) -> None:
        await stopped(self._task)
        self._task = None

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            try:
                await self._listen()
                backoff = self.min_backoff  # the connection worked before it was lost
            except _DB_ERRORS as exc:
                # one line when the connection is lost, one when it is back: not one per try
                if self._lost_at is None:
                    log.warning("listener connection failed: %s; reconnecting", exc)
                    self._lost_at = time.monotonic()
            except Exception:  # a bug must not end live delivery: log it, connect again
                log.exception("listener failed; reconnecting")
                if self._lost_at is None:
                    self._lost_at = time.monotonic()
            finally:
                self._set_connected(False)
            # the backoff, or until told to try now
            await until_set(self._retry, backoff * random.uniform(0.5, 1.0))
            self._retry.clear()
            backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self) -> None:
        """One connection's life: LISTEN, ring for the catch-up, then watch until it is lost."""
        lost = asyncio.Event()
        conn = await asyncpg.connect(
            self.database_url, timeout=5,
            server_settings={"application_name": APPLICATION_NAME},
        )
        self._conn = conn
        self._heard.clear()
        follow_up = asyncio.create_task(self._follow_up(conn, lost),
                                        name="ordergraph-listener-follow-up")
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notification)
            self._set_connected(True)
            if self._lost_at is not None:
                log.warning("listener connected again after %.1f s",
                            time.monotonic() - self._lost_at)
                self._lost_at = None
            # events committed while no LISTEN was active are read by this catch-up, and those
            # of transactions still running then by the follow-up's
            self.ring()
            self._heard.set()
            while not lost.is_set():
                await until_set(lost, self.check_interval)
                if follow_up.done():  # it failed: the connection is not to be trusted
                    follow_up.result()
                if not lost.is_set():  # a half-open TCP connection never terminates by itself
                    async with self._busy:
                        await conn.fetchval("select 1", timeout=self.check_interval)
            log.warning("listener connection lost; reconnecting")
            self._lost_at = time.monotonic()
        finally:
            self._conn = None
            follow_up.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_DB_ERRORS):
                await follow_up
            conn.terminate()

    async def _follow_up(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Ring again once every transaction that ran when a notification arrived has ended.

        Those transactions may have skipped their own NOTIFY while the ringing one held the
        doorbell's lock; their ids are below the snapshot's xmax taken after the notification,
        so once xmin passes it, all of them are committed (or aborted) and a read finds them.
        """
        target: int | None = None
        delay = FOLLOW_UP[0]
        while True:
            if target is None and not self._heard.is_set():
                await self._heard.wait()  # idle: the next notification starts with a quick check
                delay = FOLLOW_UP[0]
            await asyncio.sleep(delay)
            heard = self._heard.is_set()
            self._heard.clear()
            try:
                async with self._busy:
                    now = await conn.fetchrow(SNAPSHOT, timeout=self.check_interval)
                DOORBELL_CHECKS.inc()
            except _DB_ERRORS:
                lost.set()  # the connection is not to be trusted: reconnect (and ring) now
                raise
            if heard:  # a later xmax than needed only makes the wait safe, never short
                target = max(target or 0, now["xmax"])
            if target is not None and now["xmin"] >= target:
                target = None
                self.ring()
            delay = min(delay * 2, FOLLOW_UP[1])

    def reconnect_now(self) -> None:
        """Skip the rest of the backoff (the database was found back)."""
        self._retry.set()

    def _on_notification(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.ring()
        self._heard.set()

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        LISTENER_UP.set(1 if connected else 0)
