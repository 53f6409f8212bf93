"""Reads of the read models and the log, shaped for pages and DataLoader batches."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from gql.catalogue import CATALOGUE
from gql.events import EventOrder, EventType, Position, TimeAxis
from gql.store.customers import open_document, open_text
from gql.store.lane import ReadLane

Db = asyncpg.Pool | asyncpg.Connection

# The read model's columns a reader sees (the declarations', less the log's bookkeeping).
ORDER_COLUMNS = ", ".join(f.column for f in CATALOGUE.read_model
                          if f.graphql or f.column == "customer_id")

EVENT_COLUMNS = """event_id, order_id, stream_version, global_position, log_xid, event_type,
    occurred_at, recorded_at, correlation_id, causation_id, actor_type, actor_id, customer_id,
    payload, schema_version, trace_parent"""

# Every root read takes the viewer: the one customer whose rows it may return (og_sees in
# schema.sql); null reads all. Edges from a visible row stay within its customer.
LOAD_ORDERS = f"""
select {ORDER_COLUMNS} from orders_current
where order_id = any($1::uuid[]) and og_sees($2::uuid, customer_id)
"""


# The page functions live in schema.sql, shared with the compiled fast path.
LIST_ORDERS = f"""
select {ORDER_COLUMNS} from og_orders_page(
    p_after_at => $1, p_after_id => $2, p_statuses => $3, p_customer => $4,
    p_placed_after => $5, p_placed_before => $6, p_lim => $7, p_viewer => $8)
"""

def _of(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in EVENT_COLUMNS.split(","))


# Every read of the log goes through schema.sql's og_upcast (or a page function that does),
# so readers see each event in its type's current schema_version.
FIND_EVENT = f"select {EVENT_COLUMNS} from og_event(p_id => $1) where og_sees($2, customer_id)"

LIST_EVENTS = f"""
select {EVENT_COLUMNS} from og_log_page(
    p_after_xid => $1, p_after_seq => $2, p_types => $3, p_stream => $4, p_correlation => $5,
    p_occurred_after => $6, p_occurred_before => $7, p_lim => $8, p_viewer => $9)
"""
# ...with the order's status after each event and before it (stored on the stream's previous
# event), as the live hub's read has them: a replay of status changes
LIST_STATUS_EVENTS = f"""
select {_of("e")}, e.status,
       (select p.status from order_events p
        where p.order_id = e.order_id and p.stream_version = e.stream_version - 1) as previous_status
from og_log_page(
    p_after_xid => $1, p_after_seq => $2, p_types => $3, p_stream => $4, p_correlation => null,
    p_occurred_after => null, p_occurred_before => null, p_lim => $5, p_viewer => $6) e
"""

# The listener's batched read, one per wake-up for every subscription of the process: the
# next safe events of the whole log (below the oldest running transaction) with the order's
# status after and before each, as stored on the event and on the stream's previous one (the
# append trigger records og_evolve's answer), for orderStatusChanged; then at most one row
# marked unsafe when later committed events are held back until that transaction ends (so a
# long transaction costs one row per read, not a page).
READ_LOG = f"""
select * from (
    (select {_of("e")}, true as safe, x.status,
        (select p.status from order_events p
         where p.order_id = x.order_id and p.stream_version = x.stream_version - 1) as previous_status
     from order_events x cross join lateral og_upcast(x) e
     where (x.log_xid, x.global_position) > ($1::xid8, $2::bigint)
       and x.log_xid < (select pg_snapshot_xmin(pg_current_snapshot()))
     order by x.log_xid, x.global_position
     limit $3)
    union all
    (select {EVENT_COLUMNS}, false, null, null from order_events
     where log_xid >= (select pg_snapshot_xmin(pg_current_snapshot()))
       and (log_xid, global_position) > ($1::xid8, $2::bigint)
     order by log_xid, global_position
     limit 1)
) page
order by safe desc, log_xid, global_position
"""

# Where a new listener starts: the last event readers may safely see now.
LAST_SAFE_POSITION = """
select log_xid, global_position from order_events
where log_xid < pg_snapshot_xmin(pg_current_snapshot())
order by log_xid desc, global_position desc
limit 1
"""

# One timeline page per requested order, in one statement.
LIST_ORDER_EVENTS = f"""
select e.* from unnest($1::uuid[]) as o(id)
cross join lateral (select {EVENT_COLUMNS} from og_timeline_page(
    p_stream => o.id, p_types => $2, p_after_version => $3, p_order_by => $4, p_lim => $5)) e
"""

# How many rows a connection's filters select, all pages (schema.sql's og_*_count).
COUNT_ORDERS = """
select og_orders_count(p_statuses => $1, p_customer => $2, p_placed_after => $3,
                       p_placed_before => $4, p_viewer => $5)
"""
COUNT_EVENTS = """
select og_log_count(p_types => $1, p_stream => $2, p_correlation => $3, p_occurred_after => $4,
                    p_occurred_before => $5, p_viewer => $6)
"""
COUNT_TIMELINE = "select og_timeline_count(p_stream => $1, p_types => $2)"
ORDER_STATISTICS = """
select * from og_order_statistics(p_statuses => $1, p_customer => $2, p_placed_after => $3,
                                  p_placed_before => $4, p_viewer => $5)
