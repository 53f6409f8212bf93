"""Moving the log in and out in bulk: NDJSON export in log order, batched import through og_append."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from gql.events import Position
from gql.store.errors import domain_error

# One NDJSON line per event, rendered by PostgreSQL: every column of the log as stored (not
# upcast), the position readers know, and for OrderPlaced the customer it names, so that a
# fresh database can take the file alone. Only the safe prefix of the log (below the oldest
# running transaction) is exported, so `--after` the last exported position misses nothing.
EXPORT = """
select json_build_object(
    'event_id', e.event_id, 'order_id', e.order_id, 'stream_version', e.stream_version,
    'position', og_position(e.log_xid, e.global_position), 'global_position', e.global_position,
    'log_xid', e.log_xid::text::bigint, 'event_type', e.event_type,
    'occurred_at', e.occurred_at, 'recorded_at', e.recorded_at,
    'correlation_id', e.correlation_id, 'causation_id', e.causation_id,
    'actor_type', e.actor_type, 'actor_id', e.actor_id, 'customer_id', e.customer_id,
    'schema_version', e.schema_version, 'payload', e.payload,
    'customer', case when e.event_type = 'OrderPlaced' then (
        select json_build_object('name', c.name, 'email', c.email, 'registered_at', c.registered_at)
        from customers c where c.customer_id = e.customer_id) end)::text
from order_events e
where (e.log_xid, e.global_position) > ($1::xid8, $2::bigint)
  and e.log_xid < pg_snapshot_xmin(pg_current_snapshot())
  and ($3::text[] is null or e.event_type = any($3))
order by e.log_xid, e.global_position
"""

# Customers named by a batch's OrderPlaced lines; one already there is left as it is.
IMPORT_CUSTOMERS = """
insert into customers (customer_id, name, email, registered_at)
select * from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
on conflict (customer_id) do nothing
"""

# A batch of events, in file order, each through og_append: idempotency by event id, the
# stream version as the expected version, then the append trigger's rules.
IMPORT_EVENTS = """
select a.deduplicated
from unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bigint[], $6::timestamptz[],
            $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::int[])
     with ordinality as b(event_id, order_id, event_type, payload, stream_version, occurred_at,
                          correlation_id, causation_id, actor_type, actor_id, schema_version, n)
cross join lateral og_append(b.event_id, b.order_id, b.event_type, b.payload,
                             b.stream_version - 1, b.occurred_at, b.correlation_id,
                             b.causation_id, b.actor_type, b.actor_id, b.schema_version) a
order by b.n
"""


@dataclass(frozen=True)
class ImportedEvent:
    """One line of an import file, checked for shape; the database checks the rest."""

    line: int
    event_id: uuid.UUID
    order_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    stream_version: int | None
    occurred_at: datetime | None
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    actor_type: str | None
    actor_id: str | None
    schema_version: int | None
    customer: tuple[uuid.UUID, str, str, datetime | None] | None


@dataclass(frozen=True)
class Refused:
    line: int
    code: str
    message: str


@dataclass
class BatchResult:
    appended: int = 0
    deduplicated: int = 0
    refused: list[Refused] = field(default_factory=list)


async def export_lines(conn: asyncpg.Connection, *, after: Position, types: Sequence[str] | None,
                       prefetch: int = 2000) -> AsyncIterator[str]:
    """The log's lines in order after `after`, streamed from one snapshot (a cursor)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(EXPORT, after.xid, after.seq, list(types) if types else None,
                                     prefetch=prefetch):
            yield row[0]


def _columns(events: Sequence[ImportedEvent]) -> list[list[Any]]:
    return [
        [e.event_id for e in events], [e.order_id for e in events],
        [e.event_type for e in events], [e.payload for e in events],
        [e.stream_version for e in events], [e.occurred_at for e in events],
        [e.correlation_id for e in events], [e.causation_id for e in events],
        [e.actor_type for e in events], [e.actor_id for e in events],
        [e.schema_version for e in events],
    ]


async def _write(conn: asyncpg.Connection, events: Sequence[ImportedEvent]) -> list[bool]:
    customers = [e.customer for e in events if e.customer]
    if customers:
        await conn.execute(IMPORT_CUSTOMERS, *(list(c) for c in zip(*customers, strict=True)))
    rows = await conn.fetch(IMPORT_EVENTS, *_columns(events))
    return [row["deduplicated"] for row in rows]


async def import_batch(conn: asyncpg.Connection, events: Sequence[ImportedEvent]) -> BatchResult:
    """Append a batch atomically. When a line is refused, the batch is replayed line by line
    (each in a savepoint), so the others still go in and nothing of the refused one does."""
    try:
        async with conn.transaction():
            flags = await _write(conn, events)
        return BatchResult(appended=flags.count(False), deduplicated=sum(flags))
    except asyncpg.PostgresError as exc:
        if domain_error(exc) is None:
            raise
    result = BatchResult()
    async with conn.transaction():
        for event in events:
            try:
                async with conn.transaction():
                    (flag,) = await _write(conn, [event])
            except asyncpg.PostgresError as exc:
                refused = domain_error(exc)
                if refused is None:
                    raise
                result.refused.append(Refused(event.line, refused.code, refused.message))
                continue
            if flag:
                result.deduplicated += 1
            else:
                result.appended += 1
    return result
