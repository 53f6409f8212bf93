"""Moving the log in and out in bulk: NDJSON export in log order, batched import through og_append."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from gql.errors import DomainError
from gql.events import Position
from gql.store import personal
from gql.store.customers import SECRET, opened, sealed
from gql.store.errors import line_error

# One NDJSON line per event, rendered by PostgreSQL (EVENT_JSON, also the body of every event
# streamed out, gql/store/consumers.py): every column of the log as stored (not
# upcast), the position readers know, and for OrderPlaced when its customer registered (and
# was forgotten). Personal data is sealed (gql/store/personal.py), so PostgreSQL cannot render
# it: streamed events carry none, and the export opens the customer's name and e-mail in
# Python (export_lines), so that a fresh database can take the file alone. Only the safe
# prefix of the log (below the oldest running transaction) is exported, so `--after` the last
# exported position misses nothing.
EVENT_JSON = """json_build_object(
    'event_id', e.event_id, 'order_id', e.order_id, 'stream_version', e.stream_version,
    'position', og_position(e.log_xid, e.global_position), 'global_position', e.global_position,
    'log_xid', e.log_xid::text::bigint, 'event_type', e.event_type,
    'occurred_at', e.occurred_at, 'recorded_at', e.recorded_at,
    'correlation_id', e.correlation_id, 'causation_id', e.causation_id,
    'actor_type', e.actor_type, 'actor_id', e.actor_id, 'customer_id', e.customer_id,
    'schema_version', e.schema_version, 'payload', e.payload, 'trace_parent', e.trace_parent,
    'customer', case when e.event_type = 'OrderPlaced' then (
        select json_build_object('registered_at', c.registered_at, 'forgotten_at', c.forgotten_at)
        from customers c where c.customer_id = e.customer_id) end)"""
EXPORT = f"""
select {EVENT_JSON}::text, c.customer_id, c.name, c.email, c.registered_at, c.forgotten_at,
       (select k.key from customer_keys k where k.customer_id = c.customer_id) as key
from order_events e
left join customers c on e.event_type = 'OrderPlaced' and c.customer_id = e.customer_id
where (e.log_xid, e.global_position) > ($1::xid8, $2::bigint)
  and e.log_xid < pg_snapshot_xmin(pg_current_snapshot())
  and ($3::text[] is null or e.event_type = any($3))
order by e.log_xid, e.global_position
"""

# Customers named by a batch's OrderPlaced lines, sealed by _customers; one already there is
# left as it is (and keeps its key). A forgotten one comes without a key.
IMPORT_CUSTOMERS = """
with inserted as (
    insert into customers (customer_id, name, email, email_index, registered_at, forgotten_at)
    select c.id, c.name, c.email, c.email_index, coalesce(c.registered_at, now()), c.forgotten_at
    from unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[], $5::timestamptz[],
                $6::timestamptz[]) as c(id, name, email, email_index, registered_at, forgotten_at)
    on conflict (customer_id) do nothing
    returning customer_id
)
insert into customer_keys (customer_id, key)
select i.customer_id, k.key from inserted i
join unnest($1::uuid[], $7::bytea[]) as k(id, key) on k.id = i.customer_id
where k.key is not null
"""

_BATCH = """
unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::bigint[], $6::timestamptz[],
       $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::int[], $12::text[])
    with ordinality as b(event_id, order_id, event_type, payload, stream_version, occurred_at,
                         correlation_id, causation_id, actor_type, actor_id, schema_version,
                         trace_parent, n)
"""
# Which of a batch's events the log already has, and whether with the same content.
IMPORT_KNOWN = f"""
select b.n, e.order_id = b.order_id and e.event_type = b.event_type and e.payload = b.payload as same
from {_BATCH} join order_events e on e.event_id = b.event_id
"""
# The batch's new events in file order, as a plain INSERT: the append trigger applies every
# rule (state machine, amounts, the stream version, the read model) to each row.
IMPORT_NEW = f"""
insert into order_events (event_id, order_id, event_type, payload, stream_version, occurred_at,
                          correlation_id, causation_id, actor_type, actor_id, schema_version,
                          trace_parent)
select b.event_id, b.order_id, b.event_type, b.payload, b.stream_version,
       coalesce(b.occurred_at, now()), b.correlation_id, b.causation_id, b.actor_type, b.actor_id,
       coalesce(b.schema_version, v.schema_version, 1), b.trace_parent
