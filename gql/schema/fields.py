"""The read surface's plain fields, each described once: where its value comes from and in
which form, read by the resolvers (from a row in Python) and by the compiler (in SQL).

A `Field` pairs the two readings of one source, side by side, so that a field cannot mean
one thing to the resolvers and another to the compiled statement. Fields that need more
than a row (an order's customer, its timeline, its state at a version) are described by
their plans in gql/schema/plans.py, the table the compiler walks: a field or argument
without a plan there makes the compiled path decline.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gql import declaration as kinds
from gql.catalogue import CATALOGUE
from gql.declaration import EventDeclaration, ReadModelField
from gql.events import CODES, EventType, OrderStatus, Position
from gql.schema.pagination import encode_cursor
from gql.store.customers import sealed_sql
from gql.traces import trace_id_of


@dataclass(frozen=True, eq=False)  # compared by identity: each form is one kind
class Form:
    """One kind of value: its Python value from the stored one, its SQL rendering, and how a
    JSON payload key holds it (`->>` text, `->` JSON)."""

    python: Callable[[Any], Any]
    sql: Callable[[str], str]
    access: str = "->>"


def _money(value: Any) -> decimal.Decimal:
    return decimal.Decimal(str(value))


PLAIN = Form(lambda v: v, lambda x: x)
NUMBER = Form(lambda v: v, lambda x: x, access="->")
# Money is stored with exactly its currency's minor units (the database writes it so: the
# fold rounds the read model's amounts, og_check writes the payload's), so both readings
# show it as stored: "300" JPY, "4.50" EUR, "3.600" KWD
MONEY = Form(_money, lambda x: f"({x})::text")
STATUS = Form(OrderStatus, lambda x: x)
OPTIONAL_STATUS = Form(lambda v: None if v is None else OrderStatus(v), lambda x: x)
ID = Form(lambda v: v, lambda x: x)  # a UUID as text
# one form per enum of coded data (e.g. OrderCancelled's reasonCode), by the enum's name
CODE_FORMS = {name: Form(codes, lambda x: x) for name, codes in CODES.items()}
# JSON arrays of objects, rendered line by line (OrderItem, ShippedItem)
ITEMS = Form(lambda v: v or [], lambda x: x, access="->")
SHIPPED_ITEMS = Form(lambda v: v or [], lambda x: x, access="->")
LINES = (ITEMS, SHIPPED_ITEMS)


@dataclass(frozen=True)
class Field:
    """One GraphQL field of a row (or a JSON object): `value(row)` for the resolvers,
    `sql(alias)` for the compiled statement."""

    name: str
    value: Callable[[Mapping[str, Any]], Any]
    sql: Callable[[str], str]
    form: Form = PLAIN

    @property
    def attribute(self) -> str:
        return attribute(self.name)


def attribute(name: str) -> str:
    """The Python attribute strawberry turns into the camel-case field `name`."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def column(name: str, source: str, form: Form = PLAIN) -> Field:
    """A field read from one column of a read-model or log row."""
    return Field(name, lambda row: form.python(row[source]), lambda r: form.sql(f"{r}.{source}"),
                 form)


def column_or(name: str, source: str, form: Form, default: Any, default_sql: str) -> Field:
    """A column that is null before the first event, read as `default` then."""
    def value(row: Mapping[str, Any]) -> Any:
        stored = row.get(source)
        return form.python(default if stored is None else stored)

    return Field(name, value, lambda r: form.sql(f"coalesce({r}.{source}, {default_sql})"), form)


def key(name: str, form: Form = PLAIN) -> Field:
    """A field read from the key of the same name of a JSON object (a payload, an item)."""
    return Field(name, lambda data: form.python(data.get(name)),
                 lambda j: form.sql(f"({j} {form.access} '{name}')"), form)


