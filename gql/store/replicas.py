"""Read replicas: which pool answers a read, and how far each streaming replica has replayed.

Writes and the live hub use the primary. A read goes to a replica in the rotation (round
robin); a read carrying a position token (the primary's WAL position after a write, see
`position`) goes to a replica only once it has replayed up to that position, waiting at
most `replica_wait` seconds, else to the primary. A background check measures each
replica's lag: one lagging more than `replica_max_lag` seconds, or unreachable, leaves the
rotation and returns when the check finds it within the bound again.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from gql.config import Settings
from gql.metrics import REPLICA_IN_ROTATION, REPLICA_LAG_BYTES, REPLICA_LAG_SECONDS
from gql.store import DATABASE_ERRORS
from gql.store.connection import create_pool, describe, target
from gql.store.lane import ReadLane
from gql.waiting import stopped

log = logging.getLogger("ordergraph.replicas")
# the insert position, not the write position: with asynchronous commit a transaction can
# return before its commit record is written, but never before it is inserted
CURRENT_POSITION = "select pg_current_wal_insert_lsn()::text"
REPLAYED_POSITION = "select pg_last_wal_replay_lsn()::text"
POLL = 0.002  # seconds between looks at a replica a read with a token waits for
SAMPLES = 1200  # the primary's positions remembered to tell a replica's lag in seconds
PRIMARY, REPLICA = "primary", "replica"


def parse_position(text: str) -> int:
    """A position token (a PostgreSQL LSN such as `0/16B3748`) as a number; ValueError if
    it is not one."""
    high, slash, low = text.strip().partition("/")
    if not slash or not (0 < len(high) <= 8 and 0 < len(low) <= 8):
        raise ValueError(text)
    return (int(high, 16) << 32) | int(low, 16)


def format_position(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass
class Route:
    """Where one read runs: a pool, its read lane, and who it is (for X-Ordergraph-Served-By)."""

    pool: asyncpg.Pool
    lane: ReadLane
    served_by: str
    replica: Replica | None = None


class Replica:
    """One streaming replica: its pool (opened once it answers), how far it has replayed."""

    def __init__(self, url: str) -> None:
        self.url, self.name = url, target(url)[1]
        self.pool: asyncpg.Pool | None = None
        self.lane: ReadLane | None = None
        self.replayed = 0  # the highest position it was seen to have replayed
        self.lag_bytes = 0
        self.lag_seconds = 0.0
        self.error = "not checked yet"
        self.in_rotation = False
        self._look: asyncio.Future[int] | None = None

    async def look(self) -> int:
        """How far it has replayed, now. Reads that wait together share one statement, so a
        lagging replica is asked once per POLL however many reads wait for it."""
        if self._look is None or self._look.done():
            self._look = asyncio.ensure_future(self._replayed())
            self._look.add_done_callback(_retrieved)
        return await asyncio.shield(self._look)  # a cancelled reader leaves the look to the others

    async def _replayed(self) -> int:
        assert self.lane is not None
        self.replayed = max(self.replayed, _number(await self.lane.fetchval(REPLAYED_POSITION)))
        return self.replayed

    def status(self) -> dict[str, Any]:
        """What /readyz says of it."""
        return {"in_rotation": self.in_rotation, "lag_seconds": round(self.lag_seconds, 3),
                "lag_bytes": self.lag_bytes, "replayed": format_position(self.replayed),
                **({"error": self.error} if self.error else {})}

    def leave(self, reason: str) -> None:
        if self.in_rotation:
            log.warning("replica %s leaves the rotation: %s", self.name, reason)
        self.in_rotation, self.error = False, reason
        REPLICA_IN_ROTATION.labels(self.name).set(0)


class Replicas:
    """The read router: `route` picks the pool of a read, `position` gives a write's token."""

    def __init__(self, primary: asyncpg.Pool, primary_lane: ReadLane, settings: Settings) -> None:
        self.primary = Route(primary, primary_lane, PRIMARY)
        self.settings = settings
        self.replicas = [Replica(url) for url in settings.replica_list]
        self._turn = itertools.count()
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=SAMPLES)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check every replica once (so the first reads can use them), then keep checking."""
        if self.replicas:
            await self.check()
            self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        await stopped(self._task)
        for replica in self.replicas:
            if replica.pool is not None:
                await replica.pool.close()

    async def position(self) -> str:
        return await current_position(self.primary.lane)

    async def route(self, token: int | None) -> Route:
        """The pool for a read; with a token, one whose data includes that position."""
        ready = [r for r in self.replicas if r.in_rotation and r.lane is not None]
        if not ready:
            return self.primary
        start = next(self._turn)
        ready = ready[start % len(ready):] + ready[:start % len(ready)]
        if token is None:
            return self._route(ready[0])
        for replica in ready:  # one already seen past the token answers at once
            if replica.replayed >= token:
                return self._route(replica)
        return await self._wait(ready[0], token)

    def failed(self, route: Route, exc: BaseException) -> None:
        """A read on `route`'s replica failed: it leaves the rotation until the check finds
        it back (the caller answers from the primary)."""
        if route.replica is not None:
            route.replica.leave(f"a read failed: {describe(exc)}")

    def status(self) -> dict[str, Any]:
        return {r.name: r.status() for r in self.replicas}

    def _route(self, replica: Replica) -> Route:
        assert replica.pool is not None and replica.lane is not None
        return Route(replica.pool, replica.lane, REPLICA, replica)

    async def _wait(self, replica: Replica, token: int) -> Route:
        """The replica once it has replayed `token`, or the primary after the bound."""
        deadline = time.monotonic() + self.settings.replica_wait
        while True:
            try:
                replayed = await replica.look()
            except DATABASE_ERRORS as exc:
                replica.leave(f"a read failed: {describe(exc)}")
                return self.primary
            if replayed >= token:
                return self._route(replica)
            left = deadline - time.monotonic()
            if left <= 0:
                return self.primary
            await asyncio.sleep(min(POLL, left))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_check_interval)
            try:
                await self.check()
            except Exception:  # the check must outlive anything; the next one tries again
                log.exception("checking the replicas failed")

    async def check(self) -> None:
        """Measure each replica's lag against the primary; set the rotation and the gauges."""
        try:
            current = _number(await self.primary.lane.fetchval(CURRENT_POSITION))
        except DATABASE_ERRORS:
            return  # the primary away: the lag cannot be told; leave the rotation as it is
        now = time.monotonic()
        self._samples.append((now, current))
        await asyncio.gather(*(self._check(replica, current, now) for replica in self.replicas))

    async def _check(self, replica: Replica, current: int, now: float) -> None:
        settings = self.settings
        try:
            async with asyncio.timeout(max(1.0, settings.replica_check_interval * 2)):
                if replica.pool is None:
                    replica.pool = await create_pool(
                        replica.url, min_size=min(1, settings.pool_min_size),
                        max_size=settings.pool_max_size,
                        statement_timeout=settings.request_timeout, generic_plans=True)
                    replica.lane = ReadLane(replica.pool, settings.pool_max_size)
                assert replica.lane is not None
                replayed = await replica.lane.fetchval(REPLAYED_POSITION)
        except Exception as exc:  # down, refusing, or too slow to answer: out of the rotation
            replica.leave(f"unreachable: {describe(exc)}")
            return
        if replayed is None:
            replica.leave("not a standby (pg_last_wal_replay_lsn() is null)")
            return
        replica.replayed = max(replica.replayed, _number(replayed))
        replica.lag_bytes = max(0, current - replica.replayed)
        replica.lag_seconds = self._lag_seconds(replica.replayed, now)
        REPLICA_LAG_BYTES.labels(replica.name).set(replica.lag_bytes)
        REPLICA_LAG_SECONDS.labels(replica.name).set(replica.lag_seconds)
        if replica.lag_seconds > settings.replica_max_lag:
            replica.leave(f"{replica.lag_seconds:.1f} s behind the primary "
                          f"(bound {settings.replica_max_lag:g} s)")
            return
        if not replica.in_rotation:
            log.info("replica %s joins the rotation (%.3f s behind)", replica.name,
                     replica.lag_seconds)
        replica.in_rotation, replica.error = True, ""
        REPLICA_IN_ROTATION.labels(replica.name).set(1)

    def _lag_seconds(self, replayed: int, now: float) -> float:
        """How long ago the primary first stood beyond `replayed` (0: it has everything)."""
        for seen, position in self._samples:
            if position > replayed:
                return now - seen
        return 0.0


async def current_position(lane: ReadLane) -> str:
    """The token of every write committed so far: the primary's WAL insert position."""
    return str(await lane.fetchval(CURRENT_POSITION))


def _retrieved(look: asyncio.Future[int]) -> None:
    """Mark a look's failure as seen, also when every read waiting on it has gone."""
    if not look.cancelled():
        look.exception()


def _number(text: str | None) -> int:
    return parse_position(text) if text else 0
