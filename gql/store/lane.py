"""A read lane: short read statements run on pool connections held across requests.

asyncpg's `Pool.acquire`/`release` costs about as much CPU as the rest of a compiled read
(a task for the shielded release, a timeout, an inactivity timer; bench/RESULTS.md, "Q1").
The lane keeps a connection while reads are waiting and runs them one after another on it,
so under load a read costs one future instead of an acquire and a release. Connections still
come from (and go back to) the pool: at most `workers` at a time, each released after
`batch` statements or when nothing waits, so writers and the resolvers always get their turn.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import asyncpg

log = logging.getLogger("ordergraph.lane")
Job = tuple[str, tuple[Any, ...], "asyncio.Future[Any]"]


class ReadLane:
    def __init__(self, pool: asyncpg.Pool, workers: int, batch: int = 16) -> None:
        self.pool, self.max_workers, self.batch = pool, max(1, workers), batch
        self._waiting: collections.deque[Job] = collections.deque()
        self._workers: set[asyncio.Task[None]] = set()

    async def fetchval(self, sql: str, *params: Any) -> Any:
        """Like `Pool.fetchval`; a cancelled caller leaves its statement to finish unseen, so a
        connection is never interrupted mid-statement."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((sql, params, future))
        if len(self._workers) < self.max_workers:
            self._start()
        return await future

    def _start(self) -> None:
        worker = asyncio.create_task(self._work())
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                for _ in range(self.batch):
                    if not self._waiting:
                        return
                    sql, params, future = self._waiting.popleft()
                    if future.cancelled():
                        continue
                    try:
                        result = await conn.fetchval(sql, *params)
                    except Exception as exc:  # the caller's to handle, as with Pool.fetchval
                        if not future.done():
                            future.set_exception(exc)
                        if isinstance(exc, asyncpg.InternalClientError):
                            conn.terminate()  # its protocol state is broken: never reuse it
                        if conn.is_closed():
                            return  # the pool replaces it
                    else:
                        if not future.done():
                            future.set_result(result)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            # no connection to be had: fail what waits rather than leave it hanging
            while self._waiting:
                _, _, future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(exc)
        finally:
            if self._waiting and len(self._workers) <= self.max_workers:
                self._start()  # this one is leaving with reads still waiting
