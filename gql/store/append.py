"""The append path: one round trip per event through `og_append` (schema.sql)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from gql.errors import ServiceUnavailable
from gql.events import NewEvent
from gql.metrics import APPENDS
from gql.store.customers import Registered, register_customer
from gql.store.errors import RETRYABLE, domain_error, is_transient
from gql.store.reads import ORDER_COLUMNS
from gql.traces import traceparent

__all__ = ["Appended", "Registered", "append_event", "register_customer"]

_ORDER = [column.strip() for column in ORDER_COLUMNS.split(",")]
# The event, and the order's read model as the append left it (one round trip for both).
# og_append's parameters in the order `_append` binds them; compiled statements that render
# their own result (gql/schema/plans.py) call it the same way.
# Then the caller's claims (role, scope, customer, subject): og_append checks them against
# the grants in schema.sql before it answers anything; last the appending span's traceparent.
APPEND_CALL = """og_append(
    p_event_id => $1, p_order_id => $2, p_event_type => $3, p_payload => $4,
    p_expected_version => $5, p_occurred_at => $6, p_correlation_id => $7, p_causation_id => $8,
    p_actor_type => $9, p_actor_id => $10, p_schema_version => $11,
    p_role => $12, p_scope => $13, p_customer => $14, p_subject => $15,
    p_trace_parent => $16) a"""
APPEND = f"""
select (a.event).*, a.deduplicated, {", ".join(f"(a.current).{c} as current_{c}" for c in _ORDER)}
from {APPEND_CALL}
"""

# A concurrent writer may win a unique key (or create the stream) between our check and
# our insert; the retry then sees its committed row and answers deduplicated or conflict.
# A deadlock or serialization failure (e.g. beside a rebuild's swap) is sent again too,
# unless the caller's own transaction is open (it is aborted: only the caller can retry).
_ATTEMPTS = 3


@dataclass(frozen=True)
class Appended:
    event: asyncpg.Record
    deduplicated: bool
    order: dict[str, Any]  # the order's read model after the append


Claims = tuple[str, str, uuid.UUID | None, str]  # Identity.claims()


async def append_event(db: asyncpg.Pool | asyncpg.Connection, event: NewEvent,
                       claims: Claims) -> Appended:
    """Record `event` (or find its earlier recording) and update the read models atomically,
    if the grants let `claims` append it."""
    row = await _append(db, APPEND, event, claims)
    order = {c: row[f"current_{c}"] for c in _ORDER}
    return Appended(event=row, deduplicated=row["deduplicated"], order=order)


async def append_rendered(db: asyncpg.Pool | asyncpg.Connection, statement: str,
                          event: NewEvent, claims: Claims) -> bytes:
    """As `append_event`, through a compiled `statement` that renders the result itself
    (gql/schema/plans.py, `compile_append`)."""
    row = await _append(db, statement, event, claims)
    return row[0]


async def _append(db: asyncpg.Pool | asyncpg.Connection, statement: str,
                  event: NewEvent, claims: Claims) -> asyncpg.Record:
    args = (
        event.event_id,
        event.order_id,
        event.type.value,
        event.payload,
        event.expected_version,
        event.occurred_at,
        event.correlation_id,
        event.causation_id,
        event.actor.type if event.actor else None,
        event.actor.id if event.actor else None,
        event.schema_version,
        *claims,
        traceparent(),  # the appending span's, kept with the event (None: not traced)
    )
    alone = isinstance(db, asyncpg.Pool) or not db.is_in_transaction()
    for attempt in range(_ATTEMPTS):
        try:
            row = await db.fetchrow(statement, *args)
        except asyncpg.PostgresError as exc:
            if attempt + 1 < _ATTEMPTS and (
                    getattr(exc, "constraint_name", None) in RETRYABLE
                    or (alone and is_transient(exc))):
                continue
            refused = domain_error(exc) or (ServiceUnavailable(
                "the append met a transient conflict in the database; send it again "
                "(with the same eventId)") if is_transient(exc) else None)
            APPENDS.labels(event.type.value, refused.code if refused else "FAILED").inc()
            raise refused or exc from None
        assert row is not None
        APPENDS.labels(event.type.value,
                       "deduplicated" if row["deduplicated"] else "appended").inc()
        return row
    raise AssertionError("unreachable")