from {_BATCH} left join event_schema_versions v on v.event_type = b.event_type
where not (b.n = any($13::bigint[]))
order by b.n
"""
# One event through og_append, the single append's own path (idempotency by event id and
# by authorizationId, the expected version): how refused or doubtful lines are replayed.
IMPORT_ONE = """
select a.deduplicated
from og_append(p_event_id => $1, p_order_id => $2, p_event_type => $3, p_payload => $4,
               p_expected_version => $5 - 1, p_occurred_at => $6, p_correlation_id => $7,
               p_causation_id => $8, p_actor_type => $9, p_actor_id => $10,
               p_schema_version => $11, p_trace_parent => $12) a
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
    customer: ImportedCustomer | None
    trace_parent: str | None = None  # the appending request's trace, kept across systems


@dataclass(frozen=True)
class ImportedCustomer:
    """An OrderPlaced line's customer: its details, or none when it was forgotten."""

    customer_id: uuid.UUID
    name: str | None
    email: str | None
    registered_at: datetime | None
    forgotten_at: datetime | None = None


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
            yield _with_customer(row) if row["customer_id"] is not None else row[0]


def _with_customer(row: asyncpg.Record) -> str:
    """The line with its customer's name and e-mail opened (null once forgotten)."""
    line = orjson.loads(row[0])
    shown = opened(row)
    forgotten = shown["forgotten_at"] is not None
    line["customer"] = {"name": None if forgotten else shown["name"],
                        "email": None if forgotten else shown["email"],
                        **line["customer"]}
    return orjson.dumps(line).decode()


def _columns(events: Sequence[ImportedEvent]) -> list[list[Any]]:
    return [
        [e.event_id for e in events], [e.order_id for e in events],
        [e.event_type for e in events], [e.payload for e in events],
        [e.stream_version for e in events], [e.occurred_at for e in events],
        [e.correlation_id for e in events], [e.causation_id for e in events],
        [e.actor_type for e in events], [e.actor_id for e in events],
        [e.schema_version for e in events], [e.trace_parent for e in events],
    ]


async def _customers(conn: asyncpg.Connection, events: Sequence[ImportedEvent]) -> None:
    customers = [e.customer for e in events if e.customer]
    if not customers:
        return
    secret = await conn.fetchval(SECRET)
    columns: list[list[Any]] = [[] for _ in range(7)]
    for c in customers:
        key = personal.new_key()
        if c.name is None or c.email is None:  # forgotten: sealed under a key thrown away
            name, email, _ = sealed(key, c.customer_id, personal.ERASED, personal.ERASED, secret)
            index, key = None, None
        else:
            personal.check(c.name, c.email)
            name, email, index = sealed(key, c.customer_id, c.name, c.email, secret)
        for column, value in zip(columns, (c.customer_id, name, email, index, c.registered_at,
                                           c.forgotten_at, key), strict=True):
            column.append(value)
    await conn.execute(IMPORT_CUSTOMERS, *columns)


class _Doubtful(Exception):
    """An event id the log has with other content, or one the batch holds twice: the batch
    is replayed line by line."""


async def _write_batch(conn: asyncpg.Connection, events: Sequence[ImportedEvent]) -> int:
    """Append the batch's new events; returns how many were already there."""
    if len({e.event_id for e in events}) < len(events):
        raise _Doubtful  # one id twice: the second is a duplicate or a conflict of the first
    await _customers(conn, events)
    columns = _columns(events)
    known = await conn.fetch(IMPORT_KNOWN, *columns)
    if not all(row["same"] for row in known):
        raise _Doubtful
    skip = [row["n"] for row in known]
    await conn.execute(IMPORT_NEW, *columns, skip)
    return len(skip)


async def _write_one(conn: asyncpg.Connection, event: ImportedEvent) -> bool:
    await _customers(conn, [event])
    return await conn.fetchval(IMPORT_ONE, *(column[0] for column in _columns([event])))


async def import_batch(conn: asyncpg.Connection, events: Sequence[ImportedEvent]) -> BatchResult:
    """Append a batch atomically. When a line is refused (or names a known event id with other
    content), the batch is replayed line by line through og_append, each line in a savepoint,
    so the others still go in and nothing of a refused one does."""
    try:
        async with conn.transaction():
            known = await _write_batch(conn, events)
        return BatchResult(appended=len(events) - known, deduplicated=known)
    except (_Doubtful, DomainError):  # a customer's details refused before they are sealed
        pass
    except asyncpg.PostgresError as exc:
        if line_error(exc) is None:
            raise
    result = BatchResult()
    async with conn.transaction():
        for event in events:
            try:
                async with conn.transaction():
                    deduplicated = await _write_one(conn, event)
            except asyncpg.PostgresError as exc:
                refused = line_error(exc)
                if refused is None:
                    raise
                result.refused.append(Refused(event.line, refused.code, refused.message))
                continue
            except DomainError as refused:
                result.refused.append(Refused(event.line, refused.code, refused.message))
                continue
            if deduplicated:
                result.deduplicated += 1
            else:
                result.appended += 1
    return result
