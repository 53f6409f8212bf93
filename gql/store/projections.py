"""Rebuilding the read models from the log."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

# Fold every stream into a scratch table without blocking writers...
FOLD_ALL = """
create temp table og_rebuilt on commit drop as
select (og_fold(e order by e.stream_version)).* from order_events e group by e.order_id
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


async def rebuild_projections(conn: asyncpg.Connection) -> Rebuilt:
    """Replay every event into a fresh read model and swap it in, atomically."""
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute(FOLD_ALL)
        await conn.execute(LOCK_READ_MODEL)
        await conn.execute(REFOLD_MOVED)
        changed = await conn.fetchval(COUNT_CHANGED)
        await conn.execute(SWAP)
        orders, events = await conn.fetchrow(COUNTS)
    return Rebuilt(orders, events, changed, time.perf_counter() - started)
