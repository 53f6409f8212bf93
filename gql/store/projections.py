"""Rebuilding the read models from the log."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from gql.errors import DatabaseUnavailable
from gql.store.tallies import tidy_tallies

# Fold every stream into a scratch table without blocking writers, one range of stream ids
# at a time (streams are folded in index order, so memory stays bounded by one stream and
# progress can be reported); a stream's version is how many events it has.
SCRATCH = "create temp table og_rebuilt (like orders_current) on commit drop"
COUNT_EVENTS = "select count(*) from order_events"
FOLD_RANGE = """
with folded as (
    insert into og_rebuilt
    select (og_fold(e order by e.stream_version)).* from order_events e
    where e.order_id >= $1 and ($2::uuid is null or e.order_id < $2)
    group by e.order_id
    returning version
)
select coalesce(sum(version), 0)::bigint from folded
"""
# ...then pause appends, fold again the streams that moved meanwhile, and swap. EXCLUSIVE
# conflicts with the row locks every append takes first (og_append and the append trigger
# lock the stream's row before they write it), so the rebuild waits for the appends in
# flight and later ones wait for the swap, while reads go on. A weaker mode lets an append
# hold its row lock while the swap deletes that row: a deadlock. The lock is asked for with
# a short lock_timeout, in a savepoint, and again until granted, so that appends never queue
# long behind a rebuild that itself waits for some long transaction to end.
LOCK_READ_MODEL = "lock table orders_current in exclusive mode"
LOCK_WAIT = "set local lock_timeout = '200ms'"
LOCK_WAIT_DONE = "set local lock_timeout to default"
REFOLD_MOVED = """
with moved as (
    select c.order_id from orders_current c
    left join og_rebuilt r using (order_id)
    where r.order_id is null or r.version <> c.version
), dropped as (
    delete from og_rebuilt r using moved m where r.order_id = m.order_id
)
insert into og_rebuilt
select (og_fold(e order by e.stream_version)).* from order_events e
where e.order_id in (select order_id from moved)
group by e.order_id
"""
# The swap writes only what differs: rows of the live read model the rebuild disagrees with
# (or has no stream for) are deleted, then the rebuilt rows missing from it are inserted. On
# a healthy read model that writes nothing, so appends pause for one comparison of the two
# tables instead of a delete and an insert of every row (and no table bloats by a copy).
DELETE_STALE = """
delete from orders_current c
where c.order_id in (select order_id from (select * from orders_current
                                           except select * from og_rebuilt) stale)
"""
INSERT_REBUILT = """
insert into orders_current
select r.* from og_rebuilt r
where not exists (select from orders_current c where c.order_id = r.order_id)
"""
# ...and the tallies behind counts, counted again from the read model and the log
RECOUNT = "select og_recount_tallies()"
COUNTS = "select (select count(*) from orders_current), (select count(*) from order_events)"


class AppendsNotPaused(DatabaseUnavailable):
    """The read model stayed locked by other transactions for longer than the rebuild waits."""


@dataclass(frozen=True)
class Rebuilt:
    orders: int
    events: int
    changed_rows: int
    seconds: float


def _ranges(events: int, per_range: int) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """Equal slices of the uuid space, about `per_range` events each (ids are random)."""
    count = max(1, min(4096, events // per_range))
    bounds = [uuid.UUID(int=(i << 128) // count) for i in range(count)]
    return list(zip(bounds, [*bounds[1:], None], strict=True))


async def rebuild_projections(conn: asyncpg.Connection,
                              progress: Callable[[int, int], None] = lambda done, total: None,
                              events_per_range: int = 100_000,
                              pause_timeout: float = 60.0) -> Rebuilt:
    """Replay every event into a fresh read model and swap it in, atomically; `progress` gets
    the events folded so far and the total."""
    started = time.perf_counter()
    async with conn.transaction():
        total = await conn.fetchval(COUNT_EVENTS)
        await conn.execute(SCRATCH)
        done = 0
        progress(done, total)
        for low, high in _ranges(total, events_per_range):
            done += await conn.fetchval(FOLD_RANGE, low, high)
            progress(done, total)
        await _pause_appends(conn, pause_timeout)
        await conn.execute(REFOLD_MOVED)
        changed = _rows(await conn.execute(DELETE_STALE)) + _rows(await conn.execute(INSERT_REBUILT))
        await conn.execute(RECOUNT)
        orders, events = await conn.fetchrow(COUNTS)
    await tidy_tallies(conn)  # the recount deleted every row it replaced
    return Rebuilt(orders, events, changed, time.perf_counter() - started)


def _rows(status: str) -> int:
    """The row count of a command status such as `DELETE 3` or `INSERT 0 3`."""
    return int(status.rsplit(" ", 1)[1])


async def _pause_appends(conn: asyncpg.Connection, patience: float) -> None:
    """Lock the read model against appends (inside the caller's transaction), asking again
    while other transactions hold it; AppendsNotPaused after `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        try:
            async with conn.transaction():  # a savepoint: a wait that timed out leaves nothing
                await conn.execute(LOCK_WAIT)
                await conn.execute(LOCK_READ_MODEL)
                await conn.execute(LOCK_WAIT_DONE)
            return
        except asyncpg.LockNotAvailableError:
            if time.monotonic() > deadline:
                raise AppendsNotPaused(
                    f"could not pause appends for the swap within {patience:.0f} s: other "
                    "transactions kept orders_current locked; nothing was changed") from None
        await asyncio.sleep(random.uniform(0.02, 0.1))  # let the queued appends through