def values(fields: tuple[Field, ...], row: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a strawberry type built from `row`."""
    return {f.attribute: f.value(row) for f in fields}


# -- read models ----------------------------------------------------------------------
# How each kind of read-model field reads, and what OrderState shows before the first event.
_READ_FORMS: dict[str, Form] = {"id": ID, kinds.TEXT: PLAIN, kinds.MONEY: MONEY,
                                kinds.ITEMS: ITEMS, "status": STATUS, "time": PLAIN,
                                "version": PLAIN}
_EMPTY: dict[str, tuple[Any, str]] = {kinds.MONEY: (decimal.Decimal(0), "0"),
                                      kinds.ITEMS: ([], "'[]'"), "version": (0, "0")}


def _state_field(f: ReadModelField) -> Field:
    assert f.graphql is not None
    if f.kind == "status":  # null before OrderPlaced
        return column(f.graphql, f.column, OPTIONAL_STATUS)
    default, default_sql = _EMPTY[f.kind]
    return column_or(f.graphql, f.column, _READ_FORMS[f.kind], default, default_sql)


ORDER = tuple(column(f.graphql, f.column, _READ_FORMS[f.kind])
              for f in CATALOGUE.read_model if f.graphql)
# name and email are sealed (gql/store/personal.py): the resolvers get them opened by the
# store; the compiled path renders them sealed, and the store opens them after the statement
CUSTOMER = (column("id", "customer_id"), column("forgottenAt", "forgotten_at"),
            *(Field(f, lambda row, f=f: row[f], lambda k, f=f: sealed_sql(k, f)) for f in ("name", "email")))
# og_state_at's row: before the first event its columns are null and the state is empty
STATE = tuple(_state_field(f) for f in CATALOGUE.read_model if f.graphql and f.in_state)

# orderStatusChanged's statuses, from the log row the live hub read (READ_LOG): null before
# a new order
STATUS_CHANGE = (column("previousStatus", "previous_status", OPTIONAL_STATUS),
                 column("status", "status", STATUS))

# -- JSON parts ---------------------------------------------------------------------------
ITEM = (
    key("sku"), key("quantity", NUMBER), key("unitPrice", MONEY),
    Field("lineTotal", lambda item: item["quantity"] * _money(item["unitPrice"]),
          lambda i: f"(({i} ->> 'quantity')::numeric * ({i} ->> 'unitPrice')::numeric)::text"),
)
SHIPPED_ITEM = (key("sku"), key("quantity", NUMBER))
ACTOR = (column("type", "actor_type"), column("id", "actor_id"))

# -- cursors: the text of an edge's cursor; gql.schema.pagination.encode_cursor and og_cursor
# agree (og_iso writes a time as DateTime does)
ORDER_CURSOR = Field(
    "cursor", lambda row: encode_cursor("o", row["last_event_at"], row["order_id"]),
    lambda r: f"og_cursor('o', og_iso({r}.last_event_at), {r}.order_id::text)")
TIMELINE_CURSOR = Field("cursor", lambda row: encode_cursor("v", row["stream_version"]),
                        lambda r: f"og_cursor('v', {r}.stream_version::text)")

# -- events ------------------------------------------------------------------------------
# The text of a log position: gql.events.Position.encode and og_position agree
POSITION = Field("globalPosition", lambda row: Position(row["log_xid"], row["global_position"]).encode(),
                 lambda e: f"og_position({e}.log_xid, {e}.global_position)")
EVENT = (
    column("id", "event_id"), column("orderId", "order_id"),
    column("streamVersion", "stream_version"),
    POSITION,
    Field("type", lambda row: EventType(row["event_type"]),
          lambda e: f"case {e}.event_type " + " ".join(
              f"when '{t.value}' then '{t.name}'" for t in EventType) + " end"),
    column("occurredAt", "occurred_at"), column("recordedAt", "recorded_at"),
    column("correlationId", "correlation_id"), column("causationId", "causation_id"),
    column("schemaVersion", "schema_version"), column("payload", "payload"),
    # the trace id of the stored W3C traceparent (its 32 hex digits after "00-")
    Field("traceId", lambda row: trace_id_of(row.get("trace_parent")),
          lambda e: f"substr({e}.trace_parent, 4, 32)"),
)
# Each event type's own data, read from its payload (keys are named as the fields).
_DATA_FORMS = {kinds.TEXT: PLAIN, kinds.MONEY: MONEY, kinds.QUANTITY: NUMBER,
               kinds.CURRENCY: PLAIN, kinds.CUSTOMER: ID, kinds.ITEMS: ITEMS,
               kinds.SHIPPED_ITEMS: SHIPPED_ITEMS}


def _data_form(datum: kinds.Data) -> Form:
    return CODE_FORMS[datum.enum] if datum.kind == kinds.CODE else _DATA_FORMS[datum.kind]


def _payload(event: EventDeclaration) -> tuple[Field, ...]:
    return tuple(key(d.key, _data_form(d)) for d in event.data)


PAYLOAD: dict[EventType, tuple[Field, ...]] = {
    EventType(e.name): _payload(e) for e in CATALOGUE.events}
