"""Durable consumers: their positions in the log, the lock that lets one process run each,
the log's safe prefix read for them, and the events a sink parked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from gql.errors import ConsumerRefused
from gql.events import Position
from gql.store.connection import connect as connect_database
from gql.store.exchange import EVENT_JSON

# Session advisory locks (LOCK_SPACE, consumer_id): the holder runs the consumer. The lock
# lives as long as the connection that moves the position, so a killed process releases it
# at once and a connection lost mid-batch cannot move the position any more.
LOCK_SPACE = 0x6F67

FIND = """
select name, consumer_id, sink, types, after_xid::text::bigint as after_xid, after_seq, stopped
from stream_consumers where name = $1
"""

CREATE = """
insert into stream_consumers (name, sink, types, after_xid, after_seq)
values ($1, $2, $3, $4::text::xid8, $5) on conflict (name) do nothing
"""

TRY_LOCK = "select pg_try_advisory_lock($1, $2)"

# The next events of the log's safe prefix after the position (the same rule as the live hub
# and export: below the oldest running transaction, in (log_xid, global_position) order),
# each with its JSON when the consumer's filter takes it; then at most one row marked unsafe
# when later committed events are held back by a running transaction.
READ = f"""
select * from (
    (select e.log_xid::text::bigint as log_xid, e.global_position, e.event_id, e.order_id,
            e.stream_version, e.event_type, e.correlation_id, e.causation_id, e.trace_parent,
            true as safe,
            case when $4::text[] is null or e.event_type = any($4) then {EVENT_JSON}::text end as body
     from order_events e
     where (e.log_xid, e.global_position) > ($1::text::xid8, $2::bigint)
       and e.log_xid < (select pg_snapshot_xmin(pg_current_snapshot()))
     order by e.log_xid, e.global_position
     limit $3)
    union all
    (select log_xid::text::bigint, global_position, null, null, null, null, null, null, null, false,
            null
     from order_events
     where log_xid >= (select pg_snapshot_xmin(pg_current_snapshot()))
       and (log_xid, global_position) > ($1::text::xid8, $2::bigint)
     order by log_xid, global_position
     limit 1)
) page
order by safe desc, log_xid, global_position
"""

ADVANCE = """
update stream_consumers
set after_xid = $2::text::xid8, after_seq = $3, delivered = delivered + $4, moved_at = now()
where name = $1
"""

PARK = """
insert into consumer_parked (consumer, event_id, log_xid, global_position, attempts, last_error)
select $1, p.event_id, p.log_xid::text::xid8, p.seq, p.attempts, p.error
from unnest($2::uuid[], $3::bigint[], $4::bigint[], $5::int[], $6::text[])
    as p(event_id, log_xid, seq, attempts, error)
on conflict (consumer, event_id) do update
set attempts = consumer_parked.attempts + excluded.attempts, last_error = excluded.last_error,
    parked_at = now(), replay = false
"""

STOP = "update stream_consumers set stopped = $2 where name = $1"

# Parked events to deliver again, with their JSON, in log order.
REPLAYS = f"""
select p.log_xid::text::bigint as log_xid, p.global_position, e.event_id, e.order_id,
       e.stream_version, e.event_type, e.correlation_id, e.causation_id, e.trace_parent,
       true as safe, {EVENT_JSON}::text as body
from consumer_parked p join order_events e on e.event_id = p.event_id
where p.consumer = $1 and p.replay
order by p.log_xid, p.global_position
limit $2
"""

UNPARK = "delete from consumer_parked where consumer = $1 and event_id = any($2::uuid[])"

# Every consumer with its lag (events after its position that it takes, and the age of the
# oldest) and the session that runs it now (the holder of its advisory lock).
LIST = f"""
select c.name, c.sink, c.types, og_position(c.after_xid, c.after_seq) as position,
       c.delivered, c.created_at, c.moved_at, c.stopped,
       (select count(*) from order_events e
        where (e.log_xid, e.global_position) > (c.after_xid, c.after_seq)
          and (c.types is null or e.event_type = any(c.types))) as lag_events,
       coalesce((select extract(epoch from now() - e.recorded_at)::float8 from order_events e
                 where (e.log_xid, e.global_position) > (c.after_xid, c.after_seq)
                   and (c.types is null or e.event_type = any(c.types))
                 order by e.log_xid, e.global_position limit 1), 0) as lag_seconds,
       (select count(*) from consumer_parked p where p.consumer = c.name) as parked,
       (select coalesce(nullif(a.application_name, ''), 'a session') || ' (pid ' || l.pid || ')'
        from pg_locks l left join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.classid = {LOCK_SPACE}::oid
          and l.objid = c.consumer_id::oid and l.objsubid = 2
        limit 1) as holder
