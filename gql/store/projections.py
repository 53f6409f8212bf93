"""Rebuilding the read models from the log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

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
# ...then, with appends paused, fold again the streams that moved meanwhile, and swap.
LOCK_READ_MODEL = "lock table orders_current in share row exclusive mode"
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
COUNT_CHANGED = """
select count(*) from (
    select * from orders_current except select * from og_rebuilt
    union all
    select * from og_rebuilt except select * from orders_current
) d
"""
SWAP = """
delete from orders_current;
insert into orders_current select * from og_rebuilt;
"""
COUNTS = "select (select count(*) from orders_current), (select count(*) from order_events)"


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
                              events_per_range: int = 100_000) -> Rebuilt:
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
        await conn.execute(LOCK_READ_MODEL)
        await conn.execute(REFOLD_MOVED)
        changed = await conn.fetchval(COUNT_CHANGED)
        await conn.execute(SWAP)
        orders, events = await conn.fetchrow(COUNTS)
    return Rebuilt(orders, events, changed, time.perf_counter() - started)
