"""Database outages: telling one from other failures, and saying once when it starts and ends.

Connections the server's pools open go through `connect`, so that any failure to connect is
`Unreachable`. A failure is an outage (`is_outage`) when no connection could be made, or the
one in use was lost or shut down under the statement. While the database is out, requests
are answered `SERVICE_UNAVAILABLE` (HTTP 503 with Retry-After) after one try each, and
`DatabaseHealth` logs one line when the outage starts and one when a probe finds the
database back, instead of one traceback per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from gql.metrics import DATABASE_UP
from gql.waiting import stopped

log = logging.getLogger("ordergraph.database")
RETRY_AFTER = 1  # seconds a client is told to wait before it tries again
# admin_shutdown (pg_terminate_backend, a fast shutdown), crash_shutdown, cannot_connect_now
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
PROBE = "select 1"


class Unreachable(ConnectionError):
    """No connection to the database could be made (refused, shut down, not accepting
    connections, unknown database, …)."""


async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect for pools, with every failure to connect raised as Unreachable."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise Unreachable(describe(exc)) from exc


def is_outage(exc: BaseException | None) -> bool:
    """Whether `exc` means the database cannot be used now, rather than that this statement
    failed (a bad value, a timeout, a bug)."""
    if isinstance(exc, Unreachable | asyncpg.PostgresConnectionError):  # 08xxx: lost mid-way
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # a statement sent on a connection the server has just terminated, before its socket
        # closed: asyncpg finds the protocol mid-way through the server's last error
        return True
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _SHUTDOWN_STATES


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _QuietPoolRetries(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reconnect up to its minimum
    size; an outage is already reported once by DatabaseHealth."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and is_outage(record.exc_info[1]))


_QUIET = _QuietPoolRetries()


class DatabaseHealth:
    """Whether the database is out, as the process last found it; logs each change once."""

    def __init__(self, pool: asyncpg.Pool, probe_interval: float = 0.25) -> None:
        self.pool, self.probe_interval = pool, probe_interval
        self.down_since: float | None = None
        self._probe: asyncio.Task[None] | None = None
        self._on_back: list[Callable[[], None]] = []
        DATABASE_UP.set(1)
        logging.getLogger("asyncpg.pool").addFilter(_QUIET)  # once: a filter is kept once

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def on_back(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the database is found back (e.g. to reconnect the listener
        now rather than at its next backoff)."""
        self._on_back.append(callback)

    def failed(self, exc: BaseException) -> None:
        """An outage was met: the first since the database was last up is logged, and a
        probe watches for its end."""
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        DATABASE_UP.set(0)
        log.error("the database is unavailable (%s); answering SERVICE_UNAVAILABLE until it "
                  "is back", describe(exc))
        self._probe = asyncio.create_task(self._watch(), name="ordergraph-database-probe")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                async with self.pool.acquire(timeout=5) as conn:
                    await conn.fetchval(PROBE, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                continue
            assert self.down_since is not None
            log.warning("the database is available again after %.1f s",
                        time.monotonic() - self.down_since)
            self.down_since = None
            DATABASE_UP.set(1)
            for callback in self._on_back:
                callback()
            return

    async def stop(self) -> None:
        await stopped(self._probe)