from stream_consumers c
where $1::text is null or c.name = $1
order by c.name
"""

# Taken for the length of a transaction that changes a consumer: refused while a relay runs it.
TRY_XACT_LOCK = "select pg_try_advisory_xact_lock($1, $2)"

RESET = """
update stream_consumers set after_xid = $2::text::xid8, after_seq = $3, moved_at = now(),
                            stopped = null
where name = $1
"""

# The position just before the first event (in the log's order) recorded at or after a time,
# so that a consumer reset to it delivers every event recorded since; the log's safe end
# when there is none.
POSITION_AT = """
select coalesce(
    (select array[log_xid::text::bigint, global_position - 1] from order_events
     where recorded_at >= $1 order by log_xid, global_position limit 1),
    (select array[log_xid::text::bigint, global_position] from order_events
     where log_xid < pg_snapshot_xmin(pg_current_snapshot())
     order by log_xid desc, global_position desc limit 1),
    array[0, 0]::bigint[])
"""

DELETE = "delete from stream_consumers where name = $1"

LIST_PARKED = """
select p.event_id, og_position(p.log_xid, p.global_position) as position, e.event_type,
       p.attempts, p.last_error, p.parked_at, p.replay
from consumer_parked p join order_events e on e.event_id = p.event_id
where p.consumer = $1
order by p.log_xid, p.global_position
"""

MARK_REPLAY = """
update consumer_parked set replay = true
where consumer = $1 and ($2::uuid[] is null or event_id = any($2))
"""

Db = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class Consumer:
    name: str
    consumer_id: int
    sink: str
    types: tuple[str, ...] | None
    position: Position
    stopped: str | None


@dataclass(frozen=True)
class LogRow:
    """An event of the log's safe prefix; `body` (its JSON) is None when the filter skips it."""

    position: Position
    event_id: uuid.UUID
    order_id: uuid.UUID
    stream_version: int
    event_type: str
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    body: str | None
    trace_parent: str | None = None  # the appending span's W3C traceparent, when it was traced


@dataclass(frozen=True)
class ParkedEvent:
    """An event given up on: where it is, after how many attempts, and why."""

    event_id: uuid.UUID
    position: Position
    attempts: int
    error: str


def _consumer(row: asyncpg.Record) -> Consumer:
    return Consumer(row["name"], row["consumer_id"], row["sink"],
                    tuple(row["types"]) if row["types"] is not None else None,
                    Position(row["after_xid"], row["after_seq"]), row["stopped"])


def _log_row(row: asyncpg.Record) -> LogRow:
    return LogRow(Position(row["log_xid"], row["global_position"]), row["event_id"],
                  row["order_id"], row["stream_version"], row["event_type"],
                  row["correlation_id"], row["causation_id"], row["body"], row["trace_parent"])


async def connect(url: str, application_name: str) -> asyncpg.Connection:
    """A connection of its own for one running consumer: it holds the consumer's lock."""
    conn = await connect_database(url)
    await conn.execute("select set_config('application_name', $1, false)", application_name[:63])
    return conn


async def open_consumer(db: Db, name: str, sink: str, types: Sequence[str] | None,
                        start: Position) -> Consumer:
    """The consumer, created at `start` when new; refused when it exists with another sink
    or filter (a consumer's filter decides what its position means)."""
    wanted = sorted(types) if types else None
    await db.execute(CREATE, name, sink, wanted, str(start.xid), start.seq)
    consumer = _consumer(await db.fetchrow(FIND, name))
    if consumer.sink != sink or (sorted(consumer.types) if consumer.types else None) != wanted:
        have = ",".join(consumer.types) if consumer.types else "every type"
        raise ConsumerRefused(
            f"consumer {name} exists for {consumer.sink} with types {have}; delete it or "
            "choose another name")
    return consumer


