"""What each read field renders in SQL: the table the compiler walks, type by type.

Plain fields come from their descriptions in gql/schema/fields.py (the resolvers read the
same descriptions); the rest — roots, connections, an order's customer, timeline and
state — are plans here that call the same page functions as the resolvers' store queries
(schema.sql's og_orders_page, og_log_page, og_timeline_page, og_state_at). A field missing
from this table, or an argument its plan does not name, makes the document go to the
resolvers (gql/schema/compiled.py), so the compiled path never answers what it does not
understand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import FieldNode

from gql.events import EventType, Position
from gql.schema.compiled import Args, Compiler, Plan, Plans, Unsupported, plan, value
from gql.schema.fields import (
    ACTOR,
    CUSTOMER,
    EVENT,
    ITEM,
    ITEMS,
    LINES,
    ORDER,
    ORDER_CURSOR,
    PAYLOAD,
    POSITION,
    SHIPPED_ITEM,
    STATE,
    STATUS_CHANGE,
    TIMELINE_CURSOR,
    Field,
)
from gql.schema.pagination import EVENTS_PAGE, ORDERS_PAGE, decode_cursor, page_size
from gql.store.append import APPEND_CALL


def compile_query(c: Compiler) -> Plan:
    if c.operation.operation.value != "query":
        raise Unsupported("only queries")
    fields = c.collect("Query", c.operation.selection_set)
    # bytes, so the answer passes through Python untouched; timestamps render natively
    # in the session's UTC as DateTime does (gql/schema/scalars.py)
    return c.plan(f"select convert_to({c.obj('Query', None, _query(c), fields)}::text, 'UTF8')")


# A subscription's rendering reads one event per row of its batch: `p` is the batch's row
# (event_id, status, previous_status, n), `ev` the event read through og_event (og_upcast).
LIVE_EVENT = "ev"


def compile_subscription(c: Compiler) -> Plan:
    """The statement rendering a subscription's payload for a batch of log rows: its
    parameters are the document's, then the rows' event ids (uuid[]), statuses and previous
    statuses (text[], as the log read gives them); it returns (n, the `data` JSON text) for
    the n-th row (from 1) the viewer may see. The hub applies the root field's arguments
    (which events), so the statement renders only what is selected."""
    if c.operation.operation.value != "subscription":
        raise Unsupported("only subscriptions")
    fields = c.collect("Subscription", c.operation.selection_set)
    plans = {
        "orderEvents": plan(lambda n, _: _event(c, LIVE_EVENT, n), "orderId", "types", "after"),
        "orderStatusChanged": plan(lambda n, _: _status_change(c, n), "orderId", "statuses"),
    }
    built = c.obj("Subscription", None, plans, fields)
    viewer = c.viewer()
    batch = len(c.binders)
    return c.plan(
        f"select p.n, {built}::text from unnest(${batch + 1}::uuid[], ${batch + 2}::text[], "
        f"${batch + 3}::text[]) with ordinality p(event_id, status, previous_status, n) "
        f"cross join lateral og_event(p.event_id) {LIVE_EVENT} "
        f"where og_sees({viewer}, {LIVE_EVENT}.customer_id) order by p.n")


def _status_change(c: Compiler, nodes: list[FieldNode]) -> str:
    plans = {**_columns(STATUS_CHANGE, "p"),
             "order": plan(lambda n, _: _current_order(c, LIVE_EVENT, n)),
             "event": plan(lambda n, _: _event(c, LIVE_EVENT, n))}
    return c.obj("OrderStatusChange", nodes, plans)


def compile_append(c: Compiler, nodes: list[FieldNode]) -> str:
    """The statement that appends (called as gql.store.append binds it) and renders the
    selected `AppendResult` from the row it returns."""
    c.row_local = True
    plans = {"deduplicated": value("a.deduplicated"),
             "event": plan(lambda n, _: _event(c, "e", n)),
             "order": plan(lambda n, _: _order(c, "o", n))}
    built = c.obj("AppendResult", nodes, plans)
    if c.binders:
        raise Unsupported("arguments inside an append's result")
    return (f"select convert_to({built}::text, 'UTF8'), a.deduplicated from {APPEND_CALL}, "
            "lateral (select (a.event).*) e, lateral (select (a.current).*) o")


def _columns(fields: tuple[Field, ...], alias: str) -> dict[str, Any]:
    return {f.name: value(f.sql(alias)) for f in fields if f.form not in LINES}


def _values(items: list[Any] | None) -> list[str] | None:
    return [item.value for item in items] if items else None


# -- Query -------------------------------------------------------------------------------
def _query(c: Compiler) -> Plans:
    def one(rows: Callable[[str, str], str], render: Any) -> Any:
        """A root that reads one row by id: `rows(alias, id)` is its FROM … WHERE."""
        def sql(nodes: list[FieldNode], args: Args) -> str:
            t = c.alias()
            return (f"(select {render(c, t, nodes)} "
                    f"from {rows(t, args.param(lambda a: a['id'], 'uuid'))} "
                    f"and og_sees({c.viewer()}, {t}.customer_id))")
        return plan(sql, "id")

    return {
        "order": one(lambda t, k: f"orders_current {t} where {t}.order_id = {k}", _order),
        "customer": one(lambda t, k: f"customers {t} where {t}.customer_id = {k}", _customer),
        # the log through og_upcast, as every reader of it
        "event": one(lambda t, k: f"og_event({k}) {t} where true", _event),
        "orders": plan(lambda nodes, args: _orders_connection(c, nodes, args, None), "first",
                       "after", "status", "customerId", "placedAfter", "placedBefore"),
        "events": plan(lambda nodes, args: _log_connection(c, nodes, args), "first", "after",
                       "types", "orderId", "correlationId", "occurredAfter", "occurredBefore"),
    }


def _orders_connection(c: Compiler, nodes: list[FieldNode], args: Args,
                       customer: str | None) -> str:
    cap = c.settings.max_page_size
    size = args.shape(lambda a: page_size(a["first"], ORDERS_PAGE, cap))
    after = args.shape(lambda a: a["after"] is not None)

    def key(a: dict[str, Any]) -> tuple[Any, ...]:
        return decode_cursor(a["after"], "o", datetime, uuid.UUID) if a["after"] else (None, None)

    customer_sql = customer or args.optional(lambda a: a["customerId"], "uuid")
    after_at, after_id = (args.optional(lambda a: key(a)[0], "timestamptz"),
                          args.optional(lambda a: key(a)[1], "uuid"))
    viewer = c.viewer()  # also under Customer.orders: the reading customer, not the listed one
    filters = (args.optional(lambda a: _values(a.get("status")), "text[]"), customer_sql,
               args.optional(lambda a: a.get("placedAfter"), "timestamptz"),
               args.optional(lambda a: a.get("placedBefore"), "timestamptz"))

    def source(limit: int) -> str:
        return f"og_orders_page({after_at}, {after_id}, {', '.join(filters)}, {limit}, {viewer})"

    return c.connection(
        "OrderConnection", nodes, source, ("last_event_at desc", "order_id desc"), size,
        after, lambda r, n: _order(c, r, n), ORDER_CURSOR.sql)


def _log_connection(c: Compiler, nodes: list[FieldNode], args: Args) -> str:
    size = args.shape(lambda a: page_size(a["first"], EVENTS_PAGE, c.settings.max_page_size))
    after = args.shape(lambda a: a["after"] is not None)

    def start(a: dict[str, Any]) -> Position:
        return Position.decode(a["after"]) if a["after"] else Position(0, 0)

    filters = (f"{args.param(lambda a: str(start(a).xid), 'text')}::xid8, "
               f"{args.param(lambda a: start(a).seq, 'int8')}, "
               f"{args.optional(lambda a: _values(a['types']), 'text[]')}, "
               f"{args.optional(lambda a: a['orderId'], 'uuid')}, "
               f"{args.optional(lambda a: a['correlationId'], 'uuid')}, "
               f"{args.optional(lambda a: a['occurredAfter'], 'timestamptz')}, "
               f"{args.optional(lambda a: a['occurredBefore'], 'timestamptz')}")
    viewer = c.viewer()

    def source(limit: int) -> str:
        return f"og_log_page({filters}, {limit}, {viewer})"

    return c.connection(
        "OrderEventConnection", nodes, source, ("log_xid", "global_position"), size,
        after, lambda r, n: _event(c, r, n), POSITION.sql)


# -- Order, Customer, items, state -------------------------------------------------------
def _order(c: Compiler, o: str, nodes: list[FieldNode]) -> str:
    plans = {**_columns(ORDER, o), "items": plan(lambda n, _: _lines(c, f"{o}.items", "OrderItem", n))}
    if not c.row_local:  # these read the tables again
        plans.update({
            "customer": plan(lambda n, _: (
                f"(select {_customer(c, 'k' + o, n)} from customers k{o} "
                f"where k{o}.customer_id = {o}.customer_id)")),
            "events": plan(lambda n, args: _timeline(c, o, n, args), "first", "after", "types",
                           "orderBy"),
            "stateAt": plan(lambda n, args: _state_at(c, o, n, args), "asOf", "version", "axis"),
        })
    return c.obj("Order", nodes, plans)


def _customer(c: Compiler, k: str, nodes: list[FieldNode]) -> str:
    plans = {**_columns(CUSTOMER, k),
             "orders": plan(lambda n, args: _orders_connection(c, n, args, f"{k}.customer_id"),
                            "first", "after")}
    return c.obj("Customer", nodes, plans)


def _lines(c: Compiler, source: str, type_name: str, nodes: list[FieldNode]) -> str:
    """A JSON list of the objects of a jsonb array (order items, shipped items), in order."""
    i = c.alias()
    fields = ITEM if type_name == "OrderItem" else SHIPPED_ITEM
    return (f"(select coalesce(json_agg({c.obj(type_name, nodes, _columns(fields, f'{i}.v'))} "
            f"order by {i}.n), '[]'::json) "
            f"from jsonb_array_elements({source}) with ordinality {i}(v, n))")


def _state_at(c: Compiler, o: str, nodes: list[FieldNode], args: Args) -> str:
    axis = args.shape(lambda a: a["axis"].value)
    version = args.optional(lambda a: a["version"], "int8")
    as_of = args.optional(lambda a: a["asOf"], "timestamptz")
    s = c.alias()
    items = next(f for f in STATE if f.name == "items")
    plans = {**_columns(STATE, s),
             "items": plan(lambda n, _: _lines(c, items.sql(s), "OrderItem", n))}
    return (f"(select {c.obj('OrderState', nodes, plans)} "
            f"from og_state_at({o}.order_id, {version}, {as_of}, '{axis}') {s})")


# -- events ------------------------------------------------------------------------------
def _timeline(c: Compiler, o: str, nodes: list[FieldNode], args: Args) -> str:
    cap = c.settings.max_page_size
    size = args.shape(lambda a: page_size(a["first"], cap, cap))
    after = args.shape(lambda a: a["after"] is not None)
    order = args.shape(lambda a: a["orderBy"].value)

    def version(a: dict[str, Any]) -> int | None:
        return decode_cursor(a["after"], "v", int)[0] if a["after"] else None

    types, after_version = (args.optional(lambda a: _values(a["types"]), "text[]"),
                            args.optional(version, "int8"))

    def source(limit: int) -> str:
        return f"og_timeline_page({o}.order_id, {types}, {after_version}, '{order}', {limit})"

    keys = ("stream_version",) if order == "stream_version" else (order, "stream_version")
    return c.connection(
        "OrderEventConnection", nodes, source, keys, size, after, lambda r, n: _event(c, r, n),
        TIMELINE_CURSOR.sql)


def _event_plans(c: Compiler, e: str, event_type: EventType) -> Plans:
    plans = {**_columns(EVENT, e), **_columns(PAYLOAD[event_type], f"{e}.payload"),
             "actor": plan(lambda n, _: (
                 f"case when coalesce({e}.actor_type, '') = '' then null else "
                 f"{c.obj('Actor', n, _columns(ACTOR, e))} end"))}
    for field in PAYLOAD[event_type]:
        if field.form in LINES:
            line_type = "OrderItem" if field.form is ITEMS else "ShippedItem"
            source = field.sql(f"{e}.payload")
            plans[field.name] = plan(lambda n, _, s=source, t=line_type: _lines(c, s, t, n))
    if not c.row_local:  # reads the tables again
        plans["order"] = plan(lambda n, _: _current_order(c, e, n))
    return plans


def _current_order(c: Compiler, e: str, nodes: list[FieldNode]) -> str:
    """The order of the event `e` as it is now."""
    return (f"(select {_order(c, 'o' + e, nodes)} from orders_current o{e} "
            f"where o{e}.order_id = {e}.order_id)")


def _event(c: Compiler, e: str, nodes: list[FieldNode]) -> str:
    """One object per concrete type, chosen by the row's event type; types whose objects
    render alike (the interface's fields, no fragment of their own) share one. The stored
    event type is the GraphQL type's name, so `__typename` reads it from the row."""
    shared: dict[str, list[str]] = {}
    for t in EventType:
        built = c.obj(t.value, None, _event_plans(c, e, t), c.selected(t.value, nodes),
                      typename=f"{e}.event_type")
        shared.setdefault(built, []).append(t.value)
    if len(shared) == 1:
        return next(iter(shared))
    whens = " ".join(f"when {e}.event_type in ({', '.join(map(repr, types))}) then {built}"
                     for built, types in shared.items())  # type names: no quotes to escape
    return f"case {whens} end"