"""

STATE_AT = """
select * from og_state_at(p_stream => $1, p_up_to_version => $2, p_as_of => $3, p_axis => $4)
"""


def _names(types: Sequence[EventType] | None) -> list[str] | None:
    return [t.value for t in types] if types else None


async def load_orders(db: Db, ids: Sequence[uuid.UUID],
                      viewer: uuid.UUID | None) -> list[asyncpg.Record | None]:
    rows = await db.fetch(LOAD_ORDERS, list(ids), viewer)
    by_id = {row["order_id"]: row for row in rows}
    return [by_id.get(i) for i in ids]


async def list_orders(
    db: Db,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    statuses: Sequence[str] | None = None,
    customer_id: uuid.UUID | None = None,
    placed_after: datetime | None = None,
    placed_before: datetime | None = None,
    viewer: uuid.UUID | None,
) -> list[asyncpg.Record]:
    last_event_at, order_id = after if after else (None, None)
    return await db.fetch(
        LIST_ORDERS,
        last_event_at,
        order_id,
        list(statuses) if statuses else None,
        customer_id,
        placed_after,
        placed_before,
        limit,
        viewer,
    )


async def find_event(db: Db, event_id: uuid.UUID,
                     viewer: uuid.UUID | None) -> asyncpg.Record | None:
    return await db.fetchrow(FIND_EVENT, event_id, viewer)


async def list_events(
    db: Db,
    *,
    limit: int,
    after: Position | None = None,
    types: Sequence[EventType] | None = None,
    order_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
    viewer: uuid.UUID | None,
) -> list[asyncpg.Record]:
    start = after or Position(0, 0)
    return await db.fetch(
        LIST_EVENTS,
        start.xid,
        start.seq,
        _names(types),
        order_id,
        correlation_id,
        occurred_after,
        occurred_before,
        limit,
        viewer,
    )


async def list_order_events(
    db: Db,
    order_ids: Sequence[uuid.UUID],
    *,
    limit: int,
    after_version: int | None = None,
    types: Sequence[EventType] | None = None,
    order: EventOrder = EventOrder.STREAM_VERSION,
) -> dict[uuid.UUID, list[asyncpg.Record]]:
    rows = await db.fetch(
        LIST_ORDER_EVENTS, list(order_ids), _names(types), after_version, order.value, limit
    )
    pages: dict[uuid.UUID, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        pages[row["order_id"]].append(row)
    return pages


async def count_orders(db: Db, *, statuses: Sequence[str] | None = None,
                       customer_id: uuid.UUID | None = None, placed_after: datetime | None = None,
                       placed_before: datetime | None = None, viewer: uuid.UUID | None) -> int:
    return await db.fetchval(COUNT_ORDERS, list(statuses) if statuses else None, customer_id,
                             placed_after, placed_before, viewer)


async def count_events(db: Db, *, types: Sequence[EventType] | None = None,
                       order_id: uuid.UUID | None = None, correlation_id: uuid.UUID | None = None,
                       occurred_after: datetime | None = None,
                       occurred_before: datetime | None = None, viewer: uuid.UUID | None) -> int:
    return await db.fetchval(COUNT_EVENTS, _names(types), order_id, correlation_id,
                             occurred_after, occurred_before, viewer)


async def count_timeline(db: Db, order_id: uuid.UUID,
                         types: Sequence[EventType] | None = None) -> int:
    return await db.fetchval(COUNT_TIMELINE, order_id, _names(types))


async def order_statistics(db: Db, *, statuses: Sequence[str] | None = None,
                           customer_id: uuid.UUID | None = None,
                           placed_after: datetime | None = None,
                           placed_before: datetime | None = None,
                           viewer: uuid.UUID | None) -> list[asyncpg.Record]:
    """Orders by status and currency with the sums of their amounts."""
    return await db.fetch(ORDER_STATISTICS, list(statuses) if statuses else None, customer_id,
                          placed_after, placed_before, viewer)


async def state_at(
    db: Db,
    order_id: uuid.UUID,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    axis: TimeAxis = TimeAxis.OCCURRED,
) -> asyncpg.Record | None:
    """The order folded up to a version or a time (None: every event)."""
    return await db.fetchrow(STATE_AT, order_id, version, as_of, axis.value)


async def read_log(db: Db, *, after: Position, limit: int) -> tuple[list[asyncpg.Record], bool]:
    """The next safe events after `after`, and whether later committed ones are held back."""
    rows = await db.fetch(READ_LOG, after.xid, after.seq, limit)
    held = bool(rows) and not rows[-1]["safe"]
    return (rows[:-1] if held else rows), held


async def list_status_events(db: Db, *, limit: int, after: Position,
                             types: Sequence[EventType] | None = None,
                             order_id: uuid.UUID | None = None,
                             viewer: uuid.UUID | None) -> list[asyncpg.Record]:
    """A page of the log (as list_events) with each event's status and previous status."""
    return await db.fetch(LIST_STATUS_EVENTS, after.xid, after.seq, _names(types), order_id,
                          limit, viewer)


async def last_safe_position(db: Db) -> Position:
    row = await db.fetchrow(LAST_SAFE_POSITION)
    return Position(row["log_xid"], row["global_position"]) if row else Position(0, 0)


async def fetch_document(db: Db | ReadLane, sql: str, params: Sequence[object]) -> bytes:
    """A compiled GraphQL document's `data`, rendered as UTF-8 JSON by PostgreSQL, with its
    customers' sealed fields opened."""
    return open_document(await db.fetchval(sql, *params))


async def render_events(db: Db, sql: str, params: Sequence[object]) -> dict[int, str]:
    """A compiled subscription's payloads for a batch of events (gql/schema/plans.py,
    `compile_subscription`): the `data` JSON text by the event's place in the batch."""
    return {row[0]: open_text(row[1]) for row in await db.fetch(sql, *params)}