async def try_lock(conn: asyncpg.Connection, consumer: Consumer) -> bool:
    return bool(await conn.fetchval(TRY_LOCK, LOCK_SPACE, consumer.consumer_id))


async def read_log(conn: asyncpg.Connection, *, after: Position, types: Sequence[str] | None,
                   limit: int) -> tuple[list[LogRow], bool]:
    """The next safe events after `after`, and whether later committed ones are held back."""
    rows = await conn.fetch(READ, str(after.xid), after.seq, limit, list(types) if types else None)
    held = bool(rows) and not rows[-1]["safe"]
    return [_log_row(r) for r in (rows[:-1] if held else rows)], held


async def advance(conn: asyncpg.Connection, name: str, to: Position, delivered: int,
                  parked: Sequence[ParkedEvent] = ()) -> None:
    """Move the position (and park what the sink gave up on) in one transaction."""
    async with conn.transaction():
        if parked:
            await conn.execute(PARK, name, [p.event_id for p in parked],
                               [p.position.xid for p in parked], [p.position.seq for p in parked],
                               [p.attempts for p in parked], [p.error[:2000] for p in parked])
        await conn.execute(ADVANCE, name, str(to.xid), to.seq, delivered)


async def stop(conn: asyncpg.Connection, name: str, reason: str | None) -> None:
    await conn.execute(STOP, name, reason[:2000] if reason else None)


async def read_replays(conn: asyncpg.Connection, name: str, limit: int) -> list[LogRow]:
    return [_log_row(r) for r in await conn.fetch(REPLAYS, name, limit)]


async def unpark(conn: asyncpg.Connection, name: str, event_ids: Sequence[uuid.UUID],
                 parked: Sequence[ParkedEvent] = ()) -> None:
    """Delivered again: no longer parked; `parked` failed again and stays, not to replay."""
    async with conn.transaction():
        await conn.execute(UNPARK, name, list(event_ids))
        if parked:
            await conn.execute(PARK, name, [p.event_id for p in parked],
                               [p.position.xid for p in parked], [p.position.seq for p in parked],
                               [p.attempts for p in parked], [p.error[:2000] for p in parked])


async def list_consumers(db: Db, name: str | None = None) -> list[asyncpg.Record]:
    return await db.fetch(LIST, name)


async def _idle(conn: asyncpg.Connection, name: str) -> Consumer:
    """Inside a transaction: the consumer, locked against relays; refused while one runs it."""
    row = await conn.fetchrow(FIND, name)
    if row is None:
        raise ConsumerRefused(f"no consumer named {name}")
    consumer = _consumer(row)
    if not await conn.fetchval(TRY_XACT_LOCK, LOCK_SPACE, consumer.consumer_id):
        raise ConsumerRefused(f"consumer {name} is running; stop its relay first")
    return consumer


async def reset(db: asyncpg.Pool, name: str, to: Position | datetime) -> Position:
    """Move an idle consumer to a position, or to just before what was recorded since a time."""
    async with db.acquire() as conn, conn.transaction():
        await _idle(conn, name)
        if isinstance(to, datetime):
            xid, seq = await conn.fetchval(POSITION_AT, to)
            to = Position(xid, seq)
        await conn.execute(RESET, name, str(to.xid), to.seq)
        return to


async def delete(db: asyncpg.Pool, name: str) -> None:
    async with db.acquire() as conn, conn.transaction():
        await _idle(conn, name)
        await conn.execute(DELETE, name)


async def list_parked(db: Db, name: str) -> list[asyncpg.Record]:
    if await db.fetchrow(FIND, name) is None:
        raise ConsumerRefused(f"no consumer named {name}")
    return await db.fetch(LIST_PARKED, name)


async def mark_replay(db: Db, name: str, event_ids: Sequence[uuid.UUID] | None) -> int:
    """Ask the consumer's relay to deliver parked events again; how many were marked."""
    if await db.fetchrow(FIND, name) is None:
        raise ConsumerRefused(f"no consumer named {name}")
    status = await db.execute(MARK_REPLAY, name, list(event_ids) if event_ids else None)
    return int(status.split()[-1])
